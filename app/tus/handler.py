"""TusHandler: the tus 1.0.0 server without a web framework, its methods in the order a request
flows. handle() takes a TusRequest and returns a TusResponse; storage, locker, hooks and
settings are handed in by the caller (storage.py says what each must do)."""

from __future__ import annotations

import functools
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from app.tus import concat, errors
from app.tus.body import BodyReader
from app.tus.checksum import ALGORITHMS, new_hasher
from app.tus.config import TusConfig
from app.tus.constants import (
    COLLECTION_METHODS,
    OFFSET_CONTENT_TYPE,
    TUS_RESUMABLE,
    TUS_VERSION,
    UPLOAD_METHODS,
)
from app.tus.errors import TusError, error_response
from app.tus.hooks import CreateContext, HookRefused, Hooks, UploadInfo
from app.tus.messages import RequestBody, TusRequest, TusResponse
from app.tus.protocol import (
    Checksum,
    Concat,
    Metadata,
    http_date,
    is_upload_id,
    media_type,
    parse_checksum,
    parse_concat,
    parse_defer_length,
    parse_metadata,
    parse_uint,
)
from app.tus.storage import (
    Admit,
    Lock,
    Locker,
    LockTimeout,
    OffsetMismatch,
    OwnerUsage,
    Storage,
    StorageUnavailable,
    UploadGone,
    UploadIncomplete,
    UploadNotFound,
    UploadRecord,
)

log = logging.getLogger("app.tus")
EXPIRY_REFRESH = timedelta(seconds=60)  # rewrite the record for a later expiry at most this often
HEAD_FINISH_WAIT = 1.0  # HEAD retries a failed finish only if the upload is free soon
PROGRESS_INTERVAL = 1.0  # post_receive at most this often per upload (per process)
_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f/\\"]')  # no control characters or paths in a name
_HEADER_VALUE = re.compile(r"[^\x20-\x7e]")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Received(NamedTuple):
    """What storing a body left: the upload after it, and the error to answer if the body
    stopped early (the bytes that arrived are kept either way)."""

    record: UploadRecord
    stopped: TusError | None


