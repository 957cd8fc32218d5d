"""Request bodies read straight from gunicorn's socket (GunicornBody), under a real gunicorn:
a stalled client keeps every byte that arrived, and keep-alive connections stay in step."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.support.server import LiveServer, start_live_server
from tests.support.tus import TusClient, capture_metadata, sha256

IDLE_TIMEOUT = 2


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    env = {"TUSCAM_TUS_BODY_IDLE_TIMEOUT": str(IDLE_TIMEOUT)}
    with start_live_server(tmp_path_factory.mktemp("body"), workers=1, threads=4, env=env) as s:
        yield s


@pytest.fixture(scope="module")
def operator(server: LiveServer) -> tuple[TusClient, int]:
    _name, token = server.new_operator()
    _aid, sid = server.new_capture_session(token)
    return TusClient(server.url, token), sid


def patch_head(url: str, token: str, offset: int, length: int) -> bytes:
    parts = urlsplit(url)
    return (
        f"PATCH {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Authorization: Bearer {token}\r\nTus-Resumable: 1.0.0\r\n"
        f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: {offset}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def read_responses(sock: socket.socket, count: int) -> list[bytes]:
    """The header blocks of count bodiless responses (204 PATCH, HEAD)."""
    data = b""
    while data.count(b"\r\n\r\n") < count:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    return data.split(b"\r\n\r\n")[:count]


def test_a_stalled_patch_keeps_every_byte_that_arrived(operator) -> None:  # noqa: ANN001
    tus, sid = operator
    url = tus.create(1 << 20, capture_metadata(sid))
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=IDLE_TIMEOUT + 10) as sock:
        sock.sendall(patch_head(url, tus.token, 0, 1 << 20) + os.urandom(300_000))
        started = time.monotonic()  # then silence, the connection kept open
        status_line = read_responses(sock, 1)[0].split(b"\r\n", 1)[0]
        waited = time.monotonic() - started
    assert b" 408 " in status_line and IDLE_TIMEOUT - 0.5 <= waited < IDLE_TIMEOUT + 3
    assert tus.offset(url) == 300_000  # gunicorn's read(n) used to keep the last bytes


def test_a_keep_alive_connection_serves_the_request_sent_right_behind_a_body(
    operator,  # noqa: ANN001
) -> None:
    tus, sid = operator
    data = os.urandom(200_000)
    url = tus.create(len(data) + 1000, capture_metadata(sid))
    parts = urlsplit(url)
    head = (
        f"HEAD {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Authorization: Bearer {tus.token}\r\nTus-Resumable: 1.0.0\r\n\r\n"
    ).encode()
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(patch_head(url, tus.token, 0, len(data)) + data + head)  # pipelined
        patched, headed = read_responses(sock, 2)
    assert patched.startswith(b"HTTP/1.1 204") and b"Upload-Offset: 200000" in patched
    assert headed.startswith(b"HTTP/1.1 200") and b"Upload-Offset: 200000" in headed


def test_a_large_upload_in_big_patches_arrives_byte_exact(operator) -> None:  # noqa: ANN001
    tus, sid = operator
    data = os.urandom(40 << 20)
    url = tus.create(len(data), capture_metadata(sid))
    last = tus.resume(url, data, chunk=8 << 20)
    assert last.status_code == 204 and last.headers["Upload-Offset"] == str(len(data))
    assert sha256(tus.download(url)) == sha256(data)
