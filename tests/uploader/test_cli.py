"""The tuscam-upload command line: usage errors, output forms, exit statuses, dry run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.proxy import FaultProxy
from tests.uploader.conftest import FakeTus
from uploader.cli import main
from uploader.state import StateStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def run(
    monkeypatch: pytest.MonkeyPatch, state_path: Path, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str, str]]:
    monkeypatch.setenv("TUSCAM_TOKEN", "fake-token")

    def run(*args: str, server: str = "http://127.0.0.1:9") -> tuple[int, str, str]:
        argv = [*args, "--server", server, "--session", "42", "--state", str(state_path)]
        try:
            status = main(argv)
        except SystemExit as exc:
            status = exc.code  # type: ignore[assignment]
        out, err = capsys.readouterr()
        return status, out, err

    return run


def test_without_a_token_it_is_a_usage_error(
    run: Callable[..., tuple[int, str, str]],
    monkeypatch: pytest.MonkeyPatch,
    images: Callable[..., list[Path]],
) -> None:
    [path] = images(1)
    monkeypatch.delenv("TUSCAM_TOKEN")
    status, _out, err = run(str(path))
    assert status == 2 and "TUSCAM_TOKEN" in err


def test_a_token_on_the_command_line_is_refused(
    run: Callable[..., tuple[int, str, str]], images: Callable[..., list[Path]]
) -> None:
    [path] = images(1)
    status, _out, err = run(str(path), "--token", "secret")
    assert status == 2 and "--token is not accepted" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/no/such/folder"], "no such file or directory"),
        (["{empty}"], "no files to upload"),
        (["{photos}", "--chunk-size", "lots"], "--chunk-size"),
        (["{photos}", "--parallel", "0"], "--parallel"),
    ],
)
def test_bad_arguments_exit_with_status_2(
    run: Callable[..., tuple[int, str, str]],
    images: Callable[..., list[Path]],
    tmp_path: Path,
    args: list[str],
    message: str,
) -> None:
    images(1)
    (tmp_path / "empty").mkdir()
    args = [a.format(empty=tmp_path / "empty", photos=tmp_path / "photos") for a in args]
    status, _out, err = run(*args)
    assert status == 2 and message in err


def test_the_token_can_come_from_a_file(
    run: Callable[..., tuple[int, str, str]],
    monkeypatch: pytest.MonkeyPatch,
    fake_tus: FakeTus,
    images: Callable[..., list[Path]],
    tmp_path: Path,
) -> None:
    images(2)
    monkeypatch.setenv("TUSCAM_TOKEN", "wrong")
    (tmp_path / "token").write_text("fake-token\n")
    status, out, _err = run(
        str(tmp_path / "photos"), "--token-file", str(tmp_path / "token"), server=fake_tus.url
    )
    assert status == 0, out
    assert "2 uploaded, 0 already there" in out


def test_json_gives_one_object_per_file_and_a_summary(
    run: Callable[..., tuple[int, str, str]],
    fake_tus: FakeTus,
    images: Callable[..., list[Path]],
    tmp_path: Path,
) -> None:
    images(3)
    (tmp_path / "photos" / "zz_corrupt.jpg").write_bytes(b"garbage")
    status, out, _err = run(str(tmp_path / "photos"), "--json", server=fake_tus.url)
    lines = [json.loads(line) for line in out.splitlines()]
    assert status == 1
    files, summary = lines[:-1], lines[-1]["summary"]
    assert sorted(f["status"] for f in files) == ["accepted"] * 3 + ["rejected"]
    bad = next(f for f in files if f["status"] == "rejected")
    assert bad["reason"] == "not an image: cannot identify image file"
    assert bad["path"].endswith("zz_corrupt.jpg") and bad["bytes"] == 7
    assert all(f["upload_url"].startswith(fake_tus.url + "/files/") for f in files)
    assert {k: summary[k] for k in ("files", "uploaded", "rejected", "failed", "ok")} == {
        "files": 4,
        "uploaded": 3,
        "rejected": 1,
        "failed": 0,
        "ok": False,
    }


def test_a_second_run_skips_what_landed_and_exits_0(
    run: Callable[..., tuple[int, str, str]],
    fake_tus: FakeTus,
    images: Callable[..., list[Path]],
    tmp_path: Path,
) -> None:
    images(3)
    assert run(str(tmp_path / "photos"), server=fake_tus.url)[0] == 0
    status, out, _err = run(str(tmp_path / "photos"), server=fake_tus.url)
    assert status == 0
    assert "0 uploaded, 3 already there" in out
    assert fake_tus.requests["POST"] == 3


def test_dry_run_lists_files_sizes_and_state_without_sending(
    run: Callable[..., tuple[int, str, str]],
    fake_tus: FakeTus,
    images: Callable[..., list[Path]],
    tmp_path: Path,
) -> None:
    paths = images(2)
    assert run(str(paths[0]), server=fake_tus.url)[0] == 0
    fake_tus.requests.clear()
    status, out, _err = run(str(tmp_path / "photos"), "--dry-run", "--json", server=fake_tus.url)
    assert status == 0 and not fake_tus.requests
    rows = {Path(r["path"]).name: r for r in map(json.loads, out.splitlines())}
    assert rows["img_000.jpg"]["state"].startswith("done (accepted")
    assert rows["img_001.jpg"]["state"] == "new"
    assert rows["img_001.jpg"]["bytes"] == paths[1].stat().st_size
    status, out, _err = run(str(tmp_path / "photos"), "--dry-run", server=fake_tus.url)
    assert "2 files" in out and "nothing was sent" in out


def test_a_failure_of_one_file_does_not_stop_the_others_and_exits_1(
    run: Callable[..., tuple[int, str, str]],
    fake_tus: FakeTus,
    images: Callable[..., list[Path]],
    tmp_path: Path,
) -> None:
    images(2)
    fake_tus.refuse_post = (413, "The file is larger than 1 MiB.")
    status, out, _err = run(str(tmp_path / "photos"), server=fake_tus.url)
    assert status == 1
    assert "0 uploaded, 0 already there, 0 duplicate, 0 rejected, 2 failed" in out
    assert out.count("413: The file is larger than 1 MiB.") >= 2


def test_a_refusal_about_the_session_stops_the_run_with_one_line_and_exit_2(
    run: Callable[..., tuple[int, str, str]],
    fake_tus: FakeTus,
    images: Callable[..., list[Path]],
    tmp_path: Path,
) -> None:
    images(3)
    fake_tus.refuse_post = (403, "uploading needs the operator role; you are reviewer")
    status, out, err = run(str(tmp_path / "photos"), "--parallel", "1", server=fake_tus.url)
    assert status == 2
    assert fake_tus.requests["POST"] == 1 and not fake_tus.uploads
    assert err.splitlines()[-1] == (
        "tuscam-upload: error: you may not upload to capture session 42 "
        "(403: uploading needs the operator role; you are reviewer)"
    )
    assert "0 failed, 3 not finished" in out


def test_ctrl_c_stops_cleanly_keeping_the_state_and_a_rerun_finishes(
    fake_tus: FakeTus, images: Callable[..., list[Path]], tmp_path: Path, state_path: Path
) -> None:
    images(4, pad_to=400_000)
    port = int(fake_tus.url.rsplit(":", 1)[1])
    env = {**os.environ, "TUSCAM_TOKEN": fake_tus.token, "PYTHONPATH": str(ROOT)}
    with FaultProxy(port, throttle=400_000) as proxy:
        command = [sys.executable, "-m", "uploader", str(tmp_path / "photos"), "--json"]
        command += ["--server", proxy.url, "--session", "42", "--state", str(state_path)]
        command += ["--chunk-size", "64K", "--parallel", "2"]
        first = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while proxy.bytes_up < 300_000 and time.monotonic() < deadline:
            time.sleep(0.02)
        first.send_signal(signal.SIGINT)
        out, _ = first.communicate(timeout=10)
        assert first.returncode == 130
        summary = json.loads(out.decode().splitlines()[-1])["summary"]
        assert summary["interrupted"] >= 2 and not summary["ok"]
        with StateStore(state_path) as state:
            assert state.count() >= 2  # the started uploads' URLs are kept
        proxy.throttle = None
        second = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, timeout=30)
    assert second.returncode == 0
    assert fake_tus.requests["POST"] == 4
    assert fake_tus.body_bytes == 4 * 400_000


def test_a_gateway_answering_503_mid_run_is_waited_for_with_one_line(
    run: Callable[..., tuple[int, str, str]],
    fake_tus: FakeTus,
    images: Callable[..., list[Path]],
    tmp_path: Path,
) -> None:
    images(6, pad_to=5000)
    fake_tus.outage = (4, 3.0)  # after the 4th PATCH, 503 for 3 s
    status, out, err = run(
        str(tmp_path / "photos"),
        "--chunk-size",
        "2K",
        "--max-backoff",
        "0.05s",
        server=fake_tus.url,
    )
    assert status == 0, out + err
    assert "6 uploaded" in out and "0 failed" in out
    [waiting] = [line for line in err.splitlines() if "unreachable" in line]
    assert waiting.startswith("server unreachable (service unavailable, 503) — waiting")
    assert len(fake_tus.uploads) == 6
    # Far more tries than the 11 a file used to get before it was reported failed.
    assert fake_tus.requests["OPTIONS"] > 20


def test_no_exception_text_reaches_the_person_running_the_command(
    run: Callable[..., tuple[int, str, str]],
    images: Callable[..., list[Path]],
    tmp_path: Path,
) -> None:
    images(2)
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]  # nothing listens there once closed
    status, out, err = run(
        str(tmp_path / "photos"), "--max-wait", "1s", "--json", server=f"http://127.0.0.1:{port}"
    )
    assert status == 75
    summary = json.loads(out)["summary"]
    assert summary["error"] == "server-unreachable" and summary["left"] == 2
    assert summary["message"] == ("the server has been unreachable for 1 s (connection refused)")
    for text in (out, err):
        for internal in ("HTTPConnectionPool", "Max retries", "Error(", "object at 0x", "urllib3"):
            assert internal not in text


def test_an_outage_longer_than_max_wait_exits_75_keeping_the_state_for_the_next_run(
    run: Callable[..., tuple[int, str, str]],
    fake_tus: FakeTus,
    images: Callable[..., list[Path]],
    tmp_path: Path,
) -> None:
    images(6, pad_to=5000)
    fake_tus.outage = (1, 4.0)  # after the first PATCH, 503 for 4 s: no file is done yet
    args = [str(tmp_path / "photos"), "--chunk-size", "2K", "--parallel", "2"]
    status, out, err = run(*args, "--max-wait", "1s", "--max-backoff", "0.1s", server=fake_tus.url)
    assert status == 75
    lines = err.splitlines()
    assert len([line for line in lines if "unreachable (service unavailable, 503)" in line]) == 1
    assert lines[-1] == (
        "tuscam-upload: gave up waiting: the server has been unreachable for 1 s "
        "(service unavailable, 503); 6 files left; run the same command again to resume"
    )
    assert "0 failed, 6 not finished" in out
    # The two files in flight (the second may not have started before the first met the
    # outage and every worker held); nothing new started.
    posted = fake_tus.requests["POST"]
    assert 1 <= posted <= 2
    resumable = len(fake_tus.uploads)
    assert resumable >= 1
    time.sleep(4)
    status, out, _err = run(*args, server=fake_tus.url)
    assert status == 0 and "6 uploaded" in out
    # The uploads created before the outage were resumed, not created again.
    assert fake_tus.requests["POST"] == posted + 6 - resumable
    assert sorted(len(up.data) for up in fake_tus.uploads.values()) == sorted(
        p.stat().st_size for p in (tmp_path / "photos").iterdir()
    )
