"""Receiving a request body into storage for POST and PATCH: limits, checksum verification,
the reasons a body stopped early, and throttled progress notifications."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import BinaryIO

from app.tus import errors
from app.tus.body import DISCONNECTED, IDLE, RELEASED, BodyReader
from app.tus.checksum import new_hasher
from app.tus.errors import TusError
from app.tus.handler_base import HandlerBase, log
from app.tus.locking import UploadLock
from app.tus.protocol import Checksum
from app.tus.storage import OffsetMismatch, UploadRecord

PROGRESS_INTERVAL = 1.0  # post_receive at most this often per upload (per process)


class ReceiveMixin(HandlerBase):
    # --- receiving a body ---------------------------------------------------------------------

    def _room(self, record: UploadRecord) -> int | None:
        """How many more bytes the upload may take."""
        if record.length is not None:
            return record.length - record.offset
        if self.config.max_size is not None:
            return self.config.max_size - record.offset
        return None

    def _write_body(
        self,
        record: UploadRecord,
        body: BinaryIO,
        content_length: int | None,
        checksum: Checksum | None,
        lock: UploadLock,
    ) -> tuple[UploadRecord, TusError | None]:
        """Store the body at the upload's offset; returns the upload after it and the error
        to answer if the body stopped early (the bytes that arrived are kept)."""
        room = self._room(record)
        if content_length is not None and room is not None and content_length > room:
            raise errors.body_over_limit(content_length, room)  # before reading a byte
        hasher = new_hasher(checksum.algorithm) if checksum else None
        reader = BodyReader(
            body,
            content_length,
            idle_timeout=self.config.body_idle_timeout,
            release_requested=lock.release_requested,
            on_progress=lambda received: self._progress(record, received),
            hasher=hasher,
        )

        def verify() -> None:
            reader.at_end()
            if reader.stopped:
                raise self._stop_error(reader.stopped, record.offset)  # chunk discarded
            assert checksum is not None and hasher is not None
            if hasher.digest() != checksum.digest:
                raise errors.checksum_mismatch(checksum.algorithm, record.offset)

        try:
            written = self.storage.write_chunk(
                record.id, reader, record.offset, room, check=verify if checksum else None
            )
        except OffsetMismatch as exc:  # only if another writer ignored the lock
            raise errors.offset_mismatch(exc.expected, exc.stored) from None
        if not checksum:
            reader.at_end()
        if self.config.fsync_each_patch:
            self.storage.finalize(record.id)
        # We hold the lock and wrote at the stored offset: no need to read the record again.
        after = replace(record, offset=record.offset + written)
        self._progress(after, 0)
        error = self._stop_error(reader.stopped, after.offset) if reader.stopped else None
        return after, error

    def _stop_error(self, reason: str, stored: int) -> TusError:
        if reason == DISCONNECTED:
            return errors.body_incomplete(stored)
        if reason == IDLE:
            return errors.body_idle(self.config.body_idle_timeout, stored)
        if reason == RELEASED:
            return errors.released(stored)
        return errors.body_over_length(stored)

    def _progress(self, record: UploadRecord, received: int) -> None:
        hook = self.hooks.post_receive
        if hook is None:
            return
        now = time.monotonic()
        with self._progress_guard:
            if now - self._progress_at.get(record.id, float("-inf")) < PROGRESS_INTERVAL:
                return
            if len(self._progress_at) > 10_000:
                self._progress_at.clear()
            self._progress_at[record.id] = now
        try:
            hook(replace(self._info(record), offset=record.offset + received))
        except Exception:  # a progress notification must never break an upload
            log.exception("post_receive hook failed for upload %s", record.id)
