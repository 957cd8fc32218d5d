"""Per-upload locks: bounded waits, release on every path, across processes, and the release
request that lets a resume take over from a silent, dead request."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from app.tus.config import TusConfig
from app.tus.filelocker import FileLocker
from app.tus.storage import LockTimeout
from tests.tus.conftest import Client, make_handler
from tests.tus.test_streaming import SilentStream

ID = "a" * 32


class SlowStream(io.RawIOBase):
    """A live client on a slow link: a few bytes every few milliseconds, never silent."""

    def __init__(self, data: bytes, step: int = 500, pause: float = 0.005) -> None:
        self.data, self.step, self.pause = data, step, pause

    def read(self, size: int = -1) -> bytes:
        time.sleep(self.pause)
        chunk, self.data = self.data[: min(size, self.step)], self.data[min(size, self.step) :]
        return chunk

    readinto = None  # type: ignore[assignment]


def test_a_second_holder_waits_a_bounded_time_then_gets_lock_timeout(tmp_path: Path) -> None:
    locker = FileLocker(tmp_path)
    with locker.lock(ID, 1):
        started = time.monotonic()
        with pytest.raises(LockTimeout):
            with locker.lock(ID, 0.3):
                pass
        assert 0.3 <= time.monotonic() - started < 0.8
    with locker.lock(ID, 0):  # released: free at once
        pass


def test_the_lock_is_released_when_the_body_raises(tmp_path: Path) -> None:
    locker = FileLocker(tmp_path)
    with pytest.raises(RuntimeError):
        with locker.lock(ID, 1):
            raise RuntimeError("boom")
    with locker.lock(ID, 0):
        pass


def test_only_a_waiter_that_asks_requests_release(tmp_path: Path) -> None:
    locker = FileLocker(tmp_path)
    with locker.lock(ID, 1) as held:
        with pytest.raises(LockTimeout):
            with locker.lock(ID, 0.1):
                pass
        assert not held.release_requested()
        seen = threading.Event()

        def ask() -> None:
            with pytest.raises(LockTimeout):
                with locker.lock(ID, 0.5, request_release=True):
                    pass

        asker = threading.Thread(target=ask)
        asker.start()
        deadline = time.monotonic() + 0.4
        while time.monotonic() < deadline and not seen.is_set():
            if held.release_requested():
                seen.set()
            time.sleep(0.01)
        asker.join()
        assert seen.is_set()
        assert not held.release_requested()  # a waiter that gave up withdraws its request


def test_a_new_lock_file_is_a_link_of_the_data_file_or_else_empty(tmp_path: Path) -> None:
    data = tmp_path / ID
    data.write_bytes(b"abc")
    locker = FileLocker(tmp_path, link_to=lambda i: tmp_path / i)
    with locker.lock(ID, 1):
        pass
    lock_file = tmp_path / f"{ID}.lock"
    assert lock_file.stat().st_ino == data.stat().st_ino  # no inode of its own
    with locker.lock(ID, 1) as held:  # the existing link is what is locked next time
        held.discard()
    assert data.read_bytes() == b"abc" and not lock_file.exists()
    data.unlink()
    with locker.lock(ID, 1):  # no data file (yet): an empty lock file
        assert lock_file.stat().st_size == 0


@pytest.mark.parametrize("linked", [False, True], ids=["plain", "linked"])
def test_discarding_a_lock_file_never_lets_two_hold_it(tmp_path: Path, linked: bool) -> None:
    (tmp_path / ID).write_bytes(b"data")
    locker = FileLocker(tmp_path, link_to=(lambda i: tmp_path / i) if linked else None)
    inside = 0
    most = 0
    guard = threading.Lock()

    def worker() -> None:
        nonlocal inside, most
        for _ in range(30):
            with locker.lock(ID, 5) as held:
                with guard:
                    inside += 1
                    most = max(most, inside)
                time.sleep(0.001)
                with guard:
                    inside -= 1
                held.discard()  # as after a termination

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most == 1


LOCK_AND_SLEEP = """
import sys, time
from pathlib import Path
from app.tus.filelocker import FileLocker
with FileLocker(Path(sys.argv[1])).lock(sys.argv[2], 5):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_a_lock_holds_across_processes_and_dies_with_a_killed_holder(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-c", LOCK_AND_SLEEP, str(tmp_path), ID],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        locker = FileLocker(tmp_path)
        with pytest.raises(LockTimeout):
            with locker.lock(ID, 0.2):
                pass
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        with locker.lock(ID, 2):
            pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


# --- through the handler ----------------------------------------------------------------------


def test_a_busy_upload_answers_423_with_retry_after(tmp_path: Path) -> None:
    handler = make_handler(tmp_path, TusConfig(lock_timeout=0.3))
    client = Client(handler)
    upload_id = client.create(10)
    with handler.locker.lock(upload_id, 1):
        started = time.monotonic()
        r = client.patch(upload_id, 0, b"abc")
        assert time.monotonic() - started < 1.5
    assert r.status == 423 and r.headers["Retry-After"] == "1"
    assert client.offset(upload_id) == 0
    assert client.patch(upload_id, 0, b"abc").status == 204


def test_two_patches_at_one_offset_one_wins_and_the_data_is_intact(
    client: Client, config: TusConfig, upload_dir: Path
) -> None:
    data = os.urandom(40_000)
    upload_id = client.create(len(data) * 2)
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def send(payload: bytes) -> None:
        barrier.wait()
        statuses.append(client.patch(upload_id, 0, SlowStream(payload), len(payload)).status)

    threads = [threading.Thread(target=send, args=(p,)) for p in (data, data[::-1])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses)[0] == 204 and sorted(statuses)[1] in (409, 423), statuses
    assert client.offset(upload_id) == len(data)
    assert (upload_dir / upload_id).read_bytes() in (data, data[::-1])


def test_a_silent_holder_gives_way_to_a_resume(
    client: Client, config: TusConfig, upload_dir: Path
) -> None:
    data = os.urandom(5000)
    upload_id = client.create(len(data))
    first: list[int] = []
    holder = threading.Thread(
        target=lambda: first.append(
            client.patch(upload_id, 0, SilentStream(data[:1200]), len(data)).status
        )
    )
    holder.start()
    deadline = time.monotonic() + 2
    while client.offset(upload_id) < 1200 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    r = client.patch(upload_id, 1200, data[1200:])  # the client resumed on a new connection
    waited = time.monotonic() - started
    holder.join()
    assert r.status == 204 and first == [409]
    assert waited < config.body_idle_timeout / 2  # not held until the idle timeout
    assert (upload_dir / upload_id).read_bytes() == data


def test_a_live_holder_is_not_interrupted_by_a_release_request(
    client: Client, config: TusConfig, upload_dir: Path
) -> None:
    data = os.urandom(30_000)
    upload_id = client.create(len(data))
    first: list[int] = []
    holder = threading.Thread(
        target=lambda: first.append(client.patch(upload_id, 0, SlowStream(data), len(data)).status)
    )
    holder.start()
    time.sleep(0.05)
    second = client.patch(upload_id, 0, data)
    holder.join()
    assert first == [204] and second.status == 409
    assert (upload_dir / upload_id).read_bytes() == data


def test_a_release_request_removed_while_it_is_renewed_never_raises(tmp_path: Path) -> None:
    """The holder removes `<id>.release` whenever it likes; a waiter renewing it must not fail
    (it raised FileNotFoundError between its open and its utime: a 500 under racing PATCHes)."""
    from app.tus.filelocker import _touch

    path = str(tmp_path / f"{ID}.release")
    stop = time.monotonic() + 1.0
    errors: list[BaseException] = []

    def remover() -> None:
        while time.monotonic() < stop:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    thread = threading.Thread(target=remover)
    thread.start()
    try:
        while time.monotonic() < stop:
            try:
                _touch(path)
            except BaseException as exc:  # noqa: BLE001 - any failure is the finding
                errors.append(exc)
                break
    finally:
        thread.join()
    assert errors == []
