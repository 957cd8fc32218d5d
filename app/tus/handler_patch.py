"""PATCH: append a chunk at the stored offset (core protocol, checksum extension, and the
deferred length of creation-defer-length). Headers are checked before the lock and the body."""

from __future__ import annotations

from dataclasses import replace

from app.tus import errors
from app.tus.messages import TusRequest, TusResponse
from app.tus.protocol import OFFSET_CONTENT_TYPE, media_type, parse_checksum, parse_uint
from app.tus.receive import ReceiveMixin
from app.tus.storage import UploadRecord


class PatchMixin(ReceiveMixin):
    def patch(self, request: TusRequest) -> TusResponse:
        upload_id = self._require_id(request)
        h = request.headers
        content_type = h.get("Content-Type")
        if media_type(content_type) != OFFSET_CONTENT_TYPE:
            raise errors.unsupported_media_type(content_type)
        offset = parse_uint("Upload-Offset", h.get("Upload-Offset"))
        if offset is None:
            raise errors.missing_header("Upload-Offset", "on PATCH; send HEAD to learn it")
        content_length = parse_uint("Content-Length", h.get("Content-Length"))
        checksum = parse_checksum(h.get("Upload-Checksum"))
        declared = parse_uint("Upload-Length", h.get("Upload-Length"))
        self._load(upload_id, request)  # 404/410 without creating a lock for a stranger's id
        with self._locked(upload_id, request_release=True) as lock:
            record = self._load(upload_id, request, lock)
            if record.is_final:
                raise errors.patch_on_final()
            if offset != record.offset:
                raise errors.offset_mismatch(offset, record.offset)  # upload left unmodified
            if declared is not None:
                record = self._declare_length(record, declared, content_length)
            record, stop = self._write_body(record, request.body, content_length, checksum, lock)
            record = self._touch_expiry(record)
            record = self._complete(record)
        if stop is not None:
            raise stop
        return TusResponse(204, self._progress_headers(record))

    def _declare_length(
        self, record: UploadRecord, length: int, content_length: int | None = None
    ) -> UploadRecord:
        """creation-defer-length: the length is recorded once and never changes."""
        if record.length is not None:
            if length != record.length:
                raise errors.length_change(record.length, length, record.offset)
            return record
        if length < record.offset:
            raise errors.length_change(None, length, record.offset)
        max_size = self.config.max_size
        if max_size is not None and length > max_size:
            raise errors.too_large("Upload-Length", length, max_size)
        if content_length is not None and record.offset + content_length > length:
            # Refused before anything is recorded: a 413 must not fix the length for good.
            raise errors.body_over_limit(content_length, length - record.offset)
        record = replace(record, length=length)
        self.storage.save_info(record)
        return record
