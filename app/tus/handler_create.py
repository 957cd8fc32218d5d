"""POST: the creation, creation-with-upload and creation-defer-length extensions, and the
partial side of concatenation. Every header is checked before a byte is stored."""

from __future__ import annotations

import secrets

from app.tus import errors
from app.tus.concat import ConcatMixin
from app.tus.errors import TusError
from app.tus.hooks import CreateContext
from app.tus.messages import TusRequest, TusResponse
from app.tus.protocol import (
    OFFSET_CONTENT_TYPE,
    media_type,
    parse_checksum,
    parse_concat,
    parse_defer_length,
    parse_metadata,
    parse_uint,
)
from app.tus.receive import ReceiveMixin
from app.tus.storage import Terminater, UploadRecord


class CreateMixin(ConcatMixin, ReceiveMixin):
    def post(self, request: TusRequest) -> TusResponse:
        if request.upload_id is not None:
            raise errors.method_not_allowed("POST", "OPTIONS, HEAD, PATCH, DELETE, GET")
        h = request.headers
        concat = parse_concat(h.get("Upload-Concat"))
        length = parse_uint("Upload-Length", h.get("Upload-Length"))
        deferred = parse_defer_length(h.get("Upload-Defer-Length"))
        metadata = parse_metadata(h.get("Upload-Metadata"), self.config.max_metadata_bytes)
        # creation-with-upload: only a body of this type is data; any other body is ignored.
        with_body = media_type(h.get("Content-Type")) == OFFSET_CONTENT_TYPE
        content_length = parse_uint("Content-Length", h.get("Content-Length"))
        checksum = parse_checksum(h.get("Upload-Checksum")) if with_body else None
        if concat is not None and not concat.partial:
            if length is not None or deferred:
                raise errors.conflicting_headers(
                    "A final upload takes its length from its parts: drop Upload-Length and "
                    "Upload-Defer-Length."
                )
            if with_body and content_length:
                raise errors.conflicting_headers("A final upload cannot carry data of its own.")
            return self._create_final(request, concat, metadata)
        if length is None and not deferred:
            raise errors.missing_header(
                "Upload-Length", "(or Upload-Defer-Length: 1 when the size is not known yet)"
            )
        if length is not None and deferred:
            raise errors.conflicting_headers("Send Upload-Length or Upload-Defer-Length, not both.")
        max_size = self.config.max_size
        if length is not None and max_size is not None and length > max_size:
            raise errors.too_large("Upload-Length", length, max_size)
        allowed = length if length is not None else max_size
        if with_body and content_length is not None and allowed is not None:
            if content_length > allowed:
                raise errors.body_over_limit(content_length, allowed)
        self._check_unfinished(request.owner, length)
        self._pre_create(
            CreateContext(
                owner=request.owner,
                is_admin=request.is_admin,
                length=length,
                deferred=deferred,
                metadata=metadata.values,
                is_partial=concat is not None,
                is_final=False,
            )
        )
        now = self.clock()
        record = UploadRecord(
            id=secrets.token_hex(16),
            owner=request.owner,
            length=length,
            created_at=now,
            metadata_header=metadata.header,
            expires_at=None if length == 0 else self._expiry(now),
            partial=concat is not None,
        )
        self.storage.create(record)
        location = request.base_url + record.id
        stop = None
        try:
            with self._locked(record.id) as lock:
                if with_body:
                    record, stop = self._write_body(
                        record, request.body, content_length, checksum, lock
                    )
                record = self._complete(record)  # also Upload-Length 0: complete at creation
            if stop is not None and stop.status == 413:
                raise stop  # otherwise an early end is reported by Upload-Offset
        except TusError as exc:
            if checksum is not None and exc.code != "finish-failed":
                # The chunk was discarded (checksum: mismatch or incomplete body) and the client
                # never learned of this upload: only a tombstone remains.
                self._forget(record.id)
                raise
            raise exc.with_headers({"Location": location}) from None
        return TusResponse(201, {"Location": location, **self._progress_headers(record)})

    def _check_unfinished(self, owner: str, length: int | None) -> None:
        limit = self.config.max_unfinished_per_owner
        if limit is None or length == 0:
            return
        if self.storage.count_unfinished(owner, self.clock(), limit) >= limit:
            raise errors.too_many_unfinished(limit)

    def _forget(self, upload_id: str) -> None:
        if isinstance(self.storage, Terminater):
            self.storage.terminate(upload_id, "refused", self.clock())
