"""Locks that hold across machines: PostgreSQL session advisory locks, one pooled connection per
held lock, and release requests carried between nodes by LISTEN/NOTIFY.

A lock is `pg_try_advisory_lock(n)` on a connection of this process, n a 64-bit hash of the
key. PostgreSQL drops a session's advisory locks when its connection ends, so a killed worker (or
node) frees its locks as soon as its socket closes; the connections ask the server for TCP
keepalives, so a machine that vanishes without closing them frees its locks within ~30 s.
Waiting is bounded: one try that never waits (`pg_try_advisory_lock`), then `pg_advisory_lock`
under a `lock_timeout`, so the server wakes the waiter as soon as the holder lets go; at the
timeout, LockTimeout (the handler answers 423).

Release requests (filelocker.py has the idea for one machine): a waiter with request_release=True
sends `NOTIFY tuscam_lock_release, '+ KEY WAITER'` every 0.2 s and `'- KEY WAITER'` when it gives
up. Every process listens on one connection in a background thread and marks its held locks of
that key; release_requested() is true while some other waiter has asked within the last second
(a waiter that died stops renewing). Nothing is stored, so discard() has nothing to remove.

Connections: a lock holds one for as long as it is held (a lock is its session's), then gives it
back to a small per-process pool; a process needs at most one per thread holding a lock, plus
the listener. A held lock whose session has ended (server restart, terminated backend) reports a
release request: the server has freed it, so its holder stops as soon as its client goes quiet."""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import select
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import pq

from app.tus.protocol import is_upload_id
from app.tus.storage import LockTimeout, StorageUnavailable

log = logging.getLogger("app.tus")

CHANNEL = "tuscam_lock_release"
RENEW_REQUEST = 0.2  # a waiter repeats its release request this often
REQUEST_TTL = 1.0  # a request not renewed for this long has lapsed (its waiter is gone)
# Server-side keepalives, settable per session: a vanished client's locks end in ~10+3*5 s.
_SESSION_SETUP = (
    "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; "
    "SET tcp_keepalives_count = 3; SET idle_session_timeout = 0; "
    "SET idle_in_transaction_session_timeout = 0"
)


_LOCKERS: weakref.WeakSet[PgLocker] = weakref.WeakSet()


def _after_fork() -> None:
    # A forked child (a gunicorn worker under preload_app) must not share its parent's
    # connections or rely on its listener thread, which did not survive the fork.
    for locker in list(_LOCKERS):
        locker._reset()


os.register_at_fork(after_in_child=_after_fork)


class LockerUnavailable(StorageUnavailable):
    """PostgreSQL cannot be reached, so no lock can be taken: retryable, as the store's own
    outages are (503 with Retry-After)."""


def lock_number(key: str) -> int:
    """The advisory lock number of a key: 64 bits of a keyed hash, as PostgreSQL's bigint.
    Two keys sharing a number would only make one wait for the other, never both hold."""
    digest = hashlib.blake2b(key.encode(), digest_size=8, person=b"tuscam-lock").digest()
    return int.from_bytes(digest, "big", signed=True)


