"""Per-upload locks: bounded waits, release on every path, across processes, and the release
request that lets a resume take over from a silent, dead request. Each test runs on the file
locker and, where it applies, on the PostgreSQL locker (pglocker.py)."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from app.tus.config import TusConfig
from app.tus.filelocker import FileLocker
from app.tus.handler import TusHandler
from app.tus.pglocker import PgLocker
from app.tus.storage import Locker, LockTimeout, Storage
from tests.support.postgres import PostgresServer
from tests.tus.conftest import Client
from tests.tus.test_streaming import SilentStream

ID = "a" * 32
ROOT = Path(__file__).resolve().parents[2]
MakeLocker = Callable[[], Locker]


class SlowStream(io.RawIOBase):
    """A live client on a slow link: a few bytes every few milliseconds, never silent."""

    def __init__(self, data: bytes, step: int = 500, pause: float = 0.005) -> None:
        self.data, self.step, self.pause = data, step, pause

    def read(self, size: int = -1) -> bytes:
        time.sleep(self.pause)
        chunk, self.data = self.data[: min(size, self.step)], self.data[min(size, self.step) :]
        return chunk

    readinto = None  # type: ignore[assignment]


@pytest.fixture(scope="session")
def lock_database(postgres: PostgresServer) -> str:
    """One database for the lock tests: advisory locks need no tables."""
    return postgres.create_database("locks")


@pytest.fixture(params=["file", pytest.param("postgres", marks=pytest.mark.postgres)])
def locker_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def make_locker(
    locker_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[MakeLocker]:
    """Makes lockers of one kind that share their locks: for the PostgreSQL locker, each one is
    what one process (or node) would have, with its own connections."""
    made: list[PgLocker] = []

    def make() -> Locker:
        if locker_kind == "file":
            return FileLocker(tmp_path / "locks")
        locker = PgLocker.from_url(request.getfixturevalue("lock_database"))
        assert locker.wait_listening()
        made.append(locker)
        return locker

    yield make
    for locker in made:
        locker.close()


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)
    return True


def test_a_second_holder_waits_a_bounded_time_then_gets_lock_timeout(
    make_locker: MakeLocker,
) -> None:
    locker = make_locker()
    with locker.lock(ID, 1):
        started = time.monotonic()
        with pytest.raises(LockTimeout):
            with locker.lock(ID, 0.3):
                pass
        assert 0.3 <= time.monotonic() - started < 0.8
    with locker.lock(ID, 0):  # released: free at once
        pass


def test_the_lock_is_released_when_the_body_raises(make_locker: MakeLocker) -> None:
    locker = make_locker()
    with pytest.raises(RuntimeError):
        with locker.lock(ID, 1):
            raise RuntimeError("boom")
    with locker.lock(ID, 0):
        pass


def test_only_a_waiter_that_asks_requests_release(make_locker: MakeLocker) -> None:
    locker = make_locker()
    with locker.lock(ID, 1) as held:
        with pytest.raises(LockTimeout):
            with locker.lock(ID, 0.1):
                pass
        assert not held.release_requested()
        seen = threading.Event()

        def ask() -> None:
            with pytest.raises(LockTimeout):
                with locker.lock(ID, 2.0, request_release=True):
                    pass

        asker = threading.Thread(target=ask)
        asker.start()
        deadline = time.monotonic() + 1.8  # while the asker still waits
        while time.monotonic() < deadline and not seen.is_set():
            if held.release_requested():
                seen.set()
            time.sleep(0.01)
        asker.join()
        assert seen.is_set()
        # A waiter that gave up withdraws its request (across nodes: a notification later).
        assert wait_until(lambda: not held.release_requested(), 1.0)


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


def test_many_holders_in_many_lockers_never_overlap(make_locker: MakeLocker) -> None:
    """Four threads in each of two lockers (two processes or nodes), discarding as after a
    termination: never two inside at once."""
    lockers = [make_locker(), make_locker()]
    inside = 0
    most = 0
    guard = threading.Lock()

    def worker(locker: Locker) -> None:
        nonlocal inside, most
        for _ in range(25):
            with locker.lock(ID, 10) as held:
                with guard:
                    inside += 1
                    most = max(most, inside)
                time.sleep(0.001)
                with guard:
                    inside -= 1
                held.discard()

    threads = [threading.Thread(target=worker, args=(lk,)) for lk in lockers for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most == 1


# A holder in another process: "hold" keeps the lock until killed and reports a release
# request; "yield" lets go when asked, as the handler does when its client has gone silent.
HOLDER = """
import sys, time
from pathlib import Path
from app.tus.filelocker import FileLocker
from app.tus.pglocker import PgLocker
kind, where, key, mode = sys.argv[1:]
if kind == "file":
    locker = FileLocker(Path(where))
else:
    locker = PgLocker.from_url(where)
    locker.wait_listening()
