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

from app.tus.storage import Admit, OwnerUsage, UploadRecord

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


_USAGE = """
SELECT COALESCE(SUM(open = 1 AND (expires IS NULL OR expires > ?1)), 0),
       COALESCE(SUM(length), 0)
FROM uploads WHERE owner = ?2
"""
_DEFERRED = "SELECT id FROM uploads WHERE owner = ? AND length IS NULL"


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

    def admit(self, record: UploadRecord, admit: Admit) -> None:
        """Check the owner's usage and add the record in one write transaction: of two
        creations of one owner, in any worker process, the second counts the first."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")  # the write lock first: the count must stay true
        try:
            admit(self.usage(record.owner, record.created_at))
            self.put(record)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # never leave this thread's connection inside one
                db.execute("ROLLBACK")
            raise

    def put_all(self, records: Iterable[UploadRecord]) -> None:
        for record in records:
            self.put(record)

    def drop(self, upload_id: str) -> None:
        self._db().execute("DELETE FROM uploads WHERE id = ?", (upload_id,))

    def usage(self, owner: str, now: datetime) -> OwnerUsage:
        """Counted by SQLite: an owner holds every upload until it is retired (an hour after
        its capture by default), so a busy operator has hundreds of rows, and this runs on
        every creation. Only deferred uploads (length unknown) are looked at one by one."""
        db = self._db()
        unfinished, held = db.execute(_USAGE, (now.timestamp(), owner)).fetchone()
        for (upload_id,) in db.execute(_DEFERRED, (owner,)):
            held += self.data_size(upload_id)  # what it stored so far
        return OwnerUsage(unfinished=unfinished, bytes=held)
