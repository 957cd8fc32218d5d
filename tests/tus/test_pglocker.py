"""The PostgreSQL locker's own behaviour (test_locking.py runs the shared locker tests on it):
keys, the per-process connection pool, lost connections, and races between nodes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.tus.config import TusConfig
from app.tus.filelocker import FileLocker
from app.tus.handler import TusHandler
from app.tus.pglocker import PgLocker, conninfo_from_url, lock_number
from app.tus.storage import LockTimeout, Storage
from tests.support.postgres import PostgresServer
from tests.support.server import free_port
from tests.tus.conftest import Client

pytestmark = pytest.mark.postgres
ID = "b" * 32


@pytest.fixture(scope="module")
def url(postgres: PostgresServer) -> str:
    return postgres.create_database("pglocker")


@pytest.fixture
def lockers(url: str) -> Iterator[list[PgLocker]]:
    """Three lockers, as three nodes would have: separate connections and listeners."""
    made = [PgLocker.from_url(url) for _ in range(3)]
    for locker in made:
        assert locker.wait_listening()
    yield made
    for locker in made:
        locker.close()


def backends(url: str, application: str, expected: int) -> int:
    """How many sessions the application has, once it is `expected` or after 2 s (a closed
    connection's backend leaves pg_stat_activity a moment later)."""
    deadline = time.monotonic() + 2
    with psycopg.connect(conninfo_from_url(url), autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                "AND datname = current_database()",
                (application,),
            ).fetchone()
            assert row is not None
            if row[0] == expected or time.monotonic() > deadline:
                return int(row[0])
            time.sleep(0.02)


def terminate(url: str, application: str) -> None:
    with psycopg.connect(conninfo_from_url(url), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s "
            "AND datname = current_database()",
            (application,),
        )


@pytest.mark.parametrize(
    "key",
    ["", "A" * 32, "a" * 31, "a" * 33, "owner-" + "a" * 32, "../" + "a" * 29, "x"],
)
def test_anything_but_an_upload_id_is_refused(lockers: list[PgLocker], key: str) -> None:
    with pytest.raises(ValueError):
        with lockers[0].lock(key, 0):
            pass


@given(st.text(alphabet="0123456789abcdef", min_size=32, max_size=32))
def test_a_lock_number_is_a_stable_bigint(hex_id: str) -> None:
    number = lock_number(hex_id)
    assert -(2**63) <= number < 2**63
    assert number == lock_number(hex_id)


def test_the_locker_needs_a_postgresql_url() -> None:
    with pytest.raises(ValueError, match="PostgreSQL"):
        conninfo_from_url("sqlite:///x.sqlite3")
    assert conninfo_from_url("postgresql+psycopg://u:p@h:5/d?sslmode=require") == (
        "postgresql://u:p@h:5/d?sslmode=require"
    )


def test_a_lock_holds_one_connection_and_idle_ones_are_few(url: str) -> None:
    locker = PgLocker.from_url(url, max_idle=2)
    try:
        entered = threading.Barrier(7)
        done = threading.Event()

        def hold(n: int) -> None:
            with locker.lock(f"{n:032x}", 5):
                entered.wait()
                done.wait()

        threads = [threading.Thread(target=hold, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        entered.wait()
        assert backends(url, "tuscam-lock", 6) == 6  # one per held lock
        done.set()
        for t in threads:
            t.join()
        assert backends(url, "tuscam-lock", 2) == 2  # the rest were closed, not kept idle
        for _ in range(20):  # sequential locks reuse an idle connection
            with locker.lock(ID, 1):
                pass
        assert backends(url, "tuscam-lock", 2) == 2
    finally:
        locker.close()


def test_when_every_allowed_connection_holds_a_lock_the_next_waits_then_times_out(
    url: str,
) -> None:
    locker = PgLocker.from_url(url, max_connections=1)
    try:
        with locker.lock(ID, 1):
            started = time.monotonic()
            with pytest.raises(LockTimeout):
                with locker.lock("c" * 32, 0.3):  # another upload: free, but no connection
                    pass
            assert time.monotonic() - started >= 0.3
        with locker.lock("c" * 32, 0):
            pass
    finally:
        locker.close()


def test_dead_pooled_connections_and_listeners_are_replaced(
    url: str, lockers: list[PgLocker]
) -> None:
    first, second = lockers[0], lockers[1]
    with first.lock(ID, 1):
        pass  # its connection now waits idle in the pool
    terminate(url, "tuscam-lock")
    terminate(url, "tuscam-lock-listener")
    with first.lock(ID, 1) as held:  # a fresh connection replaces the dead one
        # The listener reconnects and release requests work again (seen while the waiter
        # waits: when it gives up, it withdraws its request).
        waiter = threading.Thread(target=wait_in_vain, args=(second, ID, 3.0))
        waiter.start()
        deadline = time.monotonic() + 3
        while not held.release_requested() and time.monotonic() < deadline:
            time.sleep(0.01)
        seen = held.release_requested()
        waiter.join()
        assert seen, "the holder never saw a release request"


def ungranted_advisory_locks(url: str) -> int:
    with psycopg.connect(conninfo_from_url(url), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("request_release", [False, True])
def test_a_waiter_queues_in_the_server_and_gets_the_lock_when_it_is_let_go(
    url: str, lockers: list[PgLocker], request_release: bool
) -> None:
    """The waiter sleeps in PostgreSQL's lock queue (pg_locks shows it, not granted), so the
    server hands it the lock at the release instead of it finding out at its next try."""
    got = threading.Event()

    def wait() -> None:
        with lockers[1].lock(ID, 30, request_release=request_release):
            got.set()

    with lockers[0].lock(ID, 1) as held:
        waiter = threading.Thread(target=wait)
        waiter.start()
        deadline = time.monotonic() + 5
        while ungranted_advisory_locks(url) == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ungranted_advisory_locks(url) == 1, "the waiter is not in the server's queue"
        if request_release:
            while not held.release_requested() and time.monotonic() < deadline:
                time.sleep(0.01)
            assert held.release_requested()
        assert not got.is_set()
    waiter.join(10)  # far below the waiter's own 30 s: it was woken, it did not time out
    assert got.is_set()
    assert ungranted_advisory_locks(url) == 0


def test_a_wait_that_times_out_leaves_its_connection_in_the_pool(
    url: str, lockers: list[PgLocker]
) -> None:
    before = backends(url, "tuscam-lock", 0)
    with lockers[0].lock(ID, 1):
        with pytest.raises(LockTimeout):
            with lockers[1].lock(ID, 0.2):
                pass
        assert ungranted_advisory_locks(url) == 0  # the timed-out wait left the queue
    opened = backends(url, "tuscam-lock", before + 2)
    for _ in range(5):
        with lockers[1].lock(ID, 1):  # the same connection, reused: nothing new opened
            pass
    assert backends(url, "tuscam-lock", opened) == opened


def wait_in_vain(locker: PgLocker, key: str, timeout: float) -> None:
    with pytest.raises(LockTimeout):
        with locker.lock(key, timeout, request_release=True):
            pass


def test_a_holder_whose_session_ended_is_asked_to_let_go(url: str, lockers: list[PgLocker]) -> None:
    with lockers[0].lock(ID, 1) as held:
        assert not held.release_requested()
        terminate(url, "tuscam-lock")  # the server freed the lock with the session
        deadline = time.monotonic() + 2
        while not held.release_requested() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert held.release_requested()
        with lockers[1].lock(ID, 1):  # someone else may take it now
            pass


# --- races between nodes ----------------------------------------------------------------------

KEYS = ["d" * 32, "e" * 32]
step = st.tuples(
    st.integers(0, 2),  # which node
    st.sampled_from(KEYS),
    st.floats(0, 0.01),  # how long it holds
    st.sampled_from([0, 0.05, 2.0]),  # how long it may wait
    st.booleans(),  # request_release
)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plans=st.lists(st.lists(step, min_size=1, max_size=8), min_size=2, max_size=6))
def test_threads_on_three_nodes_never_hold_one_key_together(
    lockers: list[PgLocker], plans: list[list[tuple[int, str, float, float, bool]]]
) -> None:
    inside = dict.fromkeys(KEYS, 0)
    overlaps: list[str] = []
    guard = threading.Lock()
    start = threading.Barrier(len(plans))

    def run(plan: list[tuple[int, str, float, float, bool]]) -> None:
        start.wait()
        for node, key, hold, wait, ask in plan:
            try:
                with lockers[node].lock(key, wait, request_release=ask):
                    with guard:
                        inside[key] += 1
                        if inside[key] > 1:
                            overlaps.append(key)
                    time.sleep(hold)
                    with guard:
                        inside[key] -= 1
            except LockTimeout:
                pass

    threads = [threading.Thread(target=run, args=(plan,)) for plan in plans]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == []
    for key in KEYS:  # and everything was released (a lock connection closed as broken is
        with lockers[0].lock(key, 1):  # freed by the server a moment after the close returns)
            pass


def test_an_unreachable_postgresql_answers_503_with_retry_after(
    store: Storage, config: TusConfig, upload_dir: Path
) -> None:
    handler = TusHandler(store, FileLocker(upload_dir), None, config)
    upload_id = Client(handler).create(10)
    nowhere = PgLocker(f"host=127.0.0.1 port={free_port()} user=tuscam dbname=x connect_timeout=2")
    try:
        r = Client(TusHandler(store, nowhere, None, config)).patch(upload_id, 0, b"abc")
    finally:
        nowhere.close()
    assert r.status == 503, r
    assert int(r.headers["Retry-After"]) > 0
    assert Client(handler).offset(upload_id) == 0
