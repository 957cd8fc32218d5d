"""S3Store: tus uploads on S3-compatible object storage, one multipart upload per tus upload,
with the record, the offset and the list of parts in PostgreSQL (app/tus/s3schema.py).

Layout in the bucket, under the prefix:
    <prefix>/<id>                 the upload's data once complete (the multipart upload completed)
    <prefix>/<id>.tail-<random>   the bytes after the last part while they are fewer than a part
The database is the truth: an object or a multipart upload no row points to is a stray
(`strays()`, removed by `sweep()`), never data.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import secrets
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection, Engine, Row

from app.tus.protocol import is_upload_id
from app.tus.running_digest import RunningDigests
from app.tus.s3parts import (
    READ_BLOCK,
    BodySource,
    EmptyRow,
    Part,
    PartWriter,
    part_size_for,
    reserve_part,
)
from app.tus.s3schema import tus_upload_parts, tus_uploads
from app.tus.storage import (
    Admit,
    ChunkSource,
    FinishedData,
    OffsetMismatch,
    OwnerUsage,
    StorageUnavailable,
    UploadGone,
    UploadIncomplete,
    UploadNotFound,
    UploadRecord,
)

log = logging.getLogger(__name__)

# Statements built once (SQLAlchemy then skips building and cache-keying them per call).
_ROW = select(tus_uploads).where(tus_uploads.c.id == bindparam("upload_id"))
_HELD = func.coalesce(tus_uploads.c.length, tus_uploads.c.upload_offset)
_UNFINISHED = and_(
    or_(tus_uploads.c.length.is_(None), tus_uploads.c.upload_offset < tus_uploads.c.length),
    or_(tus_uploads.c.expires_at.is_(None), tus_uploads.c.expires_at > bindparam("now")),
)
_OWNER_USAGE = select(func.count().filter(_UNFINISHED), func.coalesce(func.sum(_HELD), 0)).where(
    tus_uploads.c.owner == bindparam("owner"), tus_uploads.c.gone_reason.is_(None)
)

_OWNER_LOCK = select(func.pg_advisory_xact_lock(bindparam("key")))


def _owner_number(owner: str) -> int:
    """The transaction lock number of an owner's quota: 64 bits of a keyed hash."""
    digest = hashlib.blake2b(owner.encode(), digest_size=8, person=b"tuscam-owner").digest()
    return int.from_bytes(digest, "big", signed=True)


def _owner_usage(conn: Connection, owner: str, now: datetime) -> OwnerUsage:
    count, total = conn.execute(_OWNER_USAGE, {"owner": owner, "now": now}).one()
    return OwnerUsage(unfinished=int(count), bytes=int(total))


RECENT_MAX = 8 << 20  # the largest whole upload kept for its finish hook (see local_file)
STRAY_SECONDS = 3600  # a multipart upload or tail older than this, with no row, is a stray


@dataclass(frozen=True)
class Stray:
    """Something in the bucket that no upload row points to."""

    kind: str  # "multipart" or "object"
    key: str
    since: datetime
    multipart_id: str | None = None


