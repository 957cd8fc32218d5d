"""A bad network between client and server (tests/support/proxy.py on 127.0.0.1): connections
cut or reset after N bytes, stalled, throttled. Every upload resumes byte-exact, HEAD's offset is
always the bytes stored, a silent client is dropped after the idle timeout while other uploads
flow, and no lock wait is unbounded."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest
import requests

from tests.adversarial.conftest import (
    IDLE_TIMEOUT,
    LOCK_TIMEOUT,
    OCTETS,
    Hostile,
    Operator,
    Reply,
    build_request,
    head_offset,
    send_raw,
    stored,
)
from tests.support.proxy import FaultProxy
from tests.support.tus import sha256


def patch_request(op: Operator, upload_id: str, offset: int, body: bytes) -> bytes:
    headers = {**op.auth, "Content-Type": OCTETS, "Upload-Offset": str(offset)}
    headers["Content-Length"] = str(len(body))
    return build_request("PATCH", f"/files/{upload_id}", headers, body)


def try_send(port: int, data: bytes, timeout: float = 30) -> Reply | Exception:
    try:
        return send_raw(port, data, method="PATCH", timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - the fault under test
        return exc


def assert_consistent(
    h: Hostile, op: Operator, upload_id: str, data: bytes, *, settled: bool = True
) -> int:
    """HEAD's offset is the bytes stored, and they are a prefix of the file.

    While a PATCH may still be writing (`settled=False`), the disk can grow between the HEAD
    and the read that checks it: then HEAD's offset lies between the bytes stored just before
    it and just after it, and never counts a byte that is not stored."""
    before = len(stored(h, upload_id)) if not settled else None
    offset = head_offset(op, upload_id)
    on_disk = stored(h, upload_id)
    if before is None:
        assert len(on_disk) == offset
    else:
        assert before <= offset <= len(on_disk), (before, offset, len(on_disk))
    assert on_disk == data[: len(on_disk)]
    return offset


def finish(op: Operator, upload_id: str, data: bytes) -> None:
    url = f"{op.base}/files/{upload_id}"
    last = op.tus.resume(url, data, chunk=256 * 1024)
    assert last.status_code == 204
    assert sha256(op.tus.download(url)) == sha256(data)


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
@pytest.mark.parametrize("cut_after", [150, 700, 64 * 1024 + 1, 900_000, 1_499_000])
def test_a_cut_connection_resumes_byte_exact(
    hostile: Hostile, op: Operator, cut_after: int, reset: bool
) -> None:
    data = os.urandom(1_500_000)
    upload_id = op.create(len(data))
    request = patch_request(op, upload_id, 0, data)
    with FaultProxy(hostile.server.port, cut_after, reset=reset, max_cuts=1) as proxy:
        result = try_send(proxy.port, request)
        assert proxy.cuts == 1
    assert not isinstance(result, Reply) or result.status != 204
    # The server notices the cut a moment later (its access log says when); HEAD agrees with
    # the disk all along.
    deadline = time.monotonic() + 10
    in_headers = cut_after < request.index(b"\r\n\r\n") + 4  # the app never saw it
    while not in_headers and not _access_log_statuses(hostile, upload_id, "PATCH"):
        assert_consistent(hostile, op, upload_id, data, settled=False)
        assert time.monotonic() < deadline, "the cut PATCH never ended"
        time.sleep(0.1)
    offset = assert_consistent(hostile, op, upload_id, data)
    assert offset <= max(0, cut_after)
    finish(op, upload_id, data)


def test_repeated_cuts_at_random_points_always_resume(hostile: Hostile, op: Operator) -> None:
    data = os.urandom(2_000_000)
    upload_id = op.create(len(data))
    rounds = seen = 0
    with FaultProxy(hostile.server.port) as proxy:
        while head_offset(op, upload_id) < len(data) and rounds < 12:
            offset = assert_consistent(hostile, op, upload_id, data)
            proxy.cut_after = int.from_bytes(os.urandom(3), "big") % 400_000 + 100
            proxy.reset = rounds % 2 == 1
            proxy.max_cuts = proxy.cuts + 1
            request = patch_request(op, upload_id, offset, data[offset:])
            try_send(proxy.port, request)
            rounds += 1
            seen += proxy.cut_after >= request.index(b"\r\n\r\n") + 4  # else never logged
            _wait_for_patches_to_end(hostile, upload_id, seen)
    assert rounds >= 4
    assert_consistent(hostile, op, upload_id, data)
    finish(op, upload_id, data)


def test_a_slow_but_steady_client_is_not_dropped(hostile: Hostile, op: Operator) -> None:
    """600 kB at 150 kB/s takes ~4 s, twice the idle timeout: slow is not silent."""
    data = os.urandom(600_000)
    upload_id = op.create(len(data))
    with FaultProxy(hostile.server.port, throttle=150_000) as proxy:
        started = time.monotonic()
        result = try_send(proxy.port, patch_request(op, upload_id, 0, data))
        elapsed = time.monotonic() - started
    assert isinstance(result, Reply) and result.status == 204, result
    assert elapsed > IDLE_TIMEOUT
    assert stored(hostile, upload_id) == data


def _access_log_statuses(hostile: Hostile, upload_id: str, method: str = "") -> list[str]:
    log = (hostile.server.data_dir.parent / "access.log").read_text(errors="replace")
    return [
        line.split('" ')[1].split()[0]
        for line in log.splitlines()
        if f"{method} /files/{upload_id}" in line
    ]


def _wait_for_patches_to_end(hostile: Hostile, upload_id: str, count: int) -> None:
    """Until the access log has `count` PATCHes of the upload: the server noticed each cut."""
    deadline = time.monotonic() + 10
    while len(_access_log_statuses(hostile, upload_id, "PATCH")) < count:
        assert time.monotonic() < deadline, "a cut PATCH never ended"
        time.sleep(0.05)


def test_a_stalled_client_is_dropped_after_the_idle_timeout_while_others_flow(
    hostile: Hostile, op: Operator, other: Operator
) -> None:
    data = os.urandom(500_000)
    upload_id = op.create(len(data))
    request = patch_request(op, upload_id, 0, data)
    header_bytes = request.index(b"\r\n\r\n") + 4
    results: list[Reply | Exception] = []
    with FaultProxy(hostile.server.port, stall_after=header_bytes + 100_000) as proxy:
        sender = threading.Thread(target=lambda: results.append(try_send(proxy.port, request)))
        sender.start()
        deadline = time.monotonic() + 10
        while proxy.stalls == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proxy.stalls == 1
        stalled_at = time.monotonic()
        # Other uploads keep flowing meanwhile: they finish while the stalled PATCH still
        # holds its thread (no 408 yet), not after it is dropped.
        flowed = 0
        for _ in range(3):
            other_data = os.urandom(300_000)
            url, last = other.tus.upload(
                other_data, {"filename": "o.bin", "session_id": str(other.session_id)}
            )
            assert last.status_code == 204
            flowed += "408" not in _access_log_statuses(hostile, upload_id)
        assert flowed >= 1, "no other upload finished while the stalled PATCH was held"
        # The silent client is dropped once the idle timeout has passed: 408 in the log.
        while "408" not in _access_log_statuses(hostile, upload_id):
            assert time.monotonic() - stalled_at < IDLE_TIMEOUT + 5, "the stalled PATCH is held"
            time.sleep(0.1)
        offset = assert_consistent(hostile, op, upload_id, data)
        # What arrived is stored (all but gunicorn's last partial read of up to 64 KiB).
        assert 100_000 - 64 * 1024 < offset <= 100_000
        # Its lock is free: the resume is answered at once (a lock wait would end in 423).
        started = time.monotonic()
        r = op.tus.patch(f"{op.base}/files/{upload_id}", offset, data[offset : offset + 1000])
        assert r.status_code == 204 and time.monotonic() - started < LOCK_TIMEOUT
        finish(op, upload_id, data)
        proxy.release_stalls()
        sender.join(timeout=15)
    assert not sender.is_alive()


def test_a_new_request_takes_over_from_a_silent_one_before_the_lock_timeout(
    hostile: Hostile, op: Operator
) -> None:
    data = os.urandom(400_000)
    upload_id = op.create(len(data))
    request = patch_request(op, upload_id, 0, data)
    header_bytes = request.index(b"\r\n\r\n") + 4
    with FaultProxy(hostile.server.port, stall_after=header_bytes + 50_000) as proxy:
        sender = threading.Thread(target=try_send, args=(proxy.port, request))
        sender.start()
        deadline = time.monotonic() + 10
        while proxy.stalls == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        offset = assert_consistent(hostile, op, upload_id, data, settled=False)  # still open
        assert 50_000 - 64 * 1024 < offset <= 50_000
        # A small PATCH, so that the time is the takeover's, not the storing's.
        started = time.monotonic()
        r = op.tus.patch(f"{op.base}/files/{upload_id}", offset, data[offset : offset + 1000])
        waited = time.monotonic() - started
        proxy.release_stalls()
        sender.join(timeout=15)
    assert r.status_code == 204, (r.status_code, r.text)
    assert waited < LOCK_TIMEOUT  # the silent holder gave way when asked (release request)
    deadline = time.monotonic() + 10
    while "409" not in _access_log_statuses(hostile, upload_id):  # it was told: superseded
        assert time.monotonic() < deadline, "the silent holder was never answered 409"
        time.sleep(0.05)
    finish(op, upload_id, data)
    assert stored(hostile, upload_id) == data


def test_a_lock_wait_is_bounded_while_a_live_upload_holds_it(
    hostile: Hostile, op: Operator
) -> None:
    """A steady writer keeps its lock; a competing PATCH gets 423 after the lock timeout
    (never an unbounded wait), HEAD answers at once, and the writer finishes byte-exact."""
    data = os.urandom(2_000_000)
    upload_id = op.create(len(data))
    results: list[Reply | Exception] = []
    with FaultProxy(hostile.server.port, throttle=250_000) as proxy:
        sender = threading.Thread(
            target=lambda: results.append(
                try_send(proxy.port, patch_request(op, upload_id, 0, data))
            )
        )
        sender.start()
        deadline = time.monotonic() + 10
        while head_offset(op, upload_id) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        started = time.monotonic()
        head = op.tus.head(f"{op.base}/files/{upload_id}")
        assert head.status_code == 200 and time.monotonic() - started < LOCK_TIMEOUT - 1
        started = time.monotonic()
        competing = op.tus.patch(f"{op.base}/files/{upload_id}", 0, data[:1000])
        waited = time.monotonic() - started
        sender.join(timeout=30)
    assert competing.status_code == 423
    assert competing.headers.get("Retry-After") == "1"
    assert LOCK_TIMEOUT - 0.5 <= waited < LOCK_TIMEOUT + 2
    assert isinstance(results[0], Reply) and results[0].status == 204, results
    assert stored(hostile, upload_id) == data


@pytest.mark.xfail(
    strict=True,
    raises=requests.RequestException,  # the probe's timeout; anything else is a real failure
    reason="gunicorn gthread gives a connection a thread once its first bytes arrive and has no "
    "timeout while reading headers: workers x threads slow clients stop the server. Not fixable "
    "in app/: needs a proxy in front (nginx client_header_timeout) or a gunicorn change.",
)
def test_clients_stalling_inside_their_headers_do_not_starve_the_server(
    hostile: Hostile,
) -> None:
    stalled = []
    try:
        # Every worker must be accepting (one respawned after an earlier fault test may still
        # be booting, and would answer alone), and there are many times workers x threads (2 x 4)
        # stalled clients: the workers take turns to accept, unevenly, and with just over 8 one
        # of them could be left with a free thread and answer (the test then passed by chance).
        deadline = time.monotonic() + 30
        while not hostile.server.workers_ready(2):
            assert time.monotonic() < deadline, "the shared server's workers are not ready"
            time.sleep(0.1)
        for _ in range(16 * 2 * 4):
            sock = socket.create_connection(("127.0.0.1", hostile.server.port), timeout=10)
            sock.sendall(b"PATCH /files/x HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resu")
            stalled.append(sock)
        time.sleep(0.5)
        r = requests.get(hostile.server.url + "/healthz", timeout=3)
        assert r.status_code == 200
    finally:
        for sock in stalled:
            sock.close()
