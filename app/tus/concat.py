"""The concatenation extension's final uploads: check the named partial uploads, then let the
storage assemble them in order. A final is complete when created, so it finishes at once."""

from __future__ import annotations

import secrets

from app.tus import errors
from app.tus.handler_base import HandlerBase
from app.tus.hooks import CreateContext
from app.tus.messages import TusRequest, TusResponse
from app.tus.protocol import Concat, Metadata
from app.tus.storage import Concater, UploadGone, UploadNotFound, UploadRecord


class ConcatMixin(HandlerBase):
    def _create_final(self, request: TusRequest, concat: Concat, metadata: Metadata) -> TusResponse:
        if not isinstance(self.storage, Concater):
            raise errors.invalid_concat("this server does not support concatenation")
        total = sum(self._partial(part_id, request).length or 0 for part_id in concat.parts)
        max_size = self.config.max_size
        if max_size is not None and total > max_size:
            raise errors.too_large("The concatenated upload", total, max_size)
        self._pre_create(
            CreateContext(
                owner=request.owner,
                is_admin=request.is_admin,
                length=total,
                deferred=False,
                metadata=metadata.values,  # the partials' metadata is not carried over
                is_partial=False,
                is_final=True,
            )
        )
        record = UploadRecord(
            id=secrets.token_hex(16),
            owner=request.owner,
            length=total,
            created_at=self.clock(),
            metadata_header=metadata.header,
            concat_header=concat.header,
            parts=concat.parts,
        )
        try:
            self.storage.concatenate(record, concat.parts)
        except FileNotFoundError:  # a partial was terminated meanwhile
            raise errors.invalid_concat("a partial upload was removed meanwhile", 404) from None
        location = request.base_url + record.id
        try:
            with self._locked(record.id) as _lock:
                record = self._complete(self.storage.get_info(record.id))
        except errors.TusError as exc:
            raise exc.with_headers({"Location": location}) from None
        return TusResponse(201, {"Location": location, **self._progress_headers(record)})

    def _partial(self, part_id: str, request: TusRequest) -> UploadRecord:
        try:
            part = self.storage.get_info(part_id)
        except (UploadNotFound, UploadGone):
            part = None
        if part is None or part.owner != request.owner:  # never another user's data
            raise errors.invalid_concat(f"there is no upload {part_id}", 404)
        if not part.partial:
            raise errors.invalid_concat(f"upload {part_id} is not a partial upload")
        if not part.is_complete:
            raise errors.invalid_concat(
                f"partial upload {part_id} holds {part.offset} of {part.length or '?'} bytes; "
                "finish it first"
            )
        return part
