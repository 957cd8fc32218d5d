"""TusHandler: the tus 1.0.0 server without a web framework. handle() takes a TusRequest and
returns a TusResponse; POST and PATCH live in handler_create.py and handler_patch.py."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta

from app.tus import errors
from app.tus.checksum import ALGORITHMS
from app.tus.errors import TUS_RESUMABLE, TusError, error_response
from app.tus.handler_create import CreateMixin
from app.tus.handler_patch import PatchMixin
from app.tus.hooks import UploadInfo
from app.tus.locking import LockTimeout
from app.tus.messages import TusRequest, TusResponse
from app.tus.protocol import TUS_VERSION, is_upload_id
from app.tus.storage import Concater, Terminater, UploadGone, UploadNotFound, UploadRecord

log = logging.getLogger("app.tus")
COLLECTION = ("OPTIONS", "POST")
UPLOAD = ("OPTIONS", "HEAD", "PATCH", "DELETE", "GET")
_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f/\\"]')  # no control characters or paths in a name
HEAD_FINISH_WAIT = 1.0  # HEAD retries a failed finish only if the upload is free soon


class TusHandler(CreateMixin, PatchMixin):
    def handle(self, request: TusRequest) -> TusResponse:
        method = request.method.upper()
        override = request.headers.get("X-HTTP-Method-Override")
        if override:
            method = override.strip().upper()  # protocol: handle as that method
        try:
            if method == "OPTIONS":
                return self.options(request)  # Tus-Resumable is ignored on OPTIONS
            if method != "GET":  # a download link in a browser cannot send Tus-Resumable
                received = request.headers.get("Tus-Resumable")
                if received is None or received.strip() != TUS_RESUMABLE:
                    raise errors.unsupported_version(received)
            allowed = COLLECTION if request.upload_id is None else UPLOAD
            if method not in allowed:
                raise errors.method_not_allowed(method, ", ".join(allowed))
            response = getattr(self, method.lower())(request)
        except TusError as exc:
            return error_response(exc, method)
        response.headers["Tus-Resumable"] = TUS_RESUMABLE
        return response

    def extensions(self) -> list[str]:
        """Tus-Extension, derived from what the storage can do."""
        names = ["creation", "creation-with-upload", "creation-defer-length"]
        if isinstance(self.storage, Terminater):
            names.append("termination")
        if isinstance(self.storage, Concater):
            names.append("concatenation")
        names.append("checksum")
        if self.config.expiry_seconds and isinstance(self.storage, Terminater):
            names.append("expiration")
        return names

    def options(self, request: TusRequest | None = None) -> TusResponse:
        headers = {
            "Tus-Version": TUS_VERSION,
            "Tus-Extension": ",".join(self.extensions()),
            "Tus-Checksum-Algorithm": ",".join(ALGORITHMS),
        }
        if self.config.max_size is not None:
            headers["Tus-Max-Size"] = str(self.config.max_size)
        return TusResponse(204, headers)

    def head(self, request: TusRequest) -> TusResponse:
        upload_id = self._require_id(request)
        record = self._load(upload_id, request)
        if record.is_complete and not record.partial and not record.finished:
            record = self._retry_finish(record)
        headers = {"Cache-Control": "no-store"}  # protocol: HEAD responses must not be cached
        headers.update(self._progress_headers(record))
        if record.length is None:
            headers["Upload-Defer-Length"] = "1"
        else:
            headers["Upload-Length"] = str(record.length)
        if record.metadata_header:
            headers["Upload-Metadata"] = record.metadata_header  # as given at creation
        if record.partial:
            headers["Upload-Concat"] = "partial"
        elif record.concat_header is not None:
            headers["Upload-Concat"] = record.concat_header
        return TusResponse(200, headers)

    def _retry_finish(self, record: UploadRecord) -> UploadRecord:
        try:
            with self.locker.lock(record.id, HEAD_FINISH_WAIT):
                return self._complete(self.storage.get_info(record.id))
        except LockTimeout:
            return record  # the holder will finish it
        except (UploadNotFound, UploadGone):
            raise errors.upload_not_found() from None

    def delete(self, request: TusRequest) -> TusResponse:
        upload_id = self._require_id(request)
        if not isinstance(self.storage, Terminater):
            raise errors.method_not_allowed("DELETE", ", ".join(UPLOAD[:3]))
        self._load(upload_id, request)
        with self._locked(upload_id, request_release=True) as lock:
            info = self._info(self._load(upload_id, request, lock))
            self.storage.terminate(upload_id, "terminated", self.clock())
            lock.discard()
        if self.hooks.post_terminate is not None:
            try:
                self.hooks.post_terminate(info)
            except Exception:
                log.exception("post_terminate hook failed for upload %s", upload_id)
        return TusResponse(204, {})

    def get(self, request: TusRequest) -> TusResponse:
        upload_id = self._require_id(request)
        record = self._load(upload_id, request)
        name = _UNSAFE_NAME.sub("_", self._info(record).metadata.get("filename") or "")[:200]
        return TusResponse(
            200,
            {
                "Content-Type": "application/octet-stream",
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'none'; sandbox",
            },
            file_path=self.storage.path_of(upload_id),
            download_name=name or upload_id,
        )

    # --- maintenance --------------------------------------------------------------------------

    def reconcile(self) -> int:
        """Finish uploads that are complete on disk but whose finish hook has not run (a worker
        died, or the hook failed). Returns how many were finished now."""
        done = 0
        for upload_id in self.storage.list_ids():
            record = self._peek(upload_id)
            if record is None or not record.is_complete or record.partial or record.finished:
                continue
            try:
                with self.locker.lock(upload_id, self.config.lock_timeout):
                    record = self.storage.get_info(upload_id)
                    if not record.finished and self._complete(record).finished:
                        done += 1
            except (LockTimeout, TusError, UploadNotFound, UploadGone) as exc:
                log.warning("reconcile skipped upload %s: %s", upload_id, exc)
        return done

    def cleanup(self, now: datetime | None = None) -> int:
        """Remove expired unfinished uploads (they answer 410 from then on) and forget old
        tombstones and stray temp files. Returns how many uploads were removed."""
        now = now or self.clock()
        if not isinstance(self.storage, Terminater):
            return 0
        removed = 0
        for upload_id in self.storage.list_ids():
            record = self._peek(upload_id)
            if record is None or not self._expired(record, now):
                continue
            try:
                with self.locker.lock(upload_id, 0) as lock:  # busy means alive: skip it
                    if self._expired(self.storage.get_info(upload_id), now):
                        self.storage.terminate(upload_id, "expired", now)
                        lock.discard()
                        removed += 1
            except (LockTimeout, UploadNotFound, UploadGone):
                continue
        self.storage.sweep(now - timedelta(seconds=self.config.tombstone_seconds))
        return removed

    def upload_info(self, upload_id: str) -> UploadInfo | None:
        record = self._peek(upload_id)
        return self._info(record) if record else None

    def stored_headers(self, upload_id: str) -> dict[str, str]:
        record = self._peek(upload_id)
        return dict(record.finish_headers) if record else {}

    def _peek(self, upload_id: str) -> UploadRecord | None:
        if not is_upload_id(upload_id):
            return None
        try:
            return self.storage.get_info(upload_id)
        except (UploadNotFound, UploadGone):
            return None
