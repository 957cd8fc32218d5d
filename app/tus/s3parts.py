"""The S3 store's part writer: streams a body into multipart-upload parts of one to two part
sizes through one buffer, the upload's tail first, and records them (app/tus/s3store.py)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from app.tus.s3schema import tus_upload_parts, tus_uploads
from app.tus.storage import OffsetMismatch, StorageUnavailable, UploadNotFound

if TYPE_CHECKING:
    from app.tus.s3store import S3Store

log = logging.getLogger(__name__)

MIN_PART_SIZE = 5 << 20  # S3: every part but the last (EntityTooSmall otherwise)
MAX_PARTS = 10_000  # S3: part numbers 1..10000
READ_BLOCK = 1 << 20  # blocks of GET bodies and downloads

# The upload's S3 state after a write, built once (the values are bound per call).
_STATE = ("upload_offset", "multipart_id", "tail_key", "tail_size", "stored")
# Conditional on the offset the writer last saw recorded: a writer that lost its lock (its
# PostgreSQL session ended mid-request) and wrote on regardless changes nothing.
_UNCHANGED = update(tus_uploads).where(
    tus_uploads.c.id == bindparam("uid"),
    tus_uploads.c.gone_reason.is_(None),
    tus_uploads.c.upload_offset == bindparam("old_offset"),
)
_SET_STATE = _UNCHANGED.values({name: bindparam(f"new_{name}") for name in _STATE})
# A number for the next part, handed out only while the offset is the one the writer last
# saw: no two writers ever upload a part of the same number (see reserve_part).
_RESERVE = _UNCHANGED.values(next_part=tus_uploads.c.next_part + 1).returning(
    tus_uploads.c.next_part
)
_OFFSET = select(tus_uploads.c.upload_offset, tus_uploads.c.gone_reason).where(
    tus_uploads.c.id == bindparam("uid")
)


class _Overtaken(Exception):
    """Another writer recorded bytes since this one started (see PartWriter._overtaken)."""


def part_size_for(max_size: int) -> int:
    """The smallest part size (whole MiB, at least 5 MiB) with which 10,000 parts hold
    max_size bytes. Parts are between this and twice this, the last one smaller."""
    mib = 1 << 20
    per_part = -(-max_size // MAX_PARTS)
    return max(MIN_PART_SIZE, -(-per_part // mib) * mib)


@dataclass
class Part:
    number: int
    size: int
    etag: str


class PartWriter:
    """Streams bytes into parts of part_size..2 x part_size through one buffer, the row's tail
    first. record_each: every full part is recorded as soon as S3 holds it (a plain PATCH);
    otherwise parts wait in `pending` until finish() (a checked chunk, a concatenation)."""

    def __init__(
        self,
        store: S3Store,
        row: Any,
        parts: list[Part],
        *,
        record_each: bool,
        digest: Any | None = None,
    ) -> None:
        self.store = store
        self.digest = digest  # a hashlib state fed every received byte (running_digest.py)
        self.row = row
        self.upload_id: str = row.id
        self.key = store.key(row.id)
        self.capacity = 2 * store.part_size
        self.multipart_id: str | None = row.multipart_id
        self.created_multipart = False
        self.parts = parts  # recorded
        self.pending: list[Part] = []  # in S3, not recorded yet
        self.record_each = record_each
        self.tail_key: str | None = row.tail_key  # the tail the row points to
        self.tail_size: int = row.tail_size
        self.new_tail: str | None = None
        self.total = row.upload_offset  # bytes in S3 or in the buffer
        self.recorded = row.upload_offset  # the offset this writer last saw in the row
        self.buffer: bytearray | None = None
        self.filled = 0
        self.stored = False

    def receive(self, source: Any, limit: int | None) -> int:
        """Read the source to its end (or limit), sending each full buffer as a part."""
        received = 0
        while limit is None or received < limit:
            fresh = self.buffer is None
            if self.buffer is None:
                # The tail goes in front; it is read from S3 only once a byte has arrived, so
                # an empty body costs S3 nothing.
                self.filled = self.tail_size if self.tail_key and not received else 0
                # Never larger than what can still come: Python zero-fills a new buffer, so a
                # photo must not pay for (nor hold) two part sizes.
                size = self.capacity
                if limit is not None:
                    size = min(size, self.filled + limit - received)
                self.buffer = bytearray(size)
            room = len(self.buffer) - self.filled
            if limit is not None:
                room = min(room, limit - received)
            with memoryview(self.buffer) as view:
                n = source.readinto(view[self.filled : self.filled + room])
                if n and self.digest is not None:
                    self.digest.update(view[self.filled : self.filled + n])
            if not n:
                if fresh:
                    self.buffer = None
                break
            if fresh and self.filled:
                self._read_tail()
            self.filled += n
            received += n
            self.total += n
            if self.filled == self.capacity:
                self._store_part()
        if self.buffer is not None and self.filled == 0:
            self.buffer = None
        return received

    def _read_tail(self) -> None:
        assert self.buffer is not None and self.tail_key is not None
        size, got = self.tail_size, 0
        with self.store._s3("reading the tail of the upload"):
            body = self.store.client.get_object(Bucket=self.store.bucket, Key=self.tail_key)
            with memoryview(self.buffer) as view:
                while got < size:
                    block = body["Body"].read(min(READ_BLOCK, size - got))
                    if not block:
                        break
                    view[got : got + len(block)] = block
                    got += len(block)
            body["Body"].close()
        if got != size:
            raise StorageUnavailable(
                f"the tail of upload {self.upload_id} holds {got} bytes, not {size}"
            )

    def _store_part(self) -> None:
        """Upload the buffer as the next part (recorded at once with record_each)."""
        assert self.buffer is not None
        self.buffer = _trimmed(self.buffer, self.filled)
        if isinstance(self.row, EmptyRow):  # a new object only this request knows of
            number = len(self.pending) + 1
        else:
            number = reserve_part(self.store, self.upload_id, self.recorded)
        if number > MAX_PARTS:
            raise StorageUnavailable(f"upload {self.upload_id} would need over 10,000 parts")
        with self.store._s3("storing a part of the upload"):
            if self.multipart_id is None:
                created = self.store.client.create_multipart_upload(
                    Bucket=self.store.bucket, Key=self.key
                )
                self.multipart_id = created["UploadId"]
                self.created_multipart = True
            result = self.store.client.upload_part(
                Bucket=self.store.bucket,
                Key=self.key,
                UploadId=self.multipart_id,
                PartNumber=number,
                Body=self.buffer,
            )
        self.pending.append(Part(number, self.filled, result["ETag"]))
        self.buffer = None
        self.filled = 0
        if self.record_each:
            self._record(tail_key=None, tail_size=0)

    def finish(self) -> None:
        """At the end of the body: what is left becomes a part (if it is big enough, or the
        upload is complete), the whole object (complete before a first part), or the new
        tail; then everything is recorded in one transaction."""
        if self.buffer is None or not self.filled:
            if self.pending:
                self._record(tail_key=None, tail_size=0)
            return
        length = self.row.length
        complete = length is not None and self.total == length
        if complete and self.multipart_id is None:
            whole = self._take()
            with self.store._s3("storing the upload"):
                self.store.client.put_object(Bucket=self.store.bucket, Key=self.key, Body=whole)
            self.stored = True
            self._record(tail_key=None, tail_size=0)
            self.store.remember(self.upload_id, whole)
        elif complete or self.filled >= self.store.part_size:
            self._store_part()
            if not self.record_each:
                self._record(tail_key=None, tail_size=0)
        else:
            key = self.store._new_tail_key(self.upload_id)
            size = self.filled
            with self.store._s3("storing the end of the chunk"):
                self.store.client.put_object(Bucket=self.store.bucket, Key=key, Body=self._take())
            self.new_tail = key
            self._record(tail_key=key, tail_size=size)

    def _take(self) -> bytearray:
        assert self.buffer is not None
        data = _trimmed(self.buffer, self.filled)
        self.buffer = None
        self.filled = 0
        return data

    def _record(self, *, tail_key: str | None, tail_size: int) -> None:
        """One transaction: the pending parts, the tail and the new offset; then the old
        tail, which nothing points to any more, is deleted."""
        parts = self.parts + self.pending
        offset = sum(p.size for p in parts) + tail_size
        if self.stored:
            offset = self.total
        values: dict[str, Any] = {
            "upload_offset": offset,
            "multipart_id": self.multipart_id,
            "tail_key": tail_key,
            "tail_size": tail_size,
            "stored": self.stored,
        }
        # New parts and the offset that counts them commit together; an offset alone is one
        # statement, so it needs no transaction around it.
        params = {f"new_{k}": v for k, v in values.items()}
        params |= {"uid": self.upload_id, "old_offset": self.recorded}
        try:
            with self.store.engine.begin() if self.pending else self.store.db.connect() as conn:
                if self.pending:
                    conn.execute(
                        insert(tus_upload_parts),
                        [
                            {"upload_id": self.upload_id, "number": p.number}
                            | {"size": p.size, "etag": p.etag}
                            for p in self.pending
                        ],
                    )
                if conn.execute(_SET_STATE, params).rowcount != 1:
                    raise _Overtaken  # (or terminated): the transaction is rolled back
        except (_Overtaken, IntegrityError):  # IntegrityError: a part number recorded twice
            if tail_key and tail_key == self.new_tail:
                self.store._delete_quietly(tail_key)  # nothing points to it
            check_offset(self.store, self.upload_id, self.recorded)
            raise
        self.recorded = offset
        self.parts, self.pending = parts, []
        old, self.tail_key, self.tail_size = self.tail_key, tail_key, tail_size
        if old and old != tail_key:
            self.store._delete_quietly(old)

    def complete_new(self) -> None:
        """Concatenation: store what is left and complete the new object (no row yet)."""
        if self.buffer is not None and self.filled and self.multipart_id is None:
            with self.store._s3("storing the upload"):
                self.store.client.put_object(
                    Bucket=self.store.bucket, Key=self.key, Body=self._take()
                )
        elif self.buffer is not None and self.filled:
            self._store_part()
        elif self.multipart_id is None:
            with self.store._s3("storing the upload"):
                self.store.client.put_object(Bucket=self.store.bucket, Key=self.key, Body=b"")
        if self.multipart_id is not None:
            with self.store._s3("completing the upload"):
                self.store._complete_multipart(
                    self.key, self.multipart_id, self.pending, self.total
                )
            self.multipart_id = None
        self.stored = True

    def discard(self) -> None:
        """A checked chunk that failed its check, or a failed concatenation: nothing is
        recorded; what this request alone put in S3 goes (unrecorded parts of an existing
        multipart upload are left out when it is completed)."""
        self.buffer = None
        try:
            with self.store._s3("discarding a refused chunk"):
                if self.new_tail:
                    self.store.client.delete_object(Bucket=self.store.bucket, Key=self.new_tail)
                if self.created_multipart and self.multipart_id and not self.parts:
                    self.store._abort(self.key, self.multipart_id)
                if self.stored and isinstance(self.row, EmptyRow):
                    self.store.client.delete_object(Bucket=self.store.bucket, Key=self.key)
        except StorageUnavailable:
            log.warning("could not discard what upload %s stored (strays now)", self.upload_id)


def reserve_part(store: S3Store, upload_id: str, recorded: int) -> int:
    """The next S3 part number of an upload, never handed out before, if its recorded offset
    is still `recorded`; else UploadNotFound (gone) or OffsetMismatch (another writer recorded
    bytes since). A writer that lost its lock and reserved before the new holder recorded
    uploads under a number of its own: it cannot replace the holder's part, and its own part,
    never recorded, is left out when the multipart upload is completed."""
    with store.db.connect() as conn:
        number = conn.execute(_RESERVE, {"uid": upload_id, "old_offset": recorded}).scalar()
    if number is None:
        check_offset(store, upload_id, recorded)  # raises, unless the row changed back
        raise StorageUnavailable(f"no part number could be reserved for upload {upload_id}")
    return int(number)


def check_offset(store: S3Store, upload_id: str, recorded: int) -> None:
    """UploadNotFound if the upload is gone, OffsetMismatch if another writer recorded bytes
    since this one last saw `recorded` (it holds the lock this one lost)."""
    with store.db.connect() as conn:
        row = conn.execute(_OFFSET, {"uid": upload_id}).first()
    if row is None or row.gone_reason is not None:
        raise UploadNotFound(upload_id)  # terminated meanwhile: strays now
    if row.upload_offset != recorded:
        log.warning(
            "upload %s: another writer recorded offset %d while this one held %d",
            upload_id,
            row.upload_offset,
            recorded,
        )
        raise OffsetMismatch(recorded, row.upload_offset)


class EmptyRow:
    """The state of an upload that has no row yet (a final upload being assembled)."""

    def __init__(self, upload_id: str) -> None:
        self.id = upload_id
        self.multipart_id = None
        self.tail_key = None
        self.tail_size = 0
        self.upload_offset = 0
        self.length = None


class BodySource:
    """A ChunkSource over an object's GET body."""

    def __init__(self, store: S3Store, key: str) -> None:
        with store._s3("reading a part upload"):
            self.body = store.client.get_object(Bucket=store.bucket, Key=key)["Body"]
        self.store = store

    def readinto(self, buffer: memoryview) -> int:
        with self.store._s3("reading a part upload"):
            data = self.body.read(min(len(buffer), READ_BLOCK))
        buffer[: len(data)] = data
        if not data:
            self.body.close()
        return len(data)


def _trimmed(buffer: bytearray, size: int) -> bytearray:
    """The first `size` bytes, in place when possible (botocore sends a bytearray as it is);
    a copy when a view of the buffer is still alive (a body that raised mid-read)."""
    if len(buffer) == size:
        return buffer
    try:
        del buffer[size:]
    except BufferError:
        return buffer[:size]
    return buffer
