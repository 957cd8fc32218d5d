"""An operator trying to exhaust the tus server: concatenation that multiplies writes, quotas
under concurrent creation, unauthenticated bodies, racing release requests, and what a user
may hold (byte quota, retention of finished uploads, partials that no final used)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.adversarial.conftest import (
    Hostile,
    Operator,
    captures_of,
    hostile_server,
    new_operator,
    raw,
)
from tests.support.server import ROOT
from tests.support.tus import capture_metadata, sha256

MAX_PARTS = 5
MAX_BYTES = 200_000
MAX_UNFINISHED = 5
EXPIRY = 3  # the server of the expiry test; the others keep uploads far longer than a test


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    env = {
        "TUSCAM_TUS_MAX_CONCAT_PARTS": str(MAX_PARTS),
        "TUSCAM_TUS_MAX_BYTES_PER_USER": str(MAX_BYTES),
        "TUSCAM_TUS_MAX_UNFINISHED_PER_USER": str(MAX_UNFINISHED),
        "TUSCAM_UPLOAD_EXPIRY": "600",
        "TUSCAM_TUS_RETAIN_SECONDS": "0",
    }
    with hostile_server(tmp_path_factory.mktemp("tight"), env=env) as h:
        yield h


@pytest.fixture(scope="module")
def expiring(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    env = {"TUSCAM_UPLOAD_EXPIRY": str(EXPIRY), "TUSCAM_TUS_RETAIN_SECONDS": "0"}
    with hostile_server(tmp_path_factory.mktemp("expiring"), env=env) as h:
        yield h


@pytest.fixture
def user(tight: Hostile) -> Operator:
    return new_operator(tight.server)


def _partial(op: Operator, data: bytes) -> str:
    url = op.tus.create(len(data), {"filename": "part"}, **{"Upload-Concat": "partial"})
    assert op.tus.patch(url, 0, data).status_code == 204
    return url


def _final(tight: Hostile, op: Operator, urls: list[str]) -> tuple[int, dict]:
    headers = {
        **op.auth,
        "Upload-Concat": "final;" + " ".join(u.split(op.base, 1)[1] for u in urls),
        "Upload-Metadata": op.metadata(),
    }
    r = raw(tight.server.port, "POST", "/files/", headers)
    return r.status, json.loads(r.body) if r.body else {}


def _uploads_bytes(h: Hostile) -> int:
    return sum(p.stat().st_size for p in h.uploads.iterdir() if p.is_file() and len(p.name) == 32)


# --- concatenation ----------------------------------------------------------------------------


def test_a_final_naming_one_partial_twice_is_400_and_writes_nothing(
    tight: Hostile, user: Operator
) -> None:
    part = _partial(user, os.urandom(1000))
    before = _uploads_bytes(tight)
    status, body = _final(tight, user, [part, part])
    assert status == 400, body
    assert "more than once" in body["message"]
    assert _uploads_bytes(tight) == before


def test_a_final_naming_more_partials_than_allowed_is_400(tight: Hostile, user: Operator) -> None:
    parts = [_partial(user, os.urandom(10)) for _ in range(MAX_PARTS + 1)]
    status, body = _final(tight, user, parts)
    assert status == 400, body
    assert f"at most {MAX_PARTS}" in body["message"]
    status, body = _final(tight, user, parts[:MAX_PARTS])
    assert status == 201, body


# --- what a user may hold ---------------------------------------------------------------------


def test_bytes_held_are_limited_per_user_partials_and_finals_included(
    tight: Hostile, user: Operator, other: Operator
) -> None:
    part = _partial(user, os.urandom(60_000))
    second = _partial(user, os.urandom(60_000))
    # 120,000 held; a final of both would hold 120,000 more: over 200,000.
    status, body = _final(tight, user, [part, second])
    assert status == 429, body
    assert "bytes" in body["message"]
    headers = {**user.auth, "Upload-Length": "90000", "Upload-Metadata": user.metadata()}
    r = raw(tight.server.port, "POST", "/files/", headers)
    assert r.status == 429 and b"200000" in r.body
    # Another user is not affected, and terminating frees the bytes.
    assert other.create(90_000)
    assert user.tus.http.delete(second, timeout=30).status_code == 204
    assert raw(tight.server.port, "POST", "/files/", headers).status == 201


def test_a_deferred_upload_cannot_grow_past_the_byte_quota(tight: Hostile, user: Operator) -> None:
    url = user.tus.create(None, capture_metadata(user.session_id))
    assert user.tus.patch(url, 0, b"x" * 150_000).status_code == 204
    r = user.tus.patch(url, 150_000, b"x" * 60_000)
    assert r.status_code == 429, r.text
    assert user.tus.offset(url) == 150_000


def test_concurrent_creations_never_pass_the_unfinished_quota(
    tight: Hostile, user: Operator
) -> None:
    headers = {**user.auth, "Upload-Length": "10", "Upload-Metadata": user.metadata()}

    def post(_: int) -> int:
        return raw(tight.server.port, "POST", "/files/", headers).status

    with ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(post, range(30)))
    assert sorted(set(statuses)) == [201, 429]
    assert statuses.count(201) == MAX_UNFINISHED


def _cleanup(h: Hostile) -> str:
    result = subprocess.run(
        [sys.executable, "-c", "from app.cli import main; main()", "cleanup"],
        cwd=ROOT,
        env=h.server.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def test_cleanup_removes_the_tus_copy_of_a_recorded_capture_and_head_still_answers(
    tight: Hostile, user: Operator
) -> None:
    data = os.urandom(3000)
    url, last = user.tus.upload(data, capture_metadata(user.session_id, "f.bin"))
    upload_id = url.rsplit("/", 1)[1]
    assert last.headers["Tuscam-Capture-Status"] == "rejected"  # not an image: still recorded
    assert (tight.uploads / upload_id).exists()
    output = _cleanup(tight)
    assert "retired" in output
    assert not (tight.uploads / upload_id).exists()
    head = user.tus.head(url)
    assert head.status_code == 200
    assert head.headers["Upload-Offset"] == head.headers["Upload-Length"] == str(len(data))
    assert head.headers["Tuscam-Capture-Id"] == last.headers["Tuscam-Capture-Id"]
    assert len(captures_of(tight.server, upload_id)) == 1
    # The bytes it held are free again.
    headers = {**user.auth, "Upload-Length": str(MAX_BYTES), "Upload-Metadata": user.metadata()}
    assert raw(tight.server.port, "POST", "/files/", headers).status == 201


def test_a_complete_partial_no_final_used_expires(expiring: Hostile) -> None:
    user = new_operator(expiring.server)
    part = _partial(user, os.urandom(5000))
    time.sleep(EXPIRY + 0.5)
    assert user.tus.head(part).status_code == 410
    _cleanup(expiring)
    assert not (expiring.uploads / part.rsplit("/", 1)[1]).exists()


# --- requests that must not cost the server -----------------------------------------------------


def test_an_unauthenticated_body_is_refused_at_once_without_being_read(tight: Hostile) -> None:
    head = (
        b"PATCH /files/0123456789abcdef0123456789abcdef HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n"
        b"Upload-Offset: 0\r\nContent-Length: 50000000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", tight.server.port), timeout=5) as sock:
        sock.sendall(head + b"x" * 1000)
        started = time.monotonic()
        received = b""
        while True:
            chunk = sock.recv(65536)  # the server ends the connection after its answer
            if not chunk:
                break
            received += chunk
        assert time.monotonic() - started < 3
    assert received.startswith(b"HTTP/1.1 401"), received[:100]


def test_racing_requests_for_one_upload_never_get_a_5xx(tight: Hostile, user: Operator) -> None:
    data = os.urandom(4000)
    url = user.tus.create(len(data), capture_metadata(user.session_id, "race.bin"))
    statuses: list[int] = []
    stop = time.monotonic() + 4

    def hammer() -> None:
        while time.monotonic() < stop:
            offset = user.tus.offset(url)
            if offset >= len(data):
                return
            r = user.tus.patch(url, offset, data[offset : offset + 100])
            statuses.append(r.status_code)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses and all(s < 500 for s in statuses), sorted(set(statuses))
    assert set(statuses) <= {204, 409, 423}
    assert sha256(user.tus.download(url)) == sha256(data) or user.tus.offset(url) < len(data)
