"""tuscam-upload against the real server (gunicorn, app/tus, services/camera): a folder of
images, a run killed with SIGKILL and resumed, a network that cuts every connection, rejected
images and upload URLs the server forgot."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.support import images as test_images
from tests.support.proxy import FaultProxy
from tests.support.server import LiveServer
from tests.uploader.conftest import make_noise_png
from uploader.cli import main
from uploader.files import collect
from uploader.state import StateStore
from uploader.transfer import Options, Transfer

ROOT = Path(__file__).resolve().parents[2]
MiB = 1 << 20


@pytest.fixture
def operator(live_server: LiveServer) -> tuple[str, int]:
    """(token, capture session id) of a fresh operator."""
    _name, token = live_server.new_operator("bulk")
    _assessment, session_id = live_server.new_capture_session(token, "bulk upload")
    return token, session_id


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def captures(live_server: LiveServer, token: str, session_id: int) -> list[dict]:
    r = live_server.api(token).get(f"/api/sessions/{session_id}/captures?per_page=200")
    r.raise_for_status()
    return r.json()["captures"]


def run_json(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    token: str,
    *args: str,
) -> tuple[int, list[dict], dict]:
    """Run the command in this process with --json: (exit status, file objects, summary)."""
    monkeypatch.setenv("TUSCAM_TOKEN", token)
    status = main([*args, "--json"])
    out = capsys.readouterr().out
    objects = [json.loads(line) for line in out.splitlines()]
    return status, objects[:-1], objects[-1]["summary"]


def test_fifty_images_become_bulk_captures_with_their_sha256(
    live_server: LiveServer,
    operator: tuple[str, int],
    images: Callable[..., list[Path]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token, session_id = operator
    paths = images(50)
    args = [str(tmp_path / "photos"), "--server", live_server.url, "--session", str(session_id)]
    args += ["--state", str(tmp_path / "state.sqlite3"), "--parallel", "4"]
    status, files, summary = run_json(monkeypatch, capsys, token, *args)
    assert status == 0, files
    assert summary["uploaded"] == 50 and summary["ok"]
    assert {f["status"] for f in files} == {"accepted"}
    found = captures(live_server, token, session_id)
    assert len(found) == 50
    assert {c["capture_trigger"] for c in found} == {"bulk"}
    assert {c["capture_type"] for c in found} == {"photo"}
    assert {c["filename"]: c["sha256"] for c in found} == {p.name: sha256(p) for p in paths}
    assert {c["id"] for c in found} == {f["capture_id"] for f in files}

    # The same run again finds everything landed and sends nothing.
    status, files, summary = run_json(monkeypatch, capsys, token, *args)
    assert status == 0 and summary["skipped"] == 50 and summary["bytes_sent"] == 0
    assert len(captures(live_server, token, session_id)) == 50


def test_a_run_killed_with_sigkill_resumes_without_duplicates_or_resending(
    live_server: LiveServer, operator: tuple[str, int], tmp_path: Path
) -> None:
    token, session_id = operator
    paths = [make_noise_png(tmp_path / "big" / f"big_{i}.png", 3 * MiB) for i in range(6)]
    total = sum(p.stat().st_size for p in paths)
    env = {**os.environ, "TUSCAM_TOKEN": token, "PYTHONPATH": str(ROOT)}
    with FaultProxy(live_server.port, throttle=8 * MiB) as proxy:
        command = [
            sys.executable,
            "-m",
            "uploader",
            str(tmp_path / "big"),
            "--server",
            proxy.url,
            "--session",
            str(session_id),
            "--parallel",
            "2",
            "--chunk-size",
            "256K",
            "--state",
            str(tmp_path / "state.sqlite3"),
            "--json",
        ]
        first = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while proxy.bytes_up < 0.4 * total and time.monotonic() < deadline:
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=10)
        killed_at = proxy.bytes_up
        assert first.returncode == -signal.SIGKILL
        assert 0.3 * total < killed_at < 0.9 * total

        proxy.throttle = None
        second = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, timeout=60)
        assert second.returncode == 0, second.stdout.decode() + second.stderr.decode()
        lines = [json.loads(line) for line in second.stdout.decode().splitlines()]
        files, summary = lines[:-1], lines[-1]["summary"]
    assert summary["ok"] and len(files) == 6
    assert any(f["resumed_from"] > 0 for f in files), files
    found = captures(live_server, token, session_id)
    assert sorted(c["status"] for c in found) == ["accepted"] * 6
    assert sorted(c["sha256"] for c in found) == sorted(sha256(p) for p in paths)
    # Everything the server got, both runs, headers included, stays near the data set.
    assert proxy.bytes_up < 1.1 * total, (proxy.bytes_up, total)


def test_a_40_mib_file_completes_byte_exact_through_a_proxy_cutting_every_3_mb(
    live_server: LiveServer,
    operator: tuple[str, int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token, session_id = operator
    path = make_noise_png(tmp_path / "large.png", 40 * MiB)
    with FaultProxy(live_server.port, cut_after=3_000_000) as proxy:
        status, [result], _summary = run_json(
            monkeypatch,
            capsys,
            token,
            str(path),
            "--server",
            proxy.url,
            "--session",
            str(session_id),
            "--state",
            str(tmp_path / "state.sqlite3"),
        )
    assert status == 0 and result["status"] == "accepted", result
    assert proxy.cuts >= 10
    upload_id = result["upload_url"].rstrip("/").rsplit("/", 1)[-1]
    stored = live_server.api(token).get(f"/files/{upload_id}", timeout=60)
    assert stored.status_code == 200
    assert hashlib.sha256(stored.content).hexdigest() == sha256(path)
    [capture] = captures(live_server, token, session_id)
    assert capture["sha256"] == sha256(path) and capture["bytes"] == path.stat().st_size
    assert path.stat().st_size > 40 * MiB


def test_a_corrupt_image_is_reported_rejected_with_the_servers_reason(
    live_server: LiveServer,
    operator: tuple[str, int],
    images: Callable[..., list[Path]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token, session_id = operator
    images(2)
    (tmp_path / "photos" / "truncated.jpg").write_bytes(test_images.truncated_jpeg(0.8))
    args = [str(tmp_path / "photos"), "--server", live_server.url, "--session", str(session_id)]
    args += ["--state", str(tmp_path / "state.sqlite3")]
    status, files, summary = run_json(monkeypatch, capsys, token, *args)
    assert status == 1
    assert (summary["uploaded"], summary["rejected"]) == (2, 1)
    [bad] = [f for f in files if f["status"] == "rejected"]
    assert bad["path"].endswith("truncated.jpg")
    capture = live_server.api(token).get(f"/api/captures/{bad['capture_id']}").json()
    assert capture["status"] == "rejected"
    assert bad["reason"] and bad["reason"] == capture["reject_reason"][: len(bad["reason"])]
    # A second run says so again instead of calling the file "already there".
    status, files, summary = run_json(monkeypatch, capsys, token, *args)
    assert status == 1 and summary["rejected"] == 1 and summary["skipped"] == 2


def test_a_stored_url_the_server_forgot_makes_the_file_start_over(
    live_server: LiveServer,
    operator: tuple[str, int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token, session_id = operator
    path = make_noise_png(tmp_path / "photos" / "again.png", 600_000)
    state_path = tmp_path / "state.sqlite3"
    # Send a first part, as a killed run would have, then delete the upload on the server.
    options = Options(live_server.url, session_id, token, chunk_size=200_000)
    transfer = Transfer(options, StateStore(state_path))
    transfer.upload(collect([path])[0], lambda offset: offset and transfer.stop.set())
    transfer.close()
    transfer.state.close()
    with StateStore(state_path) as state:
        file = collect([path])[0]
        record = state.get(transfer.key(file, sha256(path)))
    assert record is not None and record.upload_url and not record.done
    head = requests.head(
        record.upload_url,
        headers={"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"},
        timeout=10,
    )
    assert head.headers["Upload-Offset"] == "200000"
    deleted = requests.delete(
        record.upload_url,
        headers={"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"},
        timeout=10,
    )
    assert deleted.status_code == 204

    status, [result], _summary = run_json(
        monkeypatch,
        capsys,
        token,
        str(path),
        "--server",
        live_server.url,
        "--session",
        str(session_id),
        "--state",
        str(state_path),
    )
    assert status == 0 and result["status"] == "accepted"
    assert result["restarted"] and result["upload_url"] != record.upload_url
    assert result["sent"] == path.stat().st_size
    [capture] = captures(live_server, token, session_id)
    assert capture["sha256"] == sha256(path)