class TusHandler:
    def __init__(
        self,
        store: Storage,
        locker: Locker,
        hooks: Hooks | None = None,
        config: TusConfig | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.locker = locker
        self.hooks = hooks or Hooks()
        self.config = config or TusConfig()
        self.clock = clock
        # The method table: `Allow` and every 405 derive from it (constants.py lists the names).
        self.methods: dict[str, Callable[[TusRequest], TusResponse]] = {
            "OPTIONS": self.options,
            "POST": self.post,
            "HEAD": self.head,
            "PATCH": self.patch,
            "DELETE": self.delete,
            "GET": self.get,
        }
        self._progress_at: dict[str, float] = {}
        self._progress_guard = threading.Lock()

    # --- dispatch ---------------------------------------------------------------------------

    def handle(self, request: TusRequest) -> TusResponse:
        method = request.method.upper()
        override = request.headers.get("X-HTTP-Method-Override")
        if override:
            method = override.strip().upper()  # protocol: handle it as that method
        try:
            if method != "OPTIONS" and method != "GET":
                # OPTIONS ignores it (protocol); a download link in a browser cannot send it.
                received = request.headers.get("Tus-Resumable")
                if received is None or received.strip() != TUS_RESUMABLE:
                    raise errors.unsupported_version(received)
            allowed = COLLECTION_METHODS if request.upload_id is None else UPLOAD_METHODS
            if method not in allowed:
                raise errors.method_not_allowed(method, ", ".join(allowed))
            return self.respond(self.methods[method](request), method)
        except TusError as exc:
            return self.refuse(exc, method)
        except StorageUnavailable as exc:
            log.warning("tus %s: storage unavailable: %s", method, exc)
            return self.refuse(errors.storage_unavailable(), method)

    @staticmethod
    def respond(response: TusResponse, method: str) -> TusResponse:
        """Every response passes here: Tus-Resumable on all but OPTIONS (protocol: core)."""
        if method != "OPTIONS":
            response.headers["Tus-Resumable"] = TUS_RESUMABLE
        return response

    def refuse(self, error: TusError, method: str) -> TusResponse:
        return self.respond(error_response(error, method), method)

    # --- OPTIONS: what this server offers ----------------------------------------------------

    def extensions(self) -> list[str]:
        names = [
            "creation",
            "creation-with-upload",
            "creation-defer-length",
            "termination",
            "concatenation",
            "checksum",
        ]
        if self.config.expiry_seconds:
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

    # --- POST: creation (+ with-upload, defer-length, partial); finals in _create_final ------

    def post(self, request: TusRequest) -> TusResponse:
        h = request.headers
        parsed_concat = parse_concat(h.get("Upload-Concat"))
        length = parse_uint("Upload-Length", h.get("Upload-Length"))
        deferred = parse_defer_length(h.get("Upload-Defer-Length"))
        metadata = parse_metadata(h.get("Upload-Metadata"), self.config.max_metadata_bytes)
        # creation-with-upload: only a body of this type is data; any other body is ignored.
        with_body = media_type(h.get("Content-Type")) == OFFSET_CONTENT_TYPE
        content_length = parse_uint("Content-Length", h.get("Content-Length"))
        checksum = parse_checksum(h.get("Upload-Checksum")) if with_body else None
        if parsed_concat is not None and not parsed_concat.partial:
            if length is not None or deferred:
                raise errors.conflicting_headers(
                    "A final upload takes its length from its parts: drop Upload-Length and "
                    "Upload-Defer-Length."
                )
            if with_body and content_length:
                raise errors.conflicting_headers("A final upload cannot carry data of its own.")
            return self._create_final(request, parsed_concat, metadata)
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
        is_partial = parsed_concat is not None
        self._pre_create(
            CreateContext(
                owner=request.owner,
                is_admin=request.is_admin,
                length=length,
                deferred=deferred,
                metadata=metadata.values,
                is_partial=is_partial,
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
            is_partial=is_partial,
        )
        self.store.create(record, self._admission(record))
        location = request.base_url + record.id
        stopped = None
        try:
            with self._locked(record.id) as lock:
                if with_body:
                    record, stopped = self._receive(
                        request.body, record, content_length, checksum, lock
                    )
                record = self.on_complete(record)  # also Upload-Length 0: complete at once
            if stopped is not None and stopped.status == 413:
                raise stopped  # otherwise an early end is reported by Upload-Offset
        except TusError as exc:
            if checksum is not None and exc.code != "finish-failed":
                # The chunk was discarded (checksum: mismatch or incomplete body) and the client
                # never learned of this upload: only a tombstone remains.
                self.store.terminate(record.id, "refused", self.clock())
                raise
            raise exc.with_headers({"Location": location}) from None
        return TusResponse(201, {"Location": location, **self._progress_headers(record)})

    def _create_final(self, request: TusRequest, final: Concat, metadata: Metadata) -> TusResponse:
        """concatenation: a final upload is complete when created, so it finishes at once."""
        parts = concat.check_parts(
            self.store, final.parts, request.owner, self.config.max_concat_parts
        )
        total = sum(part.length or 0 for part in parts)
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
            concat_header=final.header,
            parts=final.parts,
        )
        try:
            self.store.concatenate(record, final.parts, self._admission(record))
        except (FileNotFoundError, UploadNotFound, UploadGone):  # a partial left meanwhile
            raise errors.invalid_concat("a partial upload was removed meanwhile", 404) from None
        location = request.base_url + record.id
        try:
            with self._locked(record.id):
                record = self.on_complete(self.store.get_info(record.id))
        except TusError as exc:
            raise exc.with_headers({"Location": location}) from None
        return TusResponse(201, {"Location": location, **self._progress_headers(record)})

    def _admission(self, record: UploadRecord) -> Admit | None:
        """The quota check the store runs atomically with the creation (one transaction of
        its own, so that concurrent creations on any worker or node never pass a quota
        together); None when no quota is set."""
        if self.config.max_unfinished_per_owner is None and self.config.max_bytes_per_owner is None:
            return None
        return functools.partial(self._check_quota, record)

    def _check_quota(self, record: UploadRecord, usage: OwnerUsage) -> None:
        limit = self.config.max_unfinished_per_owner
        if limit is not None and not record.is_complete and record.length != 0:
            if usage.unfinished >= limit:
                raise errors.too_many_unfinished(limit)
        max_bytes = self.config.max_bytes_per_owner
        if max_bytes is not None and usage.bytes + record.held_bytes > max_bytes:
            raise errors.too_many_bytes(usage.bytes, record.held_bytes, max_bytes)

    # --- HEAD: where to resume --------------------------------------------------------------

    def head(self, request: TusRequest) -> TusResponse:
        upload_id = self._require_id(request)
        try:
            record = self._load(upload_id, request)
        except TusError as exc:
            retired = self._retired(upload_id, request)
            if retired is None:
                raise exc from None
            record = retired  # finished; its copy is gone but a client may still ask
        if record.is_complete and not record.is_partial and not record.finished:
            record = self._retry_finish(record)
        headers = {"Cache-Control": "no-store"}  # protocol: HEAD responses must not be cached
        headers.update(self._progress_headers(record))
        if record.length is None:
            headers["Upload-Defer-Length"] = "1"
        else:
            headers["Upload-Length"] = str(record.length)
        if record.metadata_header:
            headers["Upload-Metadata"] = record.metadata_header  # as given at creation
        if record.is_partial:
            headers["Upload-Concat"] = "partial"
        elif record.concat_header is not None:
            headers["Upload-Concat"] = record.concat_header
        return TusResponse(200, headers)

    def _retired(self, upload_id: str, request: TusRequest) -> UploadRecord | None:
        try:
            self.store.get_info(upload_id)
        except UploadGone as gone:
            if gone.record is not None and self._visible(gone.owner, request):
                return gone.record
        except UploadNotFound:
            pass
        return None

    def _retry_finish(self, record: UploadRecord) -> UploadRecord:
        try:
            with self.locker.lock(record.id, HEAD_FINISH_WAIT):
                return self.on_complete(self.store.get_info(record.id))
        except LockTimeout:
            return record  # the holder will finish it
        except (UploadNotFound, UploadGone):
            raise errors.upload_not_found() from None

    # --- PATCH: append a chunk at the stored offset ------------------------------------------

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
            record, stopped = self._receive(request.body, record, content_length, checksum, lock)
            record = self._touch_expiry(record)
            record = self.on_complete(record)
        if stopped is not None:
            raise stopped
        return TusResponse(204, self._progress_headers(record))

    def _declare_length(
        self, record: UploadRecord, length: int, content_length: int | None
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
        self._check_deferred_quota(record, length - record.offset)
        record = replace(record, length=length)
        self.store.save_info(record)
        return record

    def _check_deferred_quota(self, record: UploadRecord, more: int) -> None:
        """A deferred upload holds what it stored: it may grow only within its owner's bytes."""
        max_bytes = self.config.max_bytes_per_owner
        if max_bytes is None or record.length is not None or more <= 0:
            return
        held = self.store.owner_usage(record.owner, self.clock()).bytes
        if held + more > max_bytes:
            raise errors.too_many_bytes(held, more, max_bytes)

    def _room(self, record: UploadRecord) -> int | None:
        """How many more bytes the upload may take."""
        if record.length is not None:
            return record.length - record.offset
        if self.config.max_size is not None:
            return self.config.max_size - record.offset
        return None

    def _receive(
        self,
        body: RequestBody,
        record: UploadRecord,
        content_length: int | None,
        checksum: Checksum | None,
        lock: Lock,
    ) -> Received:
        """Store the body at the upload's offset (the caller holds the upload's lock)."""
        room = self._room(record)
        if content_length is not None and room is not None and content_length > room:
            raise errors.body_over_limit(content_length, room)  # before reading a byte
        if record.length is None and content_length is not None:
            self._check_deferred_quota(record, content_length)
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
                raise errors.body_stopped(
                    reader.stopped, record.offset, self.config.body_idle_timeout
                )
            if hasher is not None and checksum is not None and hasher.digest() != checksum.digest:
                raise errors.checksum_mismatch(checksum.algorithm, record.offset)

        # At most what the request announced (checked against the room above): a store that
        # buffers can size its buffer to the chunk, not to its largest part.
        limit = content_length if content_length is not None else room
        try:
            written = self.store.write_chunk(
                record.id, reader, record.offset, limit, check=verify if checksum else None
            )
        except OffsetMismatch as exc:  # only if another writer ignored the lock
            raise errors.offset_mismatch(exc.expected, exc.stored) from None
        if not checksum:
            reader.at_end()
        if self.config.fsync_each_patch:
            self.store.make_durable(record.id)
        # We hold the lock and wrote at the stored offset: no need to read the record again.
        after = replace(record, offset=record.offset + written)
        self._progress(after, 0)
        stopped = None
        if reader.stopped:
            stopped = errors.body_stopped(
                reader.stopped, after.offset, self.config.body_idle_timeout
            )
        return Received(after, stopped)

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
            self.store.save_info(record)
        return record

    # --- completion: durable, then the finish hook exactly once ------------------------------

    def on_complete(self, record: UploadRecord) -> UploadRecord:
        """For an upload whose bytes are all stored and that is not finished yet: make it
        durable, then (non-partial uploads) run the finish hook. The caller holds the upload's
        lock; the finished flag is written only after the hook returned, so a failed hook is
        retried by the next request (or reconcile) and a finished one never again."""
        if not record.is_complete or record.finished:
            return record
        self.store.make_durable(record.id)  # durable before anyone is told it is complete
        if record.is_partial:
            self.store.save_info(record)  # the store learns it is complete (quotas)
            return record
        headers: dict[str, str] = {}
        if self.hooks.finish is not None:
            try:
                data = self.store.finished_data(record.id, record.offset)
                returned = self.hooks.finish(self._info(record), data)
            except StorageUnavailable:
                raise
            except Exception:
                log.exception("finish hook failed for upload %s", record.id)
                raise errors.finish_failed() from None
            headers = {k: _HEADER_VALUE.sub("?", str(v)) for k, v in (returned or {}).items()}
        record = replace(record, finished=True, finished_at=self.clock(), finish_headers=headers)
        self.store.save_info(record)
        return record

    # --- DELETE: termination ----------------------------------------------------------------

    def delete(self, request: TusRequest) -> TusResponse:
        upload_id = self._require_id(request)
        self._load(upload_id, request)
        with self._locked(upload_id, request_release=True) as lock:
            info = self._info(self._load(upload_id, request, lock))
            self.store.terminate(upload_id, "terminated", self.clock())
            lock.discard()
        if self.hooks.post_terminate is not None:
            try:
                self.hooks.post_terminate(info)
            except Exception:
                log.exception("post_terminate hook failed for upload %s", upload_id)
        return TusResponse(204, {})

    # --- GET: the stored bytes, for the owner to verify --------------------------------------

    def get(self, request: TusRequest) -> TusResponse:
        upload_id = self._require_id(request)
        record = self._load(upload_id, request)
        name = _UNSAFE_NAME.sub("_", self._info(record).metadata.get("filename") or "")[:200]
        filename = name or upload_id
        return TusResponse(
            200,
            {
                "Content-Type": "application/octet-stream",
                "Content-Length": str(record.offset),
                "Content-Disposition": f'attachment; filename="{filename}"',
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'none'; sandbox",
            },
            stream=self._read(upload_id),
        )

    def _read(self, upload_id: str) -> Iterator[bytes]:
        try:
            return self.store.read_data(upload_id)
        except UploadIncomplete:
            raise errors.not_readable_yet() from None
        except UploadGone as exc:  # since it was loaded (a capture store deleted its object)
            raise errors.upload_gone(exc.reason) from None
        except UploadNotFound:
            raise errors.upload_not_found() from None

    # --- shared by the methods --------------------------------------------------------------

    def _require_id(self, request: TusRequest) -> str:
        upload_id = request.upload_id
        if upload_id is None or not is_upload_id(upload_id):
            raise errors.upload_not_found()  # before any path or key is built from it
        return upload_id

    def _load(self, upload_id: str, request: TusRequest, lock: Lock | None = None) -> UploadRecord:
        """The upload if the requester may see it; 404 for others' uploads, 410 when gone."""
        try:
            record = self.store.get_info(upload_id)
        except (UploadNotFound, UploadGone) as exc:
            if lock is not None:
                lock.discard()  # nothing left to protect
            if isinstance(exc, UploadGone) and self._visible(exc.owner, request):
                raise errors.upload_gone(exc.reason) from None
            raise errors.upload_not_found() from None
        if not self._visible(record.owner, request):
            raise errors.upload_not_found()
        if self.expired(record):
            raise errors.upload_gone("expired")  # expiration: 410 even before cleanup runs
        return record

    @staticmethod
    def _visible(owner: str, request: TusRequest) -> bool:
        return request.is_admin or owner == request.owner

    def expired(self, record: UploadRecord, now: datetime | None = None) -> bool:
        """Unfinished uploads expire, and so do complete partials (no final used them then)."""
        return (
            (not record.is_complete or record.is_partial)
            and record.expires_at is not None
            and record.expires_at <= (now or self.clock())
        )

    def _expiry(self, now: datetime) -> datetime | None:
        seconds = self.config.expiry_seconds
        return now + timedelta(seconds=seconds) if seconds else None

    @contextmanager
    def _locked(self, upload_id: str, *, request_release: bool = False) -> Iterator[Lock]:
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
            is_partial=record.is_partial,
            is_final=record.is_final,
        )

    def _progress_headers(self, record: UploadRecord) -> dict[str, str]:
        """Upload-Offset, Upload-Expires while the upload can still expire, finish headers."""
        headers = {"Upload-Offset": str(record.offset)}
        if record.expires_at is not None and not record.is_complete:
            headers["Upload-Expires"] = http_date(record.expires_at)
        headers.update(record.finish_headers)
        return headers

    # --- read by the application (and maintenance.py) ------------------------------------

    def upload_info(self, upload_id: str) -> UploadInfo | None:
        record = self.peek(upload_id)
        return self._info(record) if record else None

    def stored_headers(self, upload_id: str) -> dict[str, str]:
        record = self.peek(upload_id)
        return dict(record.finish_headers) if record else {}

    def peek(self, upload_id: str) -> UploadRecord | None:
        if not is_upload_id(upload_id):
            return None
        try:
            return self.store.get_info(upload_id)
        except (UploadNotFound, UploadGone):
            return None
