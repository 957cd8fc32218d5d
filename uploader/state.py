"""Resume state of tuscam-upload: a small SQLite database that outlives a killed run.

One row per (server, session, absolute path, content sha256) holds the tus upload URL once the
server created it and the capture's outcome once the upload completed. It is shared safely by
the threads of one run (one connection per thread) and by several runs at once (WAL journal,
busy timeout, single-statement writes). A cache of content hashes by (path, size, mtime) saves
re-reading large files when a run is restarted.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS uploads (
    server TEXT NOT NULL,
    session_id TEXT NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    upload_url TEXT,
    done INTEGER NOT NULL DEFAULT 0,
    capture_id INTEGER,
    capture_status TEXT,
    reason TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (server, session_id, path, sha256)
);
CREATE TABLE IF NOT EXISTS hashes (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL
);
"""


def default_state_path() -> Path:
    """$XDG_STATE_HOME/tuscam-upload/state.sqlite3 (XDG base directory spec; default
    ~/.local/state)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "tuscam-upload" / "state.sqlite3"


@dataclass(frozen=True)
class UploadKey:
    server: str
    session_id: str
    path: str
    sha256: str

    @classmethod
    def make(cls, server: str, session_id: int | str, path: Path | str, sha256: str) -> UploadKey:
        return cls(server.rstrip("/"), str(session_id), str(path), sha256)


@dataclass(frozen=True)
class ResumeEntry:
    """What the resume state holds for one file: its upload URL, and the outcome once done."""

    key: UploadKey
    size: int
    upload_url: str | None
    done: bool
    capture_id: int | None
    capture_status: str | None
    reason: str | None


class StateStore:
    """The resume state. Every public method is safe to call from any thread."""

    def __init__(self, path: Path, *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._conn()
        # WAL lets readers and one writer of several processes work at once; it is persistent,
        # so setting it once per open is enough (it needs a brief exclusive lock, hence retry).
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # isolation_level=None: autocommit; every write below is one atomic statement.
            conn = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- uploads ---------------------------------------------------------------------------

    def get(self, key: UploadKey) -> ResumeEntry | None:
        row = (
            self._conn()
            .execute(
                "SELECT size, upload_url, done, capture_id, capture_status, reason FROM uploads"
                " WHERE server=? AND session_id=? AND path=? AND sha256=?",
                (key.server, key.session_id, key.path, key.sha256),
            )
            .fetchone()
        )
        if row is None:
            return None
        size, url, done, capture_id, status, reason = row
        return ResumeEntry(key, size, url, bool(done), capture_id, status, reason)

    def set_url(self, key: UploadKey, size: int, upload_url: str | None) -> None:
        """Remember (or forget, with None) the tus URL of an unfinished upload."""
        self._conn().execute(
            "INSERT INTO uploads (server, session_id, path, sha256, size, upload_url, done,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, 0, ?)"
            " ON CONFLICT (server, session_id, path, sha256) DO UPDATE SET"
            " size=excluded.size, upload_url=excluded.upload_url, done=0, capture_id=NULL,"
            " capture_status=NULL, reason=NULL, updated_at=excluded.updated_at",
            (key.server, key.session_id, key.path, key.sha256, size, upload_url, time.time()),
        )

    def mark_done(
        self,
        key: UploadKey,
        size: int,
        upload_url: str | None,
        capture_id: int | None,
        capture_status: str | None,
        reason: str | None,
    ) -> None:
        """The upload completed and the server recorded this capture outcome."""
        self._conn().execute(
            "INSERT INTO uploads (server, session_id, path, sha256, size, upload_url, done,"
            " capture_id, capture_status, reason, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?)"
            " ON CONFLICT (server, session_id, path, sha256) DO UPDATE SET"
            " size=excluded.size, upload_url=excluded.upload_url, done=1,"
            " capture_id=excluded.capture_id, capture_status=excluded.capture_status,"
            " reason=excluded.reason, updated_at=excluded.updated_at",
            (
                key.server,
                key.session_id,
                key.path,
                key.sha256,
                size,
                upload_url,
                capture_id,
                capture_status,
                reason,
                time.time(),
            ),
        )

    def forget(self, key: UploadKey) -> None:
        self._conn().execute(
            "DELETE FROM uploads WHERE server=? AND session_id=? AND path=? AND sha256=?",
            (key.server, key.session_id, key.path, key.sha256),
        )

    def count(self) -> int:
        return self._conn().execute("SELECT count(*) FROM uploads").fetchone()[0]

    # -- content hashes --------------------------------------------------------------------

    def cached_sha256(self, path: Path, size: int, mtime_ns: int) -> str | None:
        row = (
            self._conn()
            .execute(
                "SELECT sha256 FROM hashes WHERE path=? AND size=? AND mtime_ns=?",
                (str(path), size, mtime_ns),
            )
            .fetchone()
        )
        return row[0] if row else None

    def remember_sha256(self, path: Path, size: int, mtime_ns: int, sha256: str) -> None:
        self._conn().execute(
            "INSERT INTO hashes (path, size, mtime_ns, sha256) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (path) DO UPDATE SET size=excluded.size, mtime_ns=excluded.mtime_ns,"
            " sha256=excluded.sha256",
            (str(path), size, mtime_ns, sha256),
        )
