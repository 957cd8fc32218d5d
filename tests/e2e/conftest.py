"""Fixtures for the browser tests: Debian's Chromium driven by playwright-core from node, a fake
camera that plays a generated clip, a fresh operator and capture session per test."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import LiveServer

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
SCENARIOS = Path(__file__).with_name("scenarios.mjs")
MANIFEST = ROOT / "app" / "static" / "dist" / ".vite" / "manifest.json"
CHROMIUM = Path(os.environ.get("TUSCAM_CHROMIUM", "/usr/bin/chromium"))

# The clip the fake camera plays: left half red, right half blue (YUV 4:2:0, BT.601 studio range).
CLIP_SIZE = (640, 360)
RED_YUV = (81, 90, 240)
BLUE_YUV = (41, 240, 110)


def _missing(reason: str) -> None:
    # CI must run these tests; a developer machine without Chromium skips them with the fix.
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser_ready() -> None:
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} is missing: apt-get install -y chromium (or scripts/system-deps.sh)")
    if shutil.which("node") is None:
        _missing("node is missing (Node 20+ is needed for the browser tests)")
    if not (ROOT / "node_modules" / "playwright-core").is_dir():
        _missing("node_modules is missing: run `npm ci` in the repository root")
    if not MANIFEST.exists():
        # The pages need the built bundle; building takes about two seconds.
        subprocess.run(["npm", "run", "build", "--silent"], cwd=ROOT, check=True, timeout=300)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)


def write_y4m(path: Path, width: int, height: int, frames: int = 10) -> None:
    """A Y4M clip (what Chromium's --use-file-for-fake-video-capture plays)."""
    half = width // 2
    (ry, ru, rv), (by, bu, bv) = RED_YUV, BLUE_YUV
    y_plane = (bytes([ry]) * half + bytes([by]) * (width - half)) * height
    cw, ch = width // 2, height // 2
    u_plane = (bytes([ru]) * (cw // 2) + bytes([bu]) * (cw - cw // 2)) * ch
    v_plane = (bytes([rv]) * (cw // 2) + bytes([bv]) * (cw - cw // 2)) * ch
    frame = b"FRAME\n" + y_plane + u_plane + v_plane
    header = f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1\n".encode()
    path.write_bytes(header + frame * frames)


@pytest.fixture(scope="session")
def camera_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "camera.y4m"
    write_y4m(path, *CLIP_SIZE)
    return path


@dataclass
class Operator:
    username: str
    password: str
    token: str
    assessment_id: int
    session_id: int


@pytest.fixture
def operator(live_server: LiveServer) -> Operator:
    """A fresh operator (password for the login form, token for the API) and an open session."""
    username = f"cam-{secrets.token_hex(4)}"
    password = live_server.create_user(username, "operator")
    token = live_server.create_token(username)
    assessment_id, session_id = live_server.new_capture_session(token, label=f"{username} bench")
    return Operator(username, password, token, assessment_id, session_id)


ScenarioRunner = Callable[..., dict[str, Any]]


@pytest.fixture
def run_scenario(
    browser_ready: None, live_server: LiveServer, camera_clip: Path, operator: Operator
) -> ScenarioRunner:
    """Run a scenario of scenarios.mjs; returns its JSON result, fails the test on its error."""

    def run(
        name: str,
        *,
        base: str | None = None,
        timeout: float = 300,
        on_signal: Callable[[str], None] | None = None,
        **extra: Any,
    ):
        go_file = ARTIFACTS / f".go-{secrets.token_hex(4)}"
        config = {
            "base": base or live_server.url,
            "username": operator.username,
            "password": operator.password,
            "token": operator.token,
            "sessionId": operator.session_id,
            "chromiumPath": str(CHROMIUM),
            "clip": str(camera_clip),
            "artifacts": str(ARTIFACTS),
            "goFile": str(go_file),
            **extra,
        }
        proc = subprocess.Popen(
            ["node", str(SCENARIOS), name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(config))
        proc.stdin.close()
        out: list[str] = []
        watchdog = threading.Timer(timeout, proc.kill)  # a hung browser must not hang the run
        watchdog.start()
        try:
            # A scenario may print {"signal": name} and wait for the go file (see handshake()).
            for line in proc.stdout:
                out.append(line)
                if line.startswith('{"signal"'):
                    if on_signal is not None:
                        on_signal(json.loads(line)["signal"])
                    go_file.touch()
            proc.wait(timeout=timeout)
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
            go_file.unlink(missing_ok=True)
        stderr = proc.stderr.read() if proc.stderr else ""
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        lines = [ln for ln in out if ln.startswith("{") and not ln.startswith('{"signal"')]
        if not lines:
            pytest.fail(
                f"scenario {name} printed no result (exit {proc.returncode}):\n"
                f"{''.join(out)}\n{stderr}\n{live_server.log()[-3000:]}"
            )
        result = json.loads(lines[-1])
        if result.get("error"):
            console = "\n".join(result.get("console") or [])
            events = json.dumps(result.get("events"), indent=1)[-4000:]
            pytest.fail(
                f"scenario {name} failed: {result['error']}\n--- console\n{console}\n"
                f"--- events\n{events}\n--- server log\n{live_server.log()[-3000:]}"
            )
        # The pages run under the Content-Security-Policy: a violation is a console error.
        violations = [
            line for line in result.get("console") or [] if "Content Security Policy" in line
        ]
        assert not violations, violations
        return result

    return run