with locker.lock(key, 5) as held:
    print("locked", flush=True)
    while not held.release_requested():
        time.sleep(0.01)
    print("release requested", flush=True)
    if mode == "hold":
        time.sleep(60)
print("released", flush=True)
"""


@pytest.fixture
def start_holder(
    locker_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[str], subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []

    def start(mode: str) -> subprocess.Popen[str]:
        where = (
            str(tmp_path / "locks")
            if locker_kind == "file"
            else request.getfixturevalue("lock_database")
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, locker_kind, where, ID, mode],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_a_lock_holds_across_processes_and_dies_with_a_killed_holder(
    make_locker: MakeLocker, start_holder: Callable[[str], subprocess.Popen[str]]
) -> None:
    proc = start_holder("hold")
    locker = make_locker()
    with pytest.raises(LockTimeout):
        with locker.lock(ID, 0.2):
            pass
    os.kill(proc.pid, signal.SIGKILL)
    killed = time.monotonic()
    with locker.lock(ID, 2):  # the bound: another process has it within ~2 s
        assert time.monotonic() - killed < 2


def test_a_release_request_reaches_a_holder_in_another_process(
    make_locker: MakeLocker, start_holder: Callable[[str], subprocess.Popen[str]]
) -> None:
    proc = start_holder("yield")
    locker = make_locker()
    with locker.lock(ID, 5, request_release=True):
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "release requested"
    assert proc.wait(timeout=10) == 0


def test_a_holder_sees_a_request_from_another_process_and_keeps_the_lock(
    make_locker: MakeLocker, start_holder: Callable[[str], subprocess.Popen[str]]
) -> None:
    proc = start_holder("hold")
    locker = make_locker()
    started = time.monotonic()
    with pytest.raises(LockTimeout):
        with locker.lock(ID, 1, request_release=True):
            pass
    assert time.monotonic() - started >= 1  # asking does not take the lock away
    assert proc.stdout is not None and proc.stdout.readline().strip() == "release requested"


# --- through the handler ----------------------------------------------------------------------


@pytest.fixture
def nodes(store: Storage, config: TusConfig, make_locker: MakeLocker) -> tuple[Client, Client]:
    """Two handlers on one store, each with a locker of its own: two processes, or two nodes."""
    first, second = (Client(TusHandler(store, make_locker(), None, config)) for _ in range(2))
    return first, second


def test_a_busy_upload_answers_423_with_retry_after(
    store: Storage, config: TusConfig, make_locker: MakeLocker
) -> None:
    client = Client(TusHandler(store, make_locker(), None, replace(config, lock_timeout=0.3)))
    upload_id = client.create(10)
    with make_locker().lock(upload_id, 1):
        started = time.monotonic()
        r = client.patch(upload_id, 0, b"abc")
        assert time.monotonic() - started < 1.5
    assert r.status == 423 and r.headers["Retry-After"] == "1"
    assert client.offset(upload_id) == 0
    assert client.patch(upload_id, 0, b"abc").status == 204


def test_two_patches_at_one_offset_one_wins_and_the_data_is_intact(
    nodes: tuple[Client, Client], config: TusConfig, upload_dir: Path
) -> None:
    data = os.urandom(40_000)
    upload_id = nodes[0].create(len(data) * 2)
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def send(client: Client, payload: bytes) -> None:
        barrier.wait()
        statuses.append(client.patch(upload_id, 0, SlowStream(payload), len(payload)).status)

    payloads = (data, data[::-1])
    threads = [threading.Thread(target=send, args=(nodes[i], payloads[i])) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses)[0] == 204 and sorted(statuses)[1] in (409, 423), statuses
    assert nodes[1].offset(upload_id) == len(data)
    assert (upload_dir / upload_id).read_bytes() in (data, data[::-1])


def test_a_silent_holder_gives_way_to_a_resume(
    nodes: tuple[Client, Client], config: TusConfig, upload_dir: Path
) -> None:
    client, other = nodes
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
    r = other.patch(upload_id, 1200, data[1200:])  # the client resumed, on another node
    waited = time.monotonic() - started
    holder.join()
    assert r.status == 204 and first == [409]
    assert waited < config.body_idle_timeout / 2  # not held until the idle timeout
    assert (upload_dir / upload_id).read_bytes() == data


def test_a_live_holder_is_not_interrupted_by_a_release_request(
    nodes: tuple[Client, Client], config: TusConfig, upload_dir: Path
) -> None:
    client, other = nodes
    data = os.urandom(30_000)
    upload_id = client.create(len(data))
    first: list[int] = []
    holder = threading.Thread(
        target=lambda: first.append(client.patch(upload_id, 0, SlowStream(data), len(data)).status)
    )
    holder.start()
    time.sleep(0.05)
    second = other.patch(upload_id, 0, data)
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
