"""TUSCAM_LOG_FORMAT=json: every line gunicorn and the app write is one JSON object; the named
events tell an upload's story from creation to capture; no token or password in any line."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.support import images
from tests.support.server import LiveServer, start_live_server
from tests.support.tus import TusClient, capture_metadata

CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


@pytest.fixture
def live_json(tmp_path: Path) -> LiveServer:
    env = {"TUSCAM_LOG_FORMAT": "json", "TUSCAM_TUS_LOCK_TIMEOUT": "1"}
    with start_live_server(tmp_path / "server", workers=2, env=env) as server:
        yield server


def read_lines(path: Path) -> list[dict]:
    """Every line parsed as JSON (a line that is not JSON fails the test, naming it)."""
    parsed = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            doc = json.loads(line)
        except ValueError:
            raise AssertionError(f"{path.name}:{number} is not JSON: {line!r}") from None
        assert isinstance(doc, dict), line
        assert {"time", "level", "event", "pid"} <= doc.keys(), line
        parsed.append(doc)
    return parsed


def hold_lock_while(live: LiveServer, token: str, path: str, until: threading.Event) -> bytes:
    """A PATCH that keeps sending a byte every 0.2 s (a live client is never asked to let go)
    until `until` is set, then sends the rest; returns the response's first bytes."""
    with socket.create_connection(("127.0.0.1", live.port)) as sock:
        sock.sendall(
            (
                f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                "Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Length: 100\r\n"
                "Content-Type: application/offset+octet-stream\r\n\r\n"
            ).encode()
        )
        sent = 0
        while not until.is_set() and sent < 90:
            sock.sendall(b"x")
            sent += 1
            time.sleep(0.2)
        sock.sendall(b"x" * (100 - sent))
        return sock.recv(4096)


