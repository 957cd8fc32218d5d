"""Capture files on S3 (several machines): the CaptureStore interface, with originals and
thumbnails as objects under `<prefix>/captures/` and only staging on the local disk.

Names are the file store's (`originals/ab/<sha256>.<ext>`, `thumbnails/ab/<sha256>.jpg`), so
the database rows read the same on either store. Staging, hashing and image work happen in a
local temporary folder; publish() uploads the file and removes it, so no capture data stays
on a node after its request.

An original that arrived through the tus S3 store in the same bucket is not copied: the tus
store hands its finished object over (`uploads/<upload id>` is then the original's name), as
the file store hard-links the upload's file.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from services.camera.capture_store import (
    BLOCK_SIZE,
    HEAD_BYTES,
    CaptureStore,
    StagedFile,
    UploadSource,
)

log = logging.getLogger(__name__)
COPY_MIN_BYTES = 8 << 20  # from this size an original is copied inside S3, not uploaded


HANDED_OVER = "uploads/"  # the name of an original that is a tus upload's own object
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")


class UploadObjects(Protocol):
    """The tus S3 store (app/tus/s3store.py) as this store sees it."""

    @property
    def origins(self) -> Mapping[str, tuple[str, str]]:
        """A finish hook's local file -> (bucket, key) of the object it was downloaded from."""
        ...

    @property
    def digests(self) -> Mapping[str, tuple[str, int]]:
        """A finish hook's local file -> (sha256, size), taken while it was downloaded."""
        ...

    def key(self, upload_id: str) -> str: ...

    def hand_over(self, key: str) -> bool:
        """Take the finished upload object at key over; False if it is not one."""
        ...


class CaptureStoreUnavailable(Exception):
    """The object store holding the captures cannot be reached or refused the operation."""


@dataclass(frozen=True)
class StoredObject:
    """A stored capture file opened for reading: stream it in blocks, then close it."""

    body: Any  # botocore StreamingBody: read(n), close()
    size: int
    etag: str
    last_modified: Any

    def blocks(self, size: int = BLOCK_SIZE) -> Iterator[bytes]:
        try:
            while block := self.body.read(size):
                yield block
        finally:
            self.body.close()