class S3Store:
    """Storage on S3 for several machines (the Storage protocol of app/tus/storage.py).

    Invariants:
    - upload_offset (a column) = the recorded parts' sizes + tail_size, and it is raised only in
      the transaction that records the bytes, after they are in S3: HEAD never reports a byte
      that S3 does not hold, whichever node answers.
    - Parts are between part_size and 2 x part_size bytes (the last may be smaller), so
      10,000 parts cover max_size; bytes that do not fill a part wait in a tail object, which is
      read back and sent at the front of the next part. A new tail always gets a new key, and
      the old one is deleted only after the row points to the new one: a crash leaves a stray,
      never a row pointing to half an object.
    - The list of parts is never rebuilt from ListParts. Each part gets a number reserved in
      the row (next_part) while the offset is the one its writer saw, so no number is used
      twice: a writer that lost its lock cannot replace a recorded part. A part uploaded by a
      request that then failed is simply not recorded, and the completion leaves it out.
    - Memory per request: one buffer of 2 x part_size, whatever the upload's size.
    - An upload that completes before its first part is stored with one PutObject (a photo:
      one request to S3, not four).
    - Every S3 failure raises StorageUnavailable (503 + Retry-After); nothing is recorded
      for bytes that did not reach S3, so a client resumes from the last recorded offset.
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str,
        engine: Engine,
        *,
        max_size: int,
        temp_dir: Path | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.engine = engine  # transactions: several statements that must hold together
        # One statement at a time: no BEGIN and COMMIT/ROLLBACK round trips around it.
        self.db = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.part_size = part_size_for(max_size)
        self.temp_dir = temp_dir
        self.clock = clock or (lambda: datetime.now(UTC))
        # local_file() path -> (bucket, key) while the file exists (see local_file).
        self.origins: dict[str, tuple[str, str]] = {}
        self.digests: dict[str, tuple[str, int]] = {}  # local_file() path -> (sha256, size)
        # Per thread: (upload id, bytes) of an upload that write_chunk stored whole just now,
        # at most RECENT_MAX bytes; taken by local_file, dropped by the next write_chunk.
        self._recent = threading.local()
        # SHA-256 of uploads whose bytes all came through this process (see finished_data).
        self.running = RunningDigests()

    def probe(self) -> None:
        """Readiness: write and remove a tiny object; StorageUnavailable when that fails."""
        name = f".readyz-{secrets.token_hex(8)}"
        key = f"{self.prefix}/{name}" if self.prefix else name
        with self._s3("a readiness probe"):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=b"ok")
            self.client.delete_object(Bucket=self.bucket, Key=key)

    # --- keys ---------------------------------------------------------------------------------

    def key(self, upload_id: str) -> str:
        if not is_upload_id(upload_id):
            raise UploadNotFound(upload_id)
        return f"{self.prefix}/{upload_id}" if self.prefix else upload_id

    def _new_tail_key(self, upload_id: str) -> str:
        return f"{self.key(upload_id)}.tail-{secrets.token_hex(8)}"

    # --- records ------------------------------------------------------------------------------

    def create(self, record: UploadRecord, admit: Admit | None = None) -> None:
        self.key(record.id)
        new_row = insert(tus_uploads).values(**_record_values(record), upload_offset=0)
        if admit is None:
            with self.db.connect() as conn:
                conn.execute(new_row)
            return
        with self.engine.begin() as conn:
            self._admit(conn, record, admit)
            conn.execute(new_row)

    def _admit(self, conn: Connection, record: UploadRecord, admit: Admit) -> None:
        """The quota check inside the transaction that creates the row, under a transaction
        lock on the owner (PostgreSQL lets go at commit or rollback): of two creations of one
        owner on any node, the second counts the first."""
        conn.execute(_OWNER_LOCK, {"key": _owner_number(record.owner)})
        admit(_owner_usage(conn, record.owner, record.created_at))

    def get_info(self, upload_id: str) -> UploadRecord:
        self.key(upload_id)
        with self.db.connect() as conn:
            row = conn.execute(_ROW, {"upload_id": upload_id}).first()
        return _to_record(_live(row, upload_id))

    def save_info(self, record: UploadRecord) -> None:
        """Replace the record; the offset and the S3 state are the store's own."""
        self.key(record.id)
        with self.db.connect() as conn:
            conn.execute(
                update(tus_uploads)
                .where(tus_uploads.c.id == record.id, tus_uploads.c.gone_reason.is_(None))
                .values(**_record_values(record))
            )

    def list_ids(self) -> list[str]:
        with self.db.connect() as conn:
            ids = conn.scalars(
                select(tus_uploads.c.id)
                .where(tus_uploads.c.gone_reason.is_(None))
                .order_by(tus_uploads.c.id)
            )
            return list(ids)

    def owner_usage(self, owner: str, now: datetime) -> OwnerUsage:
        """Unfinished: not complete and not expired; bytes: the length (or, deferred, the
        offset) of every upload the owner holds. One query."""
        with self.db.connect() as conn:
            return _owner_usage(conn, owner, now)

    # --- data ---------------------------------------------------------------------------------

    def write_chunk(
        self,
        upload_id: str,
        source: ChunkSource,
        offset: int,
        limit: int | None,
        *,
        check: Callable[[], None] | None = None,
    ) -> int:
        """Append at most limit bytes. Without check, each part is recorded as soon as S3 holds
        it (a body cut or failed later keeps what went before); with check, nothing is recorded
        until check() returns (uploaded parts that are not recorded are left out at completion)."""
        self.key(upload_id)
        self._recent.data = None  # (see local_file)
        with self.db.connect() as conn:
            row = _live(
                conn.execute(_ROW, {"upload_id": upload_id}).first(),
                upload_id,
            )
            parts = _parts(conn, upload_id) if row.multipart_id else []
        if row.upload_offset != offset:
            raise OffsetMismatch(offset, row.upload_offset)
        if row.stored or limit == 0:
            return 0
        digest = self.running.take(upload_id, offset)
        before = digest.copy() if digest is not None and check is not None else None
        writer = PartWriter(self, row, parts, record_each=check is None, digest=digest)
        try:
            received = writer.receive(source, limit)
            if received and check is not None:
                check()
        except BaseException as exc:
            if check is not None:
                writer.discard()
                if before is not None:
                    self.running.keep(upload_id, offset, before)  # nothing was recorded
            else:
                if writer.filled and not isinstance(exc, StorageUnavailable):
                    # A plain body whose reading failed: what arrived is kept, as on disk.
                    with suppress(StorageUnavailable, UploadNotFound, OffsetMismatch):
                        writer.finish()
                if digest is not None:
                    self._keep_if_recorded(upload_id, writer.total, digest)
            raise
        if received:
            writer.finish()
        if digest is not None:
            self.running.keep(upload_id, writer.total, digest)
        return received

    def _keep_if_recorded(self, upload_id: str, total: int, digest: Any) -> None:
        """After a failed write: the digest stays only if the store recorded every byte it saw."""
        with suppress(Exception), self.db.connect() as conn:
            row = conn.execute(_ROW, {"upload_id": upload_id}).first()
            if row is not None and row.gone_reason is None and row.upload_offset == total:
                self.running.keep(upload_id, total, digest)

    def make_durable(self, upload_id: str) -> None:
        """Complete the multipart upload (or store the tail as the object): from here on the
        data is one object, readable by any node. Idempotent."""
        self.key(upload_id)
        recent = getattr(self._recent, "data", None)
        if recent is not None and recent[0] == upload_id:
            return  # this thread stored it whole a moment ago (see remember)
        with self.db.connect() as conn:
            row = _live(
                conn.execute(_ROW, {"upload_id": upload_id}).first(),
                upload_id,
            )
            if row.stored or row.length is None or row.upload_offset != row.length:
                return  # S3 already holds every recorded byte of an unfinished upload durably
            parts = _parts(conn, upload_id)
        key = self.key(upload_id)
        with self._s3("storing the completed upload"):
            if row.multipart_id is None:
                if row.tail_key:
                    self.client.copy_object(
                        Bucket=self.bucket, Key=key, CopySource=self._source(row.tail_key)
                    )
                else:
                    self.client.put_object(Bucket=self.bucket, Key=key, Body=b"")
            else:
                if row.tail_key:
                    number = reserve_part(self, upload_id, row.upload_offset)
                    result = self.client.upload_part_copy(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=row.multipart_id,
                        PartNumber=number,
                        CopySource=self._source(row.tail_key),
                    )
                    parts.append(Part(number, row.tail_size, result["CopyPartResult"]["ETag"]))
                self._complete_multipart(key, row.multipart_id, parts, row.length)
        with self.engine.begin() as conn:
            conn.execute(
                update(tus_uploads)
                .where(tus_uploads.c.id == upload_id)
                .values(stored=True, multipart_id=None, tail_key=None, tail_size=0)
            )
            conn.execute(delete(tus_upload_parts).where(tus_upload_parts.c.upload_id == upload_id))
        if row.tail_key:
            self._delete_quietly(row.tail_key)

    def _complete_multipart(
        self, key: str, multipart_id: str, parts: list[Part], length: int
    ) -> None:
        try:
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=multipart_id,
                MultipartUpload={
                    "Parts": [{"PartNumber": p.number, "ETag": p.etag} for p in parts]
                },
            )
        except self.client.exceptions.NoSuchUpload:
            # Completed by an earlier call whose row update did not happen (a crash): the
            # object tells.
            head = self.client.head_object(Bucket=self.bucket, Key=key)
            if head["ContentLength"] != length:
                raise
            log.info("multipart upload of %s was already complete", key)

    @contextmanager
    def local_file(self, upload_id: str, *, known: str | None = None) -> Iterator[Path]:
        """The whole data downloaded to a temporary file, removed when the block ends, hashed
        on the way unless its SHA-256 is `known` already (see finished_data)."""
        self.make_durable(upload_id)
        recent = getattr(self._recent, "data", None)
        self._recent.data = None
        fd, name = tempfile.mkstemp(prefix="tus-", suffix=".data", dir=self.temp_dir)
        path = Path(name)
        digest = hashlib.sha256()
        hashing = known is None
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                if recent is not None and recent[0] == upload_id:
                    # The request that completed the upload stored it with one PutObject a
                    # moment ago, from this buffer: no need to read it back from S3.
                    blocks: Iterable[bytes | bytearray] = (recent[1],)
                else:
                    blocks = self.read_data(upload_id)
                for block in blocks:
                    out.write(block)
                    if hashing:
                        digest.update(block)
                    size += len(block)
            # Where the copy came from, for a capture store in the same bucket: it can then
            # take the object over (or copy it inside S3) instead of uploading the file again,
            # and its digest, taken on the way, need not be read from the disk again.
            self.origins[name] = (self.bucket, self.key(upload_id))
            self.digests[name] = (known if known is not None else digest.hexdigest(), size)
            yield path
        finally:
            self.origins.pop(name, None)
            self.digests.pop(name, None)
            path.unlink(missing_ok=True)

    def finished_data(self, upload_id: str, size: int) -> FinishedData:
        """With the SHA-256 when this process hashed every byte as it arrived: a hook that
        needs no more than size, digest and the object (an upload too large to be an image)
        then reads nothing back, and a download of it is not hashed again. Call it once, after
        make_durable."""
        sha256 = self.running.finished(upload_id, size)
        return FinishedData(
            upload_id,
            size,
            functools.partial(self.local_file, upload_id, known=sha256),
            sha256=sha256,
            origin=(self.bucket, self.key(upload_id)),
        )

    def hand_over(self, key: str) -> bool:
        """The finished object at `key` (a local_file() origin) now belongs to the caller, a
        capture store in the same bucket, which keeps it as the capture's original instead of
        copying it: from here on, terminating or retiring the upload leaves the object where
        it is. False if the key is not a stored upload of this store (nothing changes)."""
        prefix = f"{self.prefix}/" if self.prefix else ""
        upload_id = key[len(prefix) :] if key.startswith(prefix) else ""
        if not is_upload_id(upload_id):
            return False
        with self.db.connect() as conn:
            result = conn.execute(
                update(tus_uploads)
                .where(
                    tus_uploads.c.id == upload_id,
                    tus_uploads.c.stored.is_(True),
                    tus_uploads.c.gone_reason.is_(None),
                )
                .values(handed_over=True)
            )
        return result.rowcount == 1

    def remember(self, upload_id: str, data: bytearray) -> None:
        """An upload this thread just stored whole (see make_durable and local_file)."""
        self._recent.data = (upload_id, data) if len(data) <= RECENT_MAX else None

    def read_data(self, upload_id: str) -> Iterator[bytes]:
        """The stored bytes in blocks. An unfinished upload whose bytes are in parts cannot be
        read (S3 reads no parts of an open multipart upload): UploadIncomplete. A finished
        upload whose object the capture store took over and has since deleted: UploadGone
        (retired), as after the retention period."""
        row = self._row(upload_id)
        if row.stored:
            key = self.key(upload_id)
        elif row.multipart_id is None and row.tail_key:
            key = row.tail_key
        elif row.upload_offset == 0:
            return iter(())
        else:
            raise UploadIncomplete(upload_id)
        with self._s3("reading the upload"):
            try:
                body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            except self.client.exceptions.NoSuchKey:
                if not (row.stored and row.handed_over):
                    raise
                raise UploadGone(upload_id, "retired", row.owner, _to_record(row)) from None
        return self._blocks(body)

    def _blocks(self, body: Any) -> Iterator[bytes]:
        try:
            while True:
                with self._s3("reading the upload"):
                    block = body.read(READ_BLOCK)
                if not block:
                    return
                yield block
        finally:
            body.close()

    # --- termination and concatenation --------------------------------------------------------

    def terminate(self, upload_id: str, reason: str, at: datetime) -> None:
        """S3 first (abort the multipart upload, delete tail and object), then the tombstone:
        if S3 fails, nothing changes and the caller can try again."""
        key = self.key(upload_id)
        self.running.drop(upload_id)
        with self.db.connect() as conn:
            row = conn.execute(_ROW, {"upload_id": upload_id}).first()
        if row is not None and row.gone_reason is None:
            with self._s3("removing the upload"):
                if row.multipart_id:
                    self._abort(key, row.multipart_id)
                # An object handed over to the capture store is the capture's now.
                for target in (row.tail_key, key if row.stored and not row.handed_over else None):
                    if target:
                        self.client.delete_object(Bucket=self.bucket, Key=target)
        tomb = {
            "gone_reason": reason,
            "gone_at": at,
            "multipart_id": None,
            "tail_key": None,
            "tail_size": 0,
            "stored": False,
        }
        with self.engine.begin() as conn:
            conn.execute(delete(tus_upload_parts).where(tus_upload_parts.c.upload_id == upload_id))
            if row is None:
                conn.execute(
                    insert(tus_uploads).values(
                        id=upload_id, owner="", created_at=at, record="{}", **tomb
                    )
                )
            else:
                conn.execute(
                    update(tus_uploads).where(tus_uploads.c.id == upload_id).values(**tomb)
                )

    def _abort(self, key: str, multipart_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=multipart_id)
        except self.client.exceptions.NoSuchUpload:
            pass  # aborted already

    def concatenate(
        self, record: UploadRecord, part_ids: tuple[str, ...], admit: Admit | None = None
    ) -> None:
        """The final upload's data is the parts' data streamed through the same part writer
        (the parts' objects may be smaller than 5 MiB, which UploadPartCopy cannot take but
        for the last part); its row appears only once the object is whole. The quota (admit)
        is checked before anything is copied, and again with the row."""
        key = self.key(record.id)
        if admit is not None:
            admit(self.owner_usage(record.owner, record.created_at))
        for part_id in part_ids:
            self.make_durable(part_id)
        empty = EmptyRow(record.id)
        writer = PartWriter(self, empty, [], record_each=False)
        try:
            for part_id in part_ids:
                writer.receive(BodySource(self, self.key(part_id)), None)
            writer.complete_new()
        except BaseException:
            writer.discard()
            raise
        try:
            with self.engine.begin() as conn:
                if admit is not None:
                    self._admit(conn, record, admit)
                conn.execute(
                    insert(tus_uploads).values(
                        **_record_values(record), upload_offset=writer.total, stored=True
                    )
                )
        except BaseException:
            self._delete_quietly(key)  # the assembled object, which no row points to
            raise
        log.debug("concatenated %d parts into %s", len(part_ids), key)

    # --- housekeeping -------------------------------------------------------------------------

    def strays(self, older_than: datetime | None = None) -> list[Stray]:
        """Multipart uploads and tails under the prefix that no live row points to (a crash
        between S3 and the database), older than `older_than`."""
        before = older_than or (self.clock() - timedelta(seconds=STRAY_SECONDS))
        with self.db.connect() as conn:
            live = conn.execute(
                select(tus_uploads.c.multipart_id, tus_uploads.c.tail_key).where(
                    tus_uploads.c.gone_reason.is_(None)
                )
            ).all()
        multiparts = {m for m, _ in live if m}
        tails = {t for _, t in live if t}
        prefix = f"{self.prefix}/" if self.prefix else ""
        found: list[Stray] = []
        with self._s3("listing strays"):
            pages = self.client.get_paginator("list_multipart_uploads")
            for page in pages.paginate(Bucket=self.bucket, Prefix=prefix):
                for upload in page.get("Uploads", ()):
                    initiated = upload["Initiated"]
                    if upload["UploadId"] not in multiparts and initiated < before:
                        found.append(
                            Stray("multipart", upload["Key"], initiated, upload["UploadId"])
                        )
            pages = self.client.get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self.bucket, Prefix=prefix):
                for obj in page.get("Contents", ()):
                    name = obj["Key"][len(prefix) :]
                    if ".tail-" in name and obj["Key"] not in tails:
                        if obj["LastModified"] < before:
                            found.append(Stray("object", obj["Key"], obj["LastModified"]))
        return found

    def sweep(self, tombstones_before: datetime) -> int:
        """Forget old tombstones; abort stray multipart uploads, delete stray tails."""
        with self.engine.begin() as conn:
            removed = conn.execute(
                delete(tus_uploads).where(
                    tus_uploads.c.gone_reason.is_not(None),
                    tus_uploads.c.gone_at < tombstones_before,
                )
            ).rowcount
        for stray in self.strays():
            with self._s3("removing a stray"):
                if stray.multipart_id:
                    self._abort(stray.key, stray.multipart_id)
                else:
                    self.client.delete_object(Bucket=self.bucket, Key=stray.key)
            log.warning("removed stray %s %s (since %s)", stray.kind, stray.key, stray.since)
            removed += 1
        return removed

    # --- helpers ------------------------------------------------------------------------------

    def _row(self, upload_id: str) -> Row[Any]:
        self.key(upload_id)
        with self.db.connect() as conn:
            row = conn.execute(_ROW, {"upload_id": upload_id}).first()
        return _live(row, upload_id)

    def _source(self, key: str) -> dict[str, str]:
        return {"Bucket": self.bucket, "Key": key}

    def _delete_quietly(self, key: str) -> None:
        """Delete an object nothing points to any more; if S3 fails now, it is a stray."""
        try:
            with self._s3("deleting an old tail"):
                self.client.delete_object(Bucket=self.bucket, Key=key)
        except StorageUnavailable:
            log.warning("could not delete %s (a stray now; the next sweep removes it)", key)

    @contextmanager
    def _s3(self, doing: str) -> Iterator[None]:
        """One place that turns an S3 failure into StorageUnavailable."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") in ("NoSuchUpload",):
                raise
            raise StorageUnavailable(
                f"the object store refused {doing} in bucket {self.bucket!r}: "
                f"{error.get('Code', '?')} {error.get('Message', '')}".rstrip()
            ) from exc
        except (BotoCoreError, OSError) as exc:
            raise StorageUnavailable(
                f"the object store at bucket {self.bucket!r} could not be reached while "
                f"{doing}: {exc}"
            ) from exc


def _live(row: Row[Any] | None, upload_id: str) -> Row[Any]:
    if row is None:
        raise UploadNotFound(upload_id)
    if row.gone_reason is not None:
        # A retired upload (finished, data removed after the grace period) keeps its record:
        # HEAD still tells a client that it is complete.
        record = _to_record(row) if row.gone_reason == "retired" else None
        raise UploadGone(upload_id, row.gone_reason, row.owner, record)
    return row


def _parts(conn: Connection, upload_id: str) -> list[Part]:
    rows = conn.execute(
        select(tus_upload_parts.c.number, tus_upload_parts.c.size, tus_upload_parts.c.etag)
        .where(tus_upload_parts.c.upload_id == upload_id)
        .order_by(tus_upload_parts.c.number)
    )
    return [Part(*r) for r in rows]


def _record_values(record: UploadRecord) -> dict[str, Any]:
    data = record.to_json()
    rest = {
        k: v
        for k, v in data.items()
        if k not in ("id", "owner", "length", "created_at", "expires_at", "finished")
    }
    return {
        "id": record.id,
        "owner": record.owner,
        "length": record.length,
        "created_at": record.created_at,
        "expires_at": record.expires_at,
        "record": json.dumps(rest),
        "finished": record.finished,
    }


def _to_record(row: Row[Any]) -> UploadRecord:
    data = json.loads(row.record)
    data.update(
        id=row.id,
        owner=row.owner,
        length=row.length,
        created_at=_aware(row.created_at).isoformat(),
        expires_at=_aware(row.expires_at).isoformat() if row.expires_at else None,
        finished=row.finished,
    )
    offset = row.upload_offset
    if row.length is not None:
        offset = min(offset, row.length)
    return UploadRecord.from_json(data, offset=offset)


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes (the tables also run there in tests of the schema)."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)
