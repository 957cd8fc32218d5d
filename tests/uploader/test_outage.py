"""tuscam-upload through an outage, against the real server: a forwarder that refuses
connections for a while mid-run, then accepts again. Every file lands once, none is reported
failed, and the wait is one status line."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.proxy import FaultProxy
from tests.support.server import LiveServer
from tests.uploader.conftest import make_noise_png

ROOT = Path(__file__).resolve().parents[2]
WAITING = "server unreachable (connection refused) — waiting, retrying in "


@pytest.fixture
def operator(live_server: LiveServer) -> tuple[str, int]:
    _name, token = live_server.new_operator("outage")
    _assessment, session_id = live_server.new_capture_session(token, "outage")
    return token, session_id


def run_through_an_outage(
    live_server: LiveServer,
    operator: tuple[str, int],
    tmp_path: Path,
    *,
    outage: float,
    extra: list[str],
) -> tuple[subprocess.CompletedProcess[str], list[Path], FaultProxy]:
    """Upload 12 images through a throttled proxy that refuses every connection for `outage`
    seconds once a quarter of the bytes went through."""
    token, session_id = operator
    paths = [make_noise_png(tmp_path / "photos" / f"p{i:02d}.png", 500_000) for i in range(12)]
    total = sum(p.stat().st_size for p in paths)
    env = {**os.environ, "TUSCAM_TOKEN": token, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "uploader", str(tmp_path / "photos"), "--json"]
    command += ["--session", str(session_id), "--state", str(tmp_path / "state.sqlite3")]
    command += ["--parallel", "4", "--chunk-size", "128K", *extra]
    with FaultProxy(live_server.port, throttle=1_000_000) as proxy:
        proc = subprocess.Popen(
            [*command, "--server", proxy.url],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while proxy.bytes_up < total // 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        proxy.refuse()
        assert proc.poll() is None, "the run ended before the outage"
        time.sleep(outage)
        proxy.accept()
        out, err = proc.communicate(timeout=outage + 120)
    return subprocess.CompletedProcess(command, proc.returncode, out, err), paths, proxy


def check_every_file_landed_once(
    done: subprocess.CompletedProcess[str],
    paths: list[Path],
    proxy: FaultProxy,
    live_server: LiveServer,
    operator: tuple[str, int],
) -> None:
    assert done.returncode == 0, done.stderr
    objects = [json.loads(line) for line in done.stdout.splitlines()]
    files, summary = objects[:-1], objects[-1]["summary"]
    assert (summary["uploaded"], summary["failed"], summary["left"]) == (12, 0, 0)
    assert {f["status"] for f in files} == {"accepted"} and len(files) == 12
    token, session_id = operator
    r = live_server.api(token).get(f"/api/sessions/{session_id}/captures?per_page=200")
    found = sorted(c["sha256"] for c in r.json()["captures"])
    assert found == sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in paths)
    # Resumed from the server's offsets, not sent again from the start.
    total = sum(p.stat().st_size for p in paths)
    assert proxy.bytes_up < 1.15 * total, (proxy.bytes_up, total)
    # The wait was said once, and its end once; nothing about single files.
    lines = done.stderr.splitlines()
    waiting = [line for line in lines if "unreachable" in line]
    assert len(waiting) == 1 and waiting[0].startswith(WAITING), lines
    assert waiting[0].endswith(" s; nothing is lost")
    assert len([line for line in lines if line.startswith("server reachable again")]) == 1
    assert len(lines) == 2, lines


def test_twenty_seconds_of_refused_connections_mid_run_are_ridden_out(
    live_server: LiveServer, operator: tuple[str, int], tmp_path: Path
) -> None:
    done, paths, proxy = run_through_an_outage(live_server, operator, tmp_path, outage=20, extra=[])
    check_every_file_landed_once(done, paths, proxy, live_server, operator)


@pytest.mark.soak
@pytest.mark.skipif(os.environ.get("SKIP_SOAK") == "1", reason="SKIP_SOAK=1")
def test_a_three_minute_outage_longer_than_the_old_retry_budget_is_ridden_out(
    live_server: LiveServer, operator: tuple[str, int], tmp_path: Path
) -> None:
    # The old per-file budget was 11 tries over about 150 s; --max-backoff keeps the test from
    # waiting up to 30 s more once the server is back.
    done, paths, proxy = run_through_an_outage(
        live_server, operator, tmp_path, outage=180, extra=["--max-backoff", "2s"]
    )
    check_every_file_landed_once(done, paths, proxy, live_server, operator)
