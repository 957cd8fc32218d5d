"""What the tus request handlers share: loading an upload for a requester, the upload lock,
the pre-create check, response headers, and finishing a completed upload exactly once."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from app.tus import errors
from app.tus.config import TusConfig
from app.tus.errors import TusError
from app.tus.filestore import FileStore
from app.tus.hooks import CreateContext, HookRefused, Hooks, UploadInfo
from app.tus.locking import FileLocker, Locker, LockTimeout, UploadLock
from app.tus.messages import TusRequest
from app.tus.protocol import http_date, is_upload_id, parse_metadata
from app.tus.storage import Storage, UploadGone, UploadNotFound, UploadRecord

log = logging.getLogger("app.tus")
EXPIRY_REFRESH = timedelta(seconds=60)  # rewrite the record for a later expiry at most this often
_HEADER_VALUE = re.compile(r"[^\x20-\x7e]")


def utcnow() -> datetime:
    return datetime.now(UTC)


class HandlerBase:
    def __init__(
        self,
        config: TusConfig,
        storage: Storage | None = None,
        locker: Locker | None = None,
        hooks: Hooks | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.config = config
        self.storage: Storage = storage or FileStore(
            config.upload_dir, block_size=config.block_size
        )
        # Lock files as hard links of the data files: see locking.py.
        link_to = self.storage.path_of if isinstance(self.storage, FileStore) else None
        self.locker: Locker = locker or FileLocker(config.upload_dir, link_to=link_to)
        self.hooks = hooks or Hooks()
        self.clock = clock
        self._progress_at: dict[str, float] = {}
        self._progress_guard = threading.Lock()

    # --- loading ------------------------------------------------------------------------------

    def _require_id(self, request: TusRequest) -> str:
        if not is_upload_id(request.upload_id):
            raise errors.upload_not_found()  # before any path is built from it
        assert request.upload_id is not None
        return request.upload_id

    def _load(
        self, upload_id: str, request: TusRequest, lock: UploadLock | None = None
    ) -> UploadRecord:
        """The upload if the requester may see it; 404 for others' uploads, 410 when gone."""
        try:
            record = self.storage.get_info(upload_id)
        except (UploadNotFound, UploadGone) as exc:
            if lock is not None:
                lock.discard()  # nothing left to protect
            if isinstance(exc, UploadGone) and self._visible(exc.owner, request):
                raise errors.upload_gone(exc.reason) from None
            raise errors.upload_not_found() from None
        if not self._visible(record.owner, request):
            raise errors.upload_not_found()
        if self._expired(record):
            raise errors.upload_gone("expired")  # expiration: 410 even before cleanup runs
        return record

    @staticmethod
    def _visible(owner: str, request: TusRequest) -> bool:
        return request.is_admin or owner == request.owner

    def _expired(self, record: UploadRecord, now: datetime | None = None) -> bool:
        return (
            not record.is_complete
            and record.expires_at is not None
            and record.expires_at <= (now or self.clock())
        )

    @contextmanager
    def _locked(self, upload_id: str, *, request_release: bool = False) -> Iterator[UploadLock]:
        try:
            with self.locker.lock(
                upload_id, self.config.lock_timeout, request_release=request_release
            ) as lock:
                yield lock
        except LockTimeout as exc:
            raise errors.locked(exc.waited) from None

    def _pre_create(self, context: CreateContext) -> None:
        if self.hooks.pre_create is None:
            return
        try:
            self.hooks.pre_create(context)
        except HookRefused as exc:
            status = exc.status if 400 <= exc.status < 600 else 403
            raise errors.hook_refused(status, exc.message) from None
        except Exception:
            log.exception("pre_create hook failed")
            raise errors.hook_failed("pre-create") from None

    # --- views for hooks and responses --------------------------------------------------------

    def _info(self, record: UploadRecord) -> UploadInfo:
        try:
            values = parse_metadata(record.metadata_header, 1 << 30).values
        except TusError:
            values = {}
        return UploadInfo(
            id=record.id,
            owner=record.owner,
            length=record.length,
            offset=record.offset,
            metadata=values,
            metadata_header=record.metadata_header,
            created_at=record.created_at,
            expires_at=record.expires_at,
            is_partial=record.partial,
            is_final=record.is_final,
        )

    def _progress_headers(self, record: UploadRecord) -> dict[str, str]:
        """Upload-Offset, Upload-Expires while the upload can still expire, finish headers."""
        headers = {"Upload-Offset": str(record.offset)}
        if record.expires_at is not None and not record.is_complete:
            headers["Upload-Expires"] = http_date(record.expires_at)
        headers.update(record.finish_headers)
        return headers

    def _expiry(self, now: datetime) -> datetime | None:
        seconds = self.config.expiry_seconds
        return now + timedelta(seconds=seconds) if seconds else None

    def _touch_expiry(self, record: UploadRecord) -> UploadRecord:
        """Activity postpones expiry (the value may change, protocol: expiration)."""
        later = self._expiry(self.clock())
        if record.is_complete or later is None or record.expires_at is None:
            return record
        # A short expiry (under a minute) must still be postponed by activity, or an upload
        # being sent expires mid-way: refresh after a quarter of it at the latest.
        refresh = min(EXPIRY_REFRESH, timedelta(seconds=self.config.expiry_seconds or 0) / 4)
        if later - record.expires_at >= refresh:
            record = replace(record, expires_at=later)
            self.storage.save_info(record)
        return record

    # --- finishing ----------------------------------------------------------------------------

    def _complete(self, record: UploadRecord) -> UploadRecord:
        """Run the finish hook once for a completed non-partial upload. The caller holds the
        upload's lock; the finished flag is written only after the hook returned, so a failed
        hook is retried by the next request (or reconcile) and a finished one never again."""
        if not record.is_complete or record.partial or record.finished:
            return record
        self.storage.finalize(record.id)  # durable before anyone is told it is complete
        self.storage.mark_complete(record)
        headers: dict[str, str] = {}
        if self.hooks.finish is not None:
            try:
                returned = self.hooks.finish(self._info(record), self.storage.path_of(record.id))
            except Exception:
                log.exception("finish hook failed for upload %s", record.id)
                raise errors.finish_failed() from None
            headers = {k: _HEADER_VALUE.sub("?", str(v)) for k, v in (returned or {}).items()}
        record = replace(record, finished=True, finish_headers=headers)
        self.storage.save_info(record)
        return record
