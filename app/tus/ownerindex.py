"""The file store's index of what each owner holds (for quotas): one row per upload in a small
SQLite file beside the uploads, shared by every worker process on the machine.

The records stay the truth: the index is rebuilt from them when it is missing."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

from app.tus.storage import OwnerUsage, UploadRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    length INTEGER,          -- NULL while deferred: the data file's size counts then
    open INTEGER NOT NULL,   -- 1 until all bytes arrived
    expires REAL             -- unix time; NULL = never
);
CREATE INDEX IF NOT EXISTS uploads_owner ON uploads (owner);
"""


class OwnerIndex:
    def __init__(self, path: Path, data_size: Callable[[str], int]) -> None:
        self.path = path
        self.data_size = data_size
        self._local = threading.local()

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None or getattr(self._local, "pid", None) != os.getpid():
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            # The index can be rebuilt from the records: a power loss may lose its last rows.
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            self._local.db = db
            self._local.pid = os.getpid()
        return db

    def exists(self) -> bool:
        return self.path.exists()

    def put(self, record: UploadRecord) -> None:
        self._db().execute(
            "INSERT OR REPLACE INTO uploads (id, owner, length, open, expires) VALUES (?,?,?,?,?)",
            (
                record.id,
                record.owner,
                record.length,
                0 if record.is_complete else 1,
                record.expires_at.timestamp() if record.expires_at else None,
            ),
        )

    def put_all(self, records: Iterable[UploadRecord]) -> None:
        for record in records:
            self.put(record)

    def drop(self, upload_id: str) -> None:
        self._db().execute("DELETE FROM uploads WHERE id = ?", (upload_id,))

    def usage(self, owner: str, now: datetime) -> OwnerUsage:
        rows = self._db().execute(
            "SELECT id, length, open, expires FROM uploads WHERE owner = ?", (owner,)
        )
        unfinished = held = 0
        stamp = now.timestamp()
        for upload_id, length, is_open, expires in rows:
            if length is None:
                held += self.data_size(upload_id)  # deferred: what it stored so far
            else:
                held += length
            if is_open and (expires is None or expires > stamp):
                unfinished += 1
        return OwnerUsage(unfinished=unfinished, bytes=held)
