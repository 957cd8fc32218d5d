"""The tus server under a real gunicorn (gthread, 2 workers) with real clients: tuspy, raw
sockets, concurrent connections. Every upload is checked byte for byte."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select
from tusclient import client as tus_client

from services.models import Capture
from tests.support.server import LiveServer
from tests.support.tus import TusClient, capture_metadata, sha256


@pytest.fixture
def operator(live_server: LiveServer) -> tuple[TusClient, int]:
    _name, token = live_server.new_operator()
    _aid, sid = live_server.new_capture_session(token)
    return TusClient(live_server.url, token), sid


def _tuspy(live_server: LiveServer, token: str) -> tus_client.TusClient:
    return tus_client.TusClient(
        live_server.url + "/files/", headers={"Authorization": f"Bearer {token}"}
    )


@pytest.mark.parametrize(
    "size,chunk",
    [(0, 1 << 20), (1, 1 << 20), (5 << 20, 1 << 20), ((33 << 20) + 12345, 4 << 20)],
    ids=["0B", "1B", "5MiB", "33MiB-odd"],
)
def test_tuspy_uploads_arrive_byte_exact(
    live_server: LiveServer, operator: tuple[TusClient, int], size: int, chunk: int
) -> None:
    tus, sid = operator
    data = os.urandom(size)
    uploader = _tuspy(live_server, tus.token).uploader(
        file_stream=__import__("io").BytesIO(data),
        chunk_size=chunk,
        metadata=capture_metadata(sid, "blob.bin"),
    )
    uploader.upload()
    url = uploader.url
    assert tus.offset(url) == size
    assert sha256(tus.download(url)) == sha256(data)


RESUME_SCRIPT = r"""
import io, sys
from tusclient import client
server, token, path, sid, stop_at, url = sys.argv[1:7]
data = open(path, 'rb').read()
c = client.TusClient(server + '/files/', headers={'Authorization': 'Bearer ' + token})
kw = dict(file_stream=io.BytesIO(data), chunk_size=256 * 1024,
          metadata={'filename': 'x.bin', 'session_id': sid})
if url != '-':
    kw['url'] = url
u = c.uploader(**kw)
u.upload(stop_at=int(stop_at) or None)
print(u.url)
"""


def test_tuspy_stopped_then_resumed_in_a_new_process(
    live_server: LiveServer, operator: tuple[TusClient, int], tmp_path: Path
) -> None:
    tus, sid = operator
    data = os.urandom(3 << 20)
    path = tmp_path / "file.bin"
    path.write_bytes(data)
    args = [sys.executable, "-c", RESUME_SCRIPT, live_server.url, tus.token, str(path), str(sid)]
    first = subprocess.run([*args, str(1 << 20), "-"], capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    url = first.stdout.strip()
    assert tus.offset(url) == 1 << 20
    second = subprocess.run([*args, "0", url], capture_output=True, text=True, timeout=60)
    assert second.returncode == 0, second.stderr
    assert tus.offset(url) == len(data)
    assert sha256(tus.download(url)) == sha256(data)


def test_patch_cut_mid_body_keeps_the_bytes_and_resumes(operator: tuple[TusClient, int]) -> None:
    tus, sid = operator
    data = os.urandom(2 << 20)
    url = tus.create(len(data), capture_metadata(sid))
    tus.send_partial_patch(url, 0, data[:700_000], declared_length=len(data))
    assert tus.wait_offset(url, 700_000) == 700_000
    tus.resume(url, data)
    assert sha256(tus.download(url)) == sha256(data)


def test_two_patches_at_the_same_offset_one_wins(operator: tuple[TusClient, int]) -> None:
    tus, sid = operator
    data = os.urandom(4 << 20)
    url = tus.create(len(data), capture_metadata(sid))
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def send() -> None:
        other = TusClient(tus.base_url, tus.token)
        barrier.wait()
        statuses.append(other.patch(url, 0, data[: 2 << 20]).status_code)

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses)[0] == 204
    assert sorted(statuses)[1] in (409, 423, 503), statuses
    tus.resume(url, data)
    assert sha256(tus.download(url)) == sha256(data)


def _captures_for(live_server: LiveServer, url: str) -> int:
    upload_id = url.rstrip("/").rsplit("/", 1)[1]
    with live_server.db() as db:
        return db.scalar(select(func.count()).where(Capture.upload_id == upload_id)) or 0


def test_finish_runs_once_when_the_last_patch_is_retried(
    live_server: LiveServer, operator: tuple[TusClient, int]
) -> None:
    tus, sid = operator
    data = os.urandom(300_000)
    url = tus.create(len(data), capture_metadata(sid))
    assert tus.patch(url, 0, data[:200_000]).status_code == 204
    last = tus.patch(url, 200_000, data[200_000:])
    assert last.status_code == 204
    capture_id = last.headers["Tuscam-Capture-Id"]
    # The client lost that response and sends the last chunk again: the server already has it.
    again = tus.patch(url, 200_000, data[200_000:])
    assert again.status_code == 409
    empty = tus.patch(url, len(data), b"")
    assert empty.status_code == 204
    assert empty.headers["Tuscam-Capture-Id"] == capture_id
    assert _captures_for(live_server, url) == 1
    status = live_server.api(tus.token).get(f"/api/uploads/{url.rsplit('/', 1)[1]}").json()
    assert str(status["capture_id"]) == capture_id


def _race_last_chunk(tus: TusClient, url: str, data: bytes, at: int) -> list[int]:
    """Send the same last chunk on two connections at the same moment."""
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def send() -> None:
        other = TusClient(tus.base_url, tus.token)
        barrier.wait()
        statuses.append(other.patch(url, at, data[at:]).status_code)

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(statuses)


def test_finish_runs_once_when_two_workers_race_for_the_last_chunk(
    live_server: LiveServer, operator: tuple[TusClient, int]
) -> None:
    tus, sid = operator
    for _ in range(5):
        data = os.urandom(600_000)
        url = tus.create(len(data), capture_metadata(sid))
        assert tus.patch(url, 0, data[:300_000]).status_code == 204
        statuses = _race_last_chunk(tus, url, data, 300_000)
        assert statuses[0] == 204 and statuses[1] in (409, 423, 503), statuses
        assert _captures_for(live_server, url) == 1
        assert tus.offset(url) == len(data)