class S3CaptureStore(CaptureStore):
    """`root` is the local staging folder (temporary files only); `client` a boto3 S3 client."""

    def __init__(
        self,
        root: Path,
        client: Any,
        bucket: str,
        prefix: str = "",
        *,
        uploads: UploadObjects | None = None,
        origins: Mapping[str, tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(root)
        self.client = client
        self.bucket = bucket
        prefix = prefix.strip("/")
        self.prefix = f"{prefix}/captures/" if prefix else "captures/"
        self.uploads = uploads
        # Local copies of objects of the same bucket (the tus S3 store's downloads): a file
        # staged from one is published by a copy inside S3, not uploaded again, and an
        # original is taken over from the tus store (publish_original).
        if origins is None:
            origins = uploads.origins if uploads is not None else {}
        self.origins = origins
        self._origin_of: dict[Path, tuple[str, int]] = {}  # staged file -> (its key, size)

    def stage(
        self,
        source: Path | BinaryIO,
        *,
        block_size: int = BLOCK_SIZE,
        durable: bool = False,
        known: tuple[str, int] | None = None,
    ) -> StagedFile:
        if known is None and isinstance(source, Path) and self.uploads is not None:
            known = self.uploads.digests.get(str(source))
        staged = super().stage(source, block_size=block_size, durable=durable, known=known)
        origin = self.origins.get(str(source)) if isinstance(source, Path) else None
        if origin is not None and origin[0] == self.bucket and staged.path is not None:
            self._origin_of[staged.path] = (origin[1], staged.size)
        return staged

    def stage_upload(
        self,
        upload: UploadSource,
        *,
        block_size: int = BLOCK_SIZE,
        durable: bool = False,
        needed_up_to: int | None = None,
    ) -> StagedFile:
        """An upload larger than `needed_up_to` whose digest the tus store knows and whose
        object is in this bucket is staged by reference: only its first bytes are read, not
        the whole object (a 1 GiB upload cost seconds of download for nothing but a digest).
        Any other upload is downloaded and staged."""
        origin = upload.origin
        if (
            needed_up_to is not None
            and upload.size > needed_up_to
            and upload.sha256
            and origin is not None
            and origin[0] == self.bucket
        ):
            with self._s3("reading the start of an upload"):
                got = self.client.get_object(
                    Bucket=self.bucket, Key=origin[1], Range=f"bytes=0-{HEAD_BYTES - 1}"
                )
                try:
                    head = got["Body"].read()
                finally:
                    got["Body"].close()
            return StagedFile(
                None, upload.sha256, upload.size, linked=False, head=head, origin=origin[1]
            )
        return super().stage_upload(
            upload, block_size=block_size, durable=durable, needed_up_to=needed_up_to
        )

    def publish_original(self, staged: StagedFile, relative: str) -> tuple[str, bool]:
        """An original staged from a finished tus upload in this bucket is taken over: no
        copy, no upload; its name is `uploads/<upload id>`. Never "created" here, so a failed
        capture never deletes it (the finish hook runs again and takes it over again). Any
        other file is published under its content-addressed name (an upload staged by
        reference that cannot be taken over: by a copy inside S3)."""
        key = staged.origin
        if key is None and staged.path is not None:
            key = self._origin_of.get(staged.path, (None, 0))[0]
        if key is not None and self.uploads is not None and self.uploads.hand_over(key):
            if staged.path is not None:
                self.discard(staged.path)
            return HANDED_OVER + key.rsplit("/", 1)[-1], False
        if staged.path is None:
            assert staged.origin is not None
            return relative, self._copy(staged.origin, self.key(relative), replace=False)
        return relative, self.publish(staged.path, relative)

    def discard(self, temp: Path) -> None:
        self._origin_of.pop(temp, None)
        super().discard(temp)

    def key(self, relative: str) -> str:
        """The object key of a stored file; refuses names that are not the store's own."""
        if relative.startswith(HANDED_OVER) and self.uploads is not None:
            upload_id = relative[len(HANDED_OVER) :]
            if not _UPLOAD_ID.fullmatch(upload_id):
                raise ValueError(f"{relative!r} is not an upload taken over by the store")
            return self.uploads.key(upload_id)
        parts = relative.split("/")
        if not relative or relative.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"{relative!r} is not a path inside the capture store")
        return self.prefix + relative

    def path(self, relative: str) -> Path:
        raise NotImplementedError("captures on S3 have no local path: use open() or local_copy()")

    def exists(self, relative: str) -> bool:
        with self._s3("looking for a capture file"):
            try:
                self.client.head_object(Bucket=self.bucket, Key=self.key(relative))
            except self.client.exceptions.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    return False
                raise
        return True

    def publish(self, temp: Path, relative: str, *, replace: bool = False) -> bool:
        """Upload a staged file under its final name and remove it locally. Without replace
        the write is conditional (If-None-Match: *): of two racing writers of the same
        content-addressed name only one "creates" it, and only that one may delete it again."""
        key = self.key(relative)
        extra = {} if replace else {"IfNoneMatch": "*"}
        origin = self._origin_of.get(temp)
        # A copy inside S3 costs two requests (HEAD, CopyObject); a small file is one upload.
        if origin is not None and origin[1] >= COPY_MIN_BYTES:
            try:
                return self._copy(origin[0], key, replace=replace)
            finally:
                self.discard(temp)
        try:
            with self._s3("storing a capture file"), open(temp, "rb") as body:
                try:
                    self.client.put_object(Bucket=self.bucket, Key=key, Body=body, **extra)
                except self.client.exceptions.ClientError as exc:
                    code = exc.response.get("Error", {}).get("Code")
                    if code in ("PreconditionFailed", "ConditionalRequestConflict"):
                        return False
                    raise
            return True
        finally:
            self.discard(temp)

    def _copy(self, origin: str, key: str, *, replace: bool) -> bool:
        """Publish by a copy inside S3. CopyObject has no create-only condition, so an existing
        object is looked for first: two writers of one content-addressed name in the same
        instant may both "create" it (the bytes are the same; only a rollback of one of them
        could then remove the other's file)."""
        relative = key[len(self.prefix) :]
        if not replace and self.exists(relative):
            return False
        with self._s3("copying a capture file"):
            self.client.copy_object(
                Bucket=self.bucket, Key=key, CopySource={"Bucket": self.bucket, "Key": origin}
            )
        return True

    def delete(self, relative: str) -> bool:
        if not self.exists(relative):
            return False
        with self._s3("deleting a capture file"):
            self.client.delete_object(Bucket=self.bucket, Key=self.key(relative))
        return True

    def open(self, relative: str) -> StoredObject:
        """A stored file for streaming; FileNotFoundError if it is not there."""
        with self._s3("reading a capture file"):
            try:
                got = self.client.get_object(Bucket=self.bucket, Key=self.key(relative))
            except self.client.exceptions.NoSuchKey:
                raise FileNotFoundError(relative) from None
        return StoredObject(
            got["Body"], got["ContentLength"], got["ETag"].strip('"'), got["LastModified"]
        )

    @contextmanager
    def local_copy(self, relative: str) -> Iterator[Path]:
        """The stored file downloaded to the staging folder, removed when the block ends."""
        with self.temp_file() as temp:
            stored = self.open(relative)
            with open(temp, "wb") as out:
                with self._s3("reading a capture file"):
                    for block in stored.blocks():
                        out.write(block)
            yield temp

    @contextmanager
    def _s3(self, doing: str) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("404", "NoSuchKey", "NotFound", "PreconditionFailed"):
                raise
            raise CaptureStoreUnavailable(
                f"the object store refused {doing} in bucket {self.bucket!r}: {code}"
            ) from exc
        except BotoCoreError as exc:
            raise CaptureStoreUnavailable(
                f"the object store (bucket {self.bucket!r}) could not be reached while "
                f"{doing}: {exc}"
            ) from exc
