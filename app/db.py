"""The SQLAlchemy engine and one session per request, closed (and rolled back) on teardown.

SQLite gets WAL mode, a busy timeout and foreign keys; PostgreSQL is used as configured.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from flask import Flask, g
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from app.config import private_dir

SQLITE_BUSY_TIMEOUT_MS = 15_000
SQLITE_POOL_SIZE = 20
# A pooled server connection idle this long is checked before use (see ping_when_idle).
IDLE_PING_SECONDS = 5.0


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL; None for other databases and in-memory ones."""
    if not url.startswith("sqlite"):
        return None
    database = make_url(url).database
    if not database or database == ":memory:" or "mode=memory" in url:
        return None
    return Path(database)


def create_private_sqlite(url: str) -> None:
    """Create a SQLite database file 0600 in a 0700 folder before SQLite does (it would follow
    the umask): it holds password hashes. Its -wal and -shm files take the same mode."""
    path = sqlite_file(url)
    if path is None or path.exists():
        return
    private_dir(path.parent)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        pool: dict[str, int] = {}
        create_private_sqlite(url)
        if sqlite_file(url) is not None:
            # A file database gets a QueuePool, which closes a connection returned beyond
            # pool_size: with more busy threads than that, every request would open a new one
            # and re-run the pragmas below. A SQLite connection is a file handle, so keep one per
            # thread (gunicorn's 16 and the reconcile thread). (In-memory: one connection.)
            pool = {"pool_size": SQLITE_POOL_SIZE, "max_overflow": SQLITE_POOL_SIZE}
        engine = create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            **pool,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
            cur = dbapi_conn.cursor()
            # WAL lets readers run while a writer commits; the busy timeout makes writers from
            # several gunicorn workers wait for each other instead of failing at once.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return server_engine(url, pool_size=5, max_overflow=20)


def server_engine(url: str, **pool: int) -> Engine:
    """An engine for a database server (PostgreSQL) whose pooled connections are checked
    before use only after they sat idle (ping_when_idle)."""
    engine = create_engine(url, **pool)
    ping_when_idle(engine)
    return engine


def ping_when_idle(engine: Engine, idle: float = IDLE_PING_SECONDS) -> None:
    """pool_pre_ping costs a round trip on every checkout, which is most of a short query's
    time. Instead, a connection is pinged only when it comes out of the pool after `idle`
    seconds in it (the case of a server restarted meanwhile); a dead one is replaced before
    anyone uses it. One that dies while busy fails that request, and SQLAlchemy then renews
    the whole pool."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: DBAPIConnection, record: ConnectionPoolEntry) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _check_idle(
        dbapi_conn: DBAPIConnection, record: ConnectionPoolEntry, _proxy: object
    ) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < idle:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as exc:
            # The pool discards this connection and hands out a fresh one.
            raise DisconnectionError(f"pooled connection idle since {since:.0f} died") from exc


def init_app(app: Flask) -> None:
    engine = make_engine(app.config["DATABASE_URL"])
    app.extensions["tuscam.engine"] = engine
    app.extensions["tuscam.sessionmaker"] = sessionmaker(engine, expire_on_commit=False)
    app.teardown_appcontext(_close_db)


def db_engine(app: Flask) -> Engine:
    """For Core statements that need no Session (bearer-token checks on every tus request)."""
    return app.extensions["tuscam.engine"]


def session_factory(app: Flask) -> sessionmaker[Session]:
    return app.extensions["tuscam.sessionmaker"]


def get_db() -> Session:
    """The request's session, opened on first use."""
    if "db" not in g:
        from flask import current_app

        g.db = session_factory(current_app)()
    return g.db


def _close_db(exc: BaseException | None) -> None:
    db: Session | None = g.pop("db", None)
    if db is None:
        return
    if exc is not None:
        db.rollback()
    db.close()
