"""Capture files on S3 (several machines): the CaptureStore interface, with originals and
thumbnails as objects under `<prefix>/captures/` and only staging on the local disk.

Names are the file store's (`originals/ab/<sha256>.<ext>`, `thumbnails/ab/<sha256>.jpg`), so
the database rows read the same on either store. Staging, hashing and image work happen in a
local temporary folder; publish() uploads the file and removes it, so no capture data stays
on a node after its request.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from services.camera.capture_store import BLOCK_SIZE, CaptureStore, StagedFile

log = logging.getLogger(__name__)
COPY_MIN_BYTES = 8 << 20  # from this size an original is copied inside S3, not uploaded


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
        origins: Mapping[str, tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(root)
        self.client = client
        self.bucket = bucket
        prefix = prefix.strip("/")
        self.prefix = f"{prefix}/captures/" if prefix else "captures/"
        # Local copies of objects of the same bucket (the tus S3 store's downloads): a file
        # staged from one is published by a copy inside S3, not uploaded again.
        self.origins = origins if origins is not None else {}
        self._copy_of: dict[Path, str] = {}

    def stage(
        self, source: Path | BinaryIO, *, block_size: int = BLOCK_SIZE, durable: bool = False
    ) -> StagedFile:
        staged = super().stage(source, block_size=block_size, durable=durable)
        origin = self.origins.get(str(source)) if isinstance(source, Path) else None
        # A copy inside S3 costs two requests (HEAD, CopyObject); a small file is one upload.
        if origin is not None and origin[0] == self.bucket and staged.size >= COPY_MIN_BYTES:
            self._copy_of[staged.path] = origin[1]
        return staged

    def discard(self, temp: Path) -> None:
        self._copy_of.pop(temp, None)
        super().discard(temp)

    def key(self, relative: str) -> str:
        """The object key of a stored file; refuses names that are not the store's own."""
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
        origin = self._copy_of.pop(temp, None)
        if origin is not None:
            try:
                return self._copy(origin, key, replace=replace)
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
