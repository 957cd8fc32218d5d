"""Faults against a real gunicorn: workers killed mid-PATCH, and random chunkings with cut
connections and retries (hypothesis). The upload must always end byte-exact."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from services.models import Capture
from tests.support.server import LiveServer, start_live_server
from tests.support.tus import TusClient, capture_metadata, sha256


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server of this module's own: its workers get killed."""
    with start_live_server(tmp_path_factory.mktemp("faults"), workers=2, threads=4) as server:
        yield server


@pytest.fixture(scope="module")
def client(own_server: LiveServer) -> tuple[TusClient, int]:
    _name, token = own_server.new_operator()
    _aid, sid = own_server.new_capture_session(token)
    return TusClient(own_server.url, token), sid


def _wait_workers(server: LiveServer, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while len(server.worker_pids()) < count and time.monotonic() < deadline:
        time.sleep(0.1)


def test_worker_killed_mid_patch_the_upload_resumes_byte_exact(
    own_server: LiveServer, client: tuple[TusClient, int]
) -> None:
    tus, sid = client
    data = os.urandom(3 << 20)
    url = tus.create(len(data), capture_metadata(sid))
    for round_ in range(3):
        offset = tus.offset(url)
        # Send part of a PATCH and keep the connection open while every worker is killed.
        import socket
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
        body = data[offset : offset + (1 << 20)]
        sock.sendall(
            (
                f"PATCH {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                f"Authorization: Bearer {tus.token}\r\nTus-Resumable: 1.0.0\r\n"
                "Content-Type: application/offset+octet-stream\r\n"
                f"Upload-Offset: {offset}\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body[: len(body) // 2]
        )
        time.sleep(0.3)
        for pid in own_server.worker_pids():
            os.kill(pid, signal.SIGKILL)
        sock.close()
        _wait_workers(own_server, 2)
        tus.http.close()  # its keep-alive connection died with the worker
        stored = tus.offset(url)
        assert offset <= stored <= offset + len(body) // 2, (round_, offset, stored)
    last = tus.resume(url, data)
    assert last.status_code == 204
    assert sha256(tus.download(url)) == sha256(data)
    upload_id = url.rsplit("/", 1)[1]
    with own_server.db() as db:
        assert db.scalar(select(func.count()).where(Capture.upload_id == upload_id)) == 1


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    size=st.integers(min_value=0, max_value=400_000),
    plan=st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=150_000), st.sampled_from(["ok", "cut", "retry"])
        ),
        min_size=1,
        max_size=12,
    ),
)
def test_random_chunkings_cuts_and_retries_reconstruct_the_file(
    client: tuple[TusClient, int], size: int, plan: list[tuple[int, str]]
) -> None:
    tus, sid = client
    data = os.urandom(size)
    url = tus.create(size, capture_metadata(sid))
    for chunk, action in plan:
        offset = tus.offset(url)
        if offset >= size:
            break
        piece = data[offset : offset + chunk]
        if action == "cut":
            kept = len(piece) // 2
            tus.send_partial_patch(url, offset, piece[:kept], declared_length=len(piece))
            got = tus.wait_offset(url, offset + kept, timeout=10)
            assert offset <= got <= offset + kept
        elif action == "retry":
            assert tus.patch(url, offset, piece).status_code == 204
            # The same chunk again, as after a lost response: refused, nothing changes.
            assert tus.patch(url, offset, piece).status_code == 409
        else:
            assert tus.patch(url, offset, piece).status_code == 204
    tus.resume(url, data, chunk=64 * 1024)
    assert tus.offset(url) == size
    assert sha256(tus.download(url)) == sha256(data)


def test_data_directory_holds_nothing_outside_uploads_and_captures(own_server: LiveServer) -> None:
    names = {p.name for p in Path(own_server.data_dir).iterdir()}
    assert names <= {"uploads", "captures"}
