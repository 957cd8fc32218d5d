"""Workers SIGKILLed mid-PATCH and while the finish hook runs, and a restart that must finish
uploads complete on disk but never recorded. Nothing is lost, no lock stays held, exactly one
capture exists per upload."""

from __future__ import annotations

import fcntl
import json
import os
import random
import signal
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import delete

from services.models import Capture
from tests.adversarial.conftest import (
    LOCK_TIMEOUT,
    OCTETS,
    Hostile,
    Operator,
    captures_of,
    hostile_server,
    new_operator,
    stored,
)
from tests.support import images
from tests.support.tus import capture_metadata, encode_metadata, sha256

WORKERS = 2


@pytest.fixture(scope="module")
def crashing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    env = {"TUSCAM_MAX_UPLOAD_BYTES": str(50_000_000)}
    with hostile_server(tmp_path_factory.mktemp("crash"), workers=WORKERS, env=env) as h:
        yield h


def _wait_workers(h: Hostile, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while len(h.server.worker_pids()) < WORKERS:
        assert time.monotonic() < deadline, "gunicorn did not replace its workers"
        time.sleep(0.05)


def _open_patch(op: Operator, upload_id: str, offset: int, body_length: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", int(op.base.rsplit(":", 1)[1])), timeout=10)
    sock.sendall(
        (
            f"PATCH /files/{upload_id} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {op.token}\r\nTus-Resumable: 1.0.0\r\n"
            f"Content-Type: {OCTETS}\r\nUpload-Offset: {offset}\r\n"
            f"Content-Length: {body_length}\r\n\r\n"
        ).encode()
    )
    return sock


def _consistent_offset(h: Hostile, op: Operator, upload_id: str, data: bytes) -> int:
    """HEAD's offset, checked against the disk. A worker that was not killed may still be
    writing the rest of a PATCH whose client went away, so the file can grow between the
    reads: HEAD lies between the sizes read before and after it, and the bytes are a prefix."""
    before = len(stored(h, upload_id))
    fresh = requests.Session()  # keep-alive connections died with the workers
    r = fresh.head(f"{op.base}/files/{upload_id}", headers=op.auth, timeout=30)
    assert r.status_code == 200, r.status_code
    offset = int(r.headers["Upload-Offset"])
    after = stored(h, upload_id)
    assert before <= offset <= len(after), (before, offset, len(after))
    assert after == data[: len(after)]
    return offset


def _wait_until_free(h: Hostile, upload_id: str, timeout: float = 30) -> None:
    """Until no request holds the upload's lock (the file locker's flock on <id>.lock): a
    surviving worker has finished the PATCH its client abandoned."""
    deadline = time.monotonic() + timeout
    with open(h.uploads / f"{upload_id}.lock", "rb") as lock:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                assert time.monotonic() < deadline, "the upload's lock was never let go"
                time.sleep(0.05)
            else:
                fcntl.flock(lock, fcntl.LOCK_UN)
                return


def test_sigkill_at_random_points_of_patches_never_loses_or_corrupts_bytes(
    crashing: Hostile,
) -> None:
    op = new_operator(crashing.server)
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    data = os.urandom(12_000_000)
    upload_id = op.create(len(data))
    url = f"{op.base}/files/{upload_id}"
    kills, started = 0, time.monotonic()
    while kills < 20 and time.monotonic() - started < 60:  # (workers boot slowly under load)
        offset = _consistent_offset(crashing, op, upload_id, data)
        body = data[offset : offset + 3_000_000]
        sock = _open_patch(op, upload_id, offset, len(body))
        try:
            sock.sendall(body[: rng.randrange(0, len(body))])
            time.sleep(rng.uniform(0, 0.15))
            pids = crashing.server.worker_pids()
            for pid in pids if kills % 3 == 0 else rng.sample(pids, 1):
                os.kill(pid, signal.SIGKILL)
            kills += 1
        except OSError:
            pass  # the worker died under our feet: that is the point
        finally:
            sock.close()
        _wait_workers(crashing)
    assert kills >= 10
    # No lock outlives its process: once a surviving worker has ended the PATCH it was
    # serving, the next PATCH is served at once, never 423.
    _wait_until_free(crashing, upload_id)
    offset = _consistent_offset(crashing, op, upload_id, data)
    assert len(stored(crashing, upload_id)) == offset
    session = requests.Session()
    session.headers.update(op.auth)
    while offset < len(data):
        t0 = time.monotonic()
        r = session.patch(
            url,
            data=data[offset : offset + 4_000_000],
            headers={"Content-Type": OCTETS, "Upload-Offset": str(offset)},
            timeout=60,
        )
        assert r.status_code == 204, (r.status_code, r.text)
        assert time.monotonic() - t0 < LOCK_TIMEOUT + 10
        offset = int(r.headers["Upload-Offset"])
    assert sha256(stored(crashing, upload_id)) == sha256(data)
    assert len(captures_of(crashing.server, upload_id)) == 1


def test_sigkill_while_the_finish_hook_runs_on_a_12_mp_image_leaves_one_capture(
    crashing: Hostile,
) -> None:
    op = new_operator(crashing.server)
    photo = images.jpeg_12mp()
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    for round_ in range(3):
        # A different file each round (a one-byte comment segment), same session.
        data = photo[:2] + b"\xff\xfe\x00\x03" + bytes([round_]) + photo[2:]
        upload_id = op.create(len(data), filename=f"big{round_}.jpg")
        url = f"{op.base}/files/{upload_id}"
        last = 50_000
        r = op.tus.patch(url, 0, data[:-last])
        assert r.status_code == 204
        sock = _open_patch(op, upload_id, len(data) - last, last)
        sock.sendall(data[-last:])
        time.sleep(rng.uniform(0.02, 0.6))  # somewhere in fsync, decode, thumbnail, commit
        for pid in crashing.server.worker_pids():
            os.kill(pid, signal.SIGKILL)
        sock.close()
        _wait_workers(crashing)
        # The restarted workers' reconcile, or the next HEAD, finishes it; once, and no lock
        # is left behind.
        deadline = time.monotonic() + 60
        session = requests.Session()
        session.headers.update(op.auth)
        while True:
            head = session.head(url, timeout=30)
            assert head.status_code == 200, head.status_code
            if "Tuscam-Capture-Id" in head.headers:
                break
            assert time.monotonic() < deadline, "the upload was never finished"
            time.sleep(0.3)
        assert head.headers["Upload-Offset"] == str(len(data))
        rows = captures_of(crashing.server, upload_id)
        assert len(rows) == 1, rows
        assert rows[0].status == "accepted", rows[0].reject_reason
        assert head.headers["Tuscam-Capture-Id"] == str(rows[0].id)
        again = session.patch(
            url, data=b"", headers={"Content-Type": OCTETS, "Upload-Offset": str(len(data))}
        )
        assert again.status_code == 204
        assert again.headers["Tuscam-Capture-Id"] == str(rows[0].id)
        assert sha256(stored(crashing, upload_id)) == sha256(data)
    assert len(captures_of(crashing.server, upload_id)) == 1


# --- reconcile on start -----------------------------------------------------------------------


def _forget_finish(h: Hostile, upload_id: str) -> None:
    """As if the worker died after the last byte and before anything was recorded."""
    with h.server.db() as db:
        db.execute(delete(Capture).where(Capture.upload_id == upload_id))
        db.commit()
    info_path = h.uploads / f"{upload_id}.info"
    info = last_record(info_path)
    info["finished"], info["finish_headers"] = False, {}
    info_path.write_text(json.dumps(info) + "\n")


def last_record(path: Path) -> dict:
    """The record a file store record file holds: its last line (JSON lines)."""
    return json.loads(path.read_text().splitlines()[-1])


def _write_complete_upload(h: Hostile, owner: int, metadata: str, data: bytes) -> str:
    """A complete upload's files, in the file store's format, with no capture row."""
    upload_id = os.urandom(16).hex()
    (h.uploads / upload_id).write_bytes(data)
    now = datetime.now(UTC)
    record = {
        "id": upload_id,
        "owner": str(owner),
        "length": len(data),
        "created_at": now.isoformat(),
        "metadata": metadata,
        "expires_at": (now + timedelta(days=1)).isoformat(),
        "partial": False,
        "concat": None,
        "parts": [],
        "finished": False,
        "finish_headers": {},
    }
    (h.uploads / f"{upload_id}.info").write_text(json.dumps(record))
    return upload_id


def test_a_restart_finishes_uploads_complete_on_disk_but_never_recorded(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    root = tmp_path_factory.mktemp("reconcile")
    data = images.jpeg(color=(200, 10, 10))
    with hostile_server(root) as h:
        op = new_operator(h.server)
        url, last = op.tus.upload(data, capture_metadata(op.session_id, "lost.jpg"))
        assert last.headers["Tuscam-Capture-Status"] == "accepted"
        lost = url.rsplit("/", 1)[1]
        from sqlalchemy import select

        from services.models import User

        with h.server.db() as db:
            owner = db.scalar(select(User.id).where(User.username == op.name))
    _forget_finish(h, lost)
    handmade_data = images.jpeg(color=(10, 200, 10))
    metadata = encode_metadata(capture_metadata(op.session_id, "handmade.jpg"))
    handmade = _write_complete_upload(h, owner, metadata, handmade_data)
    assert captures_of(h.server, lost) == [] and captures_of(h.server, handmade) == []
    with hostile_server(root) as restarted:
        deadline = time.monotonic() + 60
        records = [restarted.uploads / f"{u}.info" for u in (lost, handmade)]
        # The capture row is committed before the record says finished: wait for both.
        while not (
            captures_of(restarted.server, lost)
            and captures_of(restarted.server, handmade)
            and all(last_record(path)["finished"] for path in records)
        ):
            assert time.monotonic() < deadline, "reconcile did not finish the uploads"
            time.sleep(0.2)
        time.sleep(1.0)  # every worker reconciles: still exactly one capture each
        for upload_id, content in ((lost, data), (handmade, handmade_data)):
            rows = captures_of(restarted.server, upload_id)
            assert len(rows) == 1 and rows[0].status == "accepted"
            info = last_record(restarted.uploads / f"{upload_id}.info")
            assert info["finished"] is True
            assert info["finish_headers"]["Tuscam-Capture-Id"] == str(rows[0].id)
            assert stored(restarted, upload_id) == content
        assert Path(restarted.server.data_dir).exists()
