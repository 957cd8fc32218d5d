"""Maintenance of a tus server's uploads, run by `tuscam cleanup` and at worker start:
finish uploads whose finish hook did not run, expire, retire, sweep."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.tus.errors import TusError
from app.tus.handler import TusHandler
from app.tus.storage import LockTimeout, StorageUnavailable, UploadGone, UploadNotFound

log = logging.getLogger("app.tus")


@dataclass(frozen=True)
class Cleanup:
    expired: int  # unfinished uploads and unused partials past their expiry
    retired: int  # finished uploads past the grace period
    swept: int  # old tombstones and stray files


def reconcile(handler: TusHandler) -> int:
    """Finish uploads that are complete but whose finish hook has not run (a worker died,
    or the hook failed). Returns how many were finished now."""
    done = 0
    for upload_id in handler.store.list_ids():
        record = handler.peek(upload_id)
        if record is None or not record.is_complete or record.is_partial or record.finished:
            continue
        try:
            with handler.locker.lock(upload_id, handler.config.lock_timeout):
                record = handler.store.get_info(upload_id)
                if not record.finished and handler.on_complete(record).finished:
                    done += 1
        except (LockTimeout, TusError, UploadNotFound, UploadGone, StorageUnavailable) as exc:
            log.warning("reconcile skipped upload %s: %s", upload_id, exc)
    return done


def cleanup(handler: TusHandler, now: datetime | None = None) -> Cleanup:
    """Remove expired uploads (they answer 410 from then on), retire finished ones after
    the grace period (retain_seconds: the capture holds the bytes), and forget old
    tombstones and stray temp files."""
    now = now or handler.clock()
    expired = retired = 0
    retire_before = now - timedelta(seconds=handler.config.retain_seconds)
    for upload_id in handler.store.list_ids():
        record = handler.peek(upload_id)
        if record is None:
            continue
        if handler.expired(record, now):
            reason = "expired"
        elif record.finished and (record.finished_at or record.created_at) <= retire_before:
            reason = "retired"
        else:
            continue
        try:
            with handler.locker.lock(upload_id, 0) as lock:  # busy means alive: skip it
                record = handler.store.get_info(upload_id)
                if reason == "expired" and not handler.expired(record, now):
                    continue
                handler.store.terminate(upload_id, reason, now)
                lock.discard()
        except (LockTimeout, UploadNotFound, UploadGone):
            continue
        if reason == "expired":
            expired += 1
        else:
            retired += 1
    swept = handler.store.sweep(now - timedelta(seconds=handler.config.tombstone_seconds))
    return Cleanup(expired=expired, retired=retired, swept=swept)