def conninfo_from_url(url: str) -> str:
    """A libpq connection string from a SQLAlchemy URL (`postgresql+psycopg://...`)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(
            f"The PostgreSQL locker needs a PostgreSQL database URL, not {parsed.drivername}://"
        )
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


class PgLock:
    """A held lock: its connection and the release requests seen while it is held."""

    def __init__(self, key: str, conn: psycopg.Connection, waiter: str) -> None:
        self.key = key
        self.conn = conn
        self.waiter = waiter  # our own request id while we waited: never a request to us
        self.requests: dict[str, float] = {}  # waiter -> when its request was last seen

    def release_requested(self) -> bool:
        if self.lost():
            return True
        now = time.monotonic()
        return any(now - seen < REQUEST_TTL for seen in list(self.requests.values()))

    def discard(self) -> None:
        """Nothing outlives the lock in PostgreSQL: there is no trace to remove."""

    def lost(self) -> bool:
        """The session (and so the lock) has ended: the server sends nothing unasked to an
        idle session but its termination, so a readable socket means it is over."""
        if self.conn.closed:
            return True
        try:
            readable, _, _ = select.select([self.conn.fileno()], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)


class _Pool:
    """Idle connections of this process, reused; at most max_size open at once."""

    def __init__(self, conninfo: str, max_size: int, max_idle: int) -> None:
        self.conninfo = conninfo
        self.max_size = max_size
        self.max_idle = max_idle
        self._idle: list[psycopg.Connection] = []
        self._open = 0
        self._cond = threading.Condition()

    def connect(self) -> psycopg.Connection:
        try:
            conn = psycopg.connect(
                self.conninfo, autocommit=True, application_name="tuscam-lock", connect_timeout=5
            )
            conn.execute(_SESSION_SETUP)
        except psycopg.Error as exc:
            raise LockerUnavailable(f"PostgreSQL is unreachable for upload locks: {exc}") from exc
        return conn

    def get(self, deadline: float) -> psycopg.Connection | None:
        """An idle or new connection, or None if none is free before the deadline."""
        with self._cond:
            while not self._idle and self._open >= self.max_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            if self._idle:
                return self._idle.pop()
            self._open += 1
        try:
            return self.connect()
        except BaseException:
            self._forget()
            raise

    def put(self, conn: psycopg.Connection, *, broken: bool = False) -> None:
        keep = (
            not broken
            and not conn.closed
            and conn.info.transaction_status == pq.TransactionStatus.IDLE
        )
        with self._cond:
            if keep and len(self._idle) < self.max_idle:
                self._idle.append(conn)
                self._cond.notify()
                return
        conn.close()
        self._forget()

    def _forget(self) -> None:
        with self._cond:
            self._open -= 1
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            idle, self._idle = self._idle, []
            self._open -= len(idle)
        for conn in idle:
            conn.close()


class PgLocker:
    """The Locker protocol (storage.py) on PostgreSQL advisory locks; one per process."""

    def __init__(
        self,
        conninfo: str,
        *,
        max_connections: int = 64,
        max_idle: int = 8,
    ) -> None:
        self.conninfo = conninfo
        self.max_connections = max_connections
        self.max_idle = max_idle
        self._guard = threading.Lock()
        self._reset()
        _LOCKERS.add(self)

    def _reset(self) -> None:
        self._pool = _Pool(self.conninfo, self.max_connections, self.max_idle)
        self._held: dict[str, list[PgLock]] = {}
        self._listener: threading.Thread | None = None
        self._listening = threading.Event()
        self._stop = threading.Event()

    @classmethod
    def from_url(cls, database_url: str, **kwargs: int) -> PgLocker:
        return cls(conninfo_from_url(database_url), **kwargs)

    @contextmanager
    def lock(self, key: str, timeout: float, *, request_release: bool = False) -> Iterator[PgLock]:
        if not is_upload_id(key):
            raise ValueError(f"not a lock key (an upload id): {key!r}")
        self._ensure_listener()
        held = self._acquire(key, timeout, request_release)
        with self._guard:
            self._held.setdefault(key, []).append(held)
        try:
            yield held
        finally:
            with self._guard:
                holders = self._held[key]
                holders.remove(held)
                if not holders:
                    del self._held[key]
            self._release(held)

    def _acquire(self, key: str, timeout: float, request_release: bool) -> PgLock:
        start = time.monotonic()
        deadline = start + timeout
        conn = self._pool.get(deadline)
        if conn is None:  # every connection this process may open holds a lock: busy
            raise LockTimeout(key, time.monotonic() - start)
        number = lock_number(key)
        waiter = secrets.token_hex(4)
        asked_at = 0.0
        tried = retried = False
        try:
            while True:
                try:
                    if self._attempt(conn, number, deadline, asked_at, wait=tried):
                        return PgLock(key, conn, waiter)
                    tried = True
                except psycopg.OperationalError as exc:
                    # An idle connection may have died (server restart): one fresh attempt.
                    self._pool.put(conn, broken=True)
                    conn = None
                    if retried:
                        raise LockerUnavailable(
                            f"PostgreSQL is unreachable for upload locks: {exc}"
                        ) from exc
                    retried = True
                    conn = self._pool.get(deadline + 5)
                    if conn is None:
                        raise LockTimeout(key, time.monotonic() - start) from exc
                    continue
                now = time.monotonic()
                if now >= deadline:
                    if asked_at:  # withdraw: nobody is waiting for this lock on our behalf
                        self._notify(conn, "-", key, waiter)
                    # No lock was taken on it (every attempt answered): keep the connection.
                    self._pool.put(conn)
                    conn = None
                    raise LockTimeout(key, now - start)
                if request_release and now - asked_at >= RENEW_REQUEST:
                    self._notify(conn, "+", key, waiter)
                    asked_at = now
        except BaseException:
            if conn is not None:
                # Unknown whether a lock was taken (interrupted mid-query): never reuse it.
                self._pool.put(conn, broken=True)
            raise

    @staticmethod
    def _attempt(
        conn: psycopg.Connection, number: int, deadline: float, asked_at: float, *, wait: bool
    ) -> bool:
        """First a try that never waits; then waits in the server's lock queue, which wakes the
        waiter the moment the holder lets go, until the deadline or, while release requests
        are being renewed, until the next renewal is due."""
        if not wait:
            got = conn.execute("SELECT pg_try_advisory_lock(%s)", (number,)).fetchone()
            return got is not None and bool(got[0])
        now = time.monotonic()
        until = min(deadline, asked_at + RENEW_REQUEST) if asked_at else deadline
        ms = max(1, int((until - now) * 1000))
        conn.execute("SELECT set_config('lock_timeout', %s, false)", (f"{ms}ms",))
        try:
            conn.execute("SELECT pg_advisory_lock(%s)", (number,))
        except psycopg.errors.LockNotAvailable:
            return False
        return True

    def _release(self, held: PgLock) -> None:
        try:
            row = held.conn.execute(
                "SELECT pg_advisory_unlock(%s)", (lock_number(held.key),)
            ).fetchone()
            ok = row is not None and row[0]
            if not ok:
                log.warning("lock on %s was lost before its release", held.key)
        except psycopg.Error as exc:
            log.warning("lock on %s: connection lost (%s), so already freed", held.key, exc)
            ok = False
        self._pool.put(held.conn, broken=not ok)

    @staticmethod
    def _notify(conn: psycopg.Connection, op: str, key: str, waiter: str) -> None:
        try:
            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"{op} {key} {waiter}"))
        except psycopg.Error:
            log.warning("could not send a release request for %s", key)

    # --- the listener thread -----------------------------------------------------------------

    def _ensure_listener(self) -> None:
        if self._listener is not None:
            return
        with self._guard:
            if self._listener is None:
                self._listener = threading.Thread(
                    target=self._listen, name="tuscam-lock-listener", daemon=True
                )
                self._listener.start()

    def wait_listening(self, timeout: float = 5) -> bool:
        """True once the listener is subscribed (tests; release requests work before it,
        since waiters renew them)."""
        self._ensure_listener()
        return self._listening.wait(timeout)

    def _listen(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self.conninfo,
                    autocommit=True,
                    application_name="tuscam-lock-listener",
                    connect_timeout=5,
                ) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._listening.set()
                    backoff = 0.1
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self._on_notify(note.payload)
            except Exception as exc:  # noqa: BLE001 - the thread must live: a dead listener
                # would leave every holder in this process deaf to release requests.
                self._listening.clear()
                if self._stop.is_set():
                    return
                log.warning("lock release listener lost PostgreSQL (%s); retrying", exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def _on_notify(self, payload: str) -> None:
        parts = payload.split(" ")
        if len(parts) != 3:
            return
        op, key, waiter = parts
        with self._guard:
            holders = list(self._held.get(key, ()))
        now = time.monotonic()
        for held in holders:
            if waiter == held.waiter:
                continue  # a late echo of our own request while we were waiting
            if op == "+":
                held.requests[waiter] = now
            else:
                held.requests.pop(waiter, None)

    def close(self) -> None:
        """Stop the listener and close idle connections (tests; a worker just exits)."""
        self._stop.set()
        if self._listener is not None:
            self._listener.join(timeout=5)
        self._pool.close()