def test_json_lines_carry_an_upload_from_creation_to_capture(live_json: LiveServer) -> None:
    live = live_json
    password = "pw-" + "Zq7" * 6
    live.create_user("logged-olga", "operator", password=password)
    token = live.create_token("logged-olga")
    _, session_id = live.new_capture_session(token)
    tus = TusClient(live.url, token)

    photo = images.jpeg(80, 60)
    url, last = tus.upload(photo, capture_metadata(session_id, "a.jpg"), chunk=300)
    accepted_id = url.rsplit("/", 1)[1]
    rejected_url, last = tus.upload(images.truncated_jpeg(), capture_metadata(session_id, "b.jpg"))
    assert last.headers["Tuscam-Capture-Status"] == "rejected"
    rejected_id = rejected_url.rsplit("/", 1)[1]
    doomed = tus.create(10, capture_metadata(session_id, "c.jpg"))
    assert tus.http.delete(doomed).status_code == 204

    # A second request for an upload another one is writing waits 1 s, then 423.
    busy = tus.create(100, capture_metadata(session_id, "d.jpg"))
    done = threading.Event()
    holder_answer: list[bytes] = []
    holder = threading.Thread(
        target=lambda: holder_answer.append(
            hold_lock_while(live, token, "/files/" + busy.rsplit("/", 1)[1], done)
        )
    )
    holder.start()
    deadline = time.monotonic() + 10
    while tus.offset(busy) < 1:  # the holder's first byte is stored: it holds the lock
        assert time.monotonic() < deadline, "the holding PATCH never started"
        time.sleep(0.02)
    assert tus.patch(busy, 0, b"y" * 100).status_code == 423
    done.set()
    holder.join(30)
    assert holder_answer and holder_answer[0].startswith(b"HTTP/1.1 204")

    # A failed login, with the password in the form and a token in a query string.
    page = requests.get(live.url + "/auth/login", timeout=10)
    csrf = CSRF_RE.search(page.text).group(1)
    r = requests.post(
        live.url + f"/auth/login?token={token}",
        data={"username": "logged-olga", "password": password + "-wrong", "csrf_token": csrf},
        cookies=page.cookies,
        timeout=10,
    )
    assert r.status_code == 401
    requests.get(live.url + "/api/assessments", headers={"Authorization": f"Bearer {token}x"})

    # The capture store breaks: the finish hook fails, the bytes stay, a hook-failed event.
    captures = live.data_dir / "captures"
    captures.rename(live.data_dir / "captures-away")
    captures.write_text("not a folder")
    other = images.jpeg(80, 60, color=(1, 2, 3))
    failing_url = tus.create(len(other), capture_metadata(session_id, "e.jpg"))
    r = tus.patch(failing_url, 0, other)
    assert r.status_code == 500 and r.json()["error"] == "finish-failed"

    time.sleep(0.5)  # the access log line is written after the response
    server_lines = read_lines(live.log_path)
    access_lines = read_lines(live.log_path.parent / "access.log")
    assert any("Booting worker" in line.get("message", "") for line in server_lines)

    def story(upload_id: str) -> list[str]:
        return [line["event"] for line in server_lines if line.get("upload_id") == upload_id]

    accepted = story(accepted_id)
    assert accepted[0] == "upload-created" and accepted[-2:] == [
        "upload-finished",
        "capture-recorded",
    ]
    assert "upload-progress" in accepted
    created = next(line for line in server_lines if line.get("upload_id") == accepted_id)
    assert created["session_id"] == session_id and created["user"]
    assert created["level"] == "info" and created["time"].endswith("Z")
    recorded = next(
        line
        for line in server_lines
        if line["event"] == "capture-recorded" and line.get("upload_id") == accepted_id
    )
    assert recorded["status"] == "accepted" and recorded["capture_id"] > 0
    assert recorded["duration_ms"] >= 0 and recorded["session_id"] == session_id
    assert story(rejected_id)[-1] == "capture-rejected"
    rejected = [line for line in server_lines if line["event"] == "capture-rejected"]
    assert rejected[0]["reason"] and rejected[0]["level"] == "warning"
    assert story(doomed.rsplit("/", 1)[1])[-1] == "upload-terminated"
    timeouts = [line for line in server_lines if line["event"] == "lock-timeout"]
    assert timeouts and timeouts[0]["upload_id"] == busy.rsplit("/", 1)[1]
    assert timeouts[0]["duration_ms"] >= 900
    (hook_failed,) = [line for line in server_lines if line["event"] == "hook-failed"]
    assert hook_failed["upload_id"] == failing_url.rsplit("/", 1)[1]
    assert hook_failed["level"] == "error" and hook_failed["hook"] == "finish"
    tracebacks = [line for line in server_lines if "exception" in line]
    assert tracebacks and all(line["event"] == "log" for line in tracebacks)
    failed = [line for line in server_lines if line["event"] == "login-failed"]
    assert failed and failed[0]["username"] == "logged-olga"

    patches = [line for line in access_lines if line.get("method") == "PATCH"]
    assert patches and all(line["event"] == "http-request" for line in patches)
    assert {"status", "bytes", "duration_ms", "path", "user"} <= patches[0].keys()
    login = next(
        line
        for line in access_lines
        if line.get("path") == "/auth/login" and line.get("method") == "POST"
    )
    assert login["status"] == 401 and login["query"] == "token=[redacted]"

    everything = live.log_path.read_text() + (live.log_path.parent / "access.log").read_text()
    assert token not in everything and token[:16] not in everything
    assert password not in everything


def test_the_default_stays_readable_text_with_the_events(tmp_path: Path) -> None:
    with start_live_server(tmp_path / "server", workers=1) as live:
        _, token = live.new_operator()
        _, session_id = live.new_capture_session(token)
        url, _ = TusClient(live.url, token).upload(images.jpeg(), capture_metadata(session_id))
        upload_id = url.rsplit("/", 1)[1]
        access_log = live.log_path.parent / "access.log"
        deadline = time.monotonic() + 10
        while f"PATCH /files/{upload_id}" not in access_log.read_text():  # written after
            assert time.monotonic() < deadline, "the PATCH never reached the access log"
            time.sleep(0.05)
        log = live.log()
        access = access_log.read_text()
    assert f"[INFO] upload-created upload_id={upload_id} user=" in log
    assert "[INFO] capture-recorded capture_id=1 status=accepted" in log
    assert not any(line.startswith("{") for line in log.splitlines() + access.splitlines())
    assert re.search(rf'"PATCH /files/{upload_id} HTTP/1.1" 204 0 "-" "python-requests/', access)
    assert token not in log + access
