"""The storage interface of the tus core (small, after tusd's datastore): records, errors and
the Storage protocol, plus optional abilities that decide the advertised extensions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


class UploadNotFound(Exception):
    """No upload has this id (or it is not valid)."""


class UploadGone(Exception):
    """The upload existed but was terminated or expired; a tombstone remembers it."""

    def __init__(self, upload_id: str, reason: str, owner: str) -> None:
        super().__init__(f"upload {upload_id} {reason}")
        self.reason = reason
        self.owner = owner


class OffsetMismatch(Exception):
    """write_chunk was asked to write at an offset that is not the end of the stored data."""

    def __init__(self, expected: int, stored: int) -> None:
        super().__init__(f"offset {expected} != stored {stored}")
        self.expected = expected
        self.stored = stored


class StorageUnavailable(Exception):
    """The storage behind the uploads cannot be reached or refused an operation (an object
    store down): a retryable condition (503 + Retry-After). Nothing unrecorded was kept."""


@dataclass
class UploadRecord:
    """What is stored about an upload. offset is not stored: it is the size of the data."""

    id: str
    owner: str
    length: int | None
    created_at: datetime
    metadata_header: str = ""
    expires_at: datetime | None = None
    partial: bool = False
    concat_header: str | None = None  # a final upload's Upload-Concat, as received
    parts: tuple[str, ...] = ()
    finished: bool = False  # the finish hook has run (and returned)
    finish_headers: dict[str, str] = field(default_factory=dict)
    offset: int = 0

    @property
    def is_final(self) -> bool:
        return self.concat_header is not None

    @property
    def is_complete(self) -> bool:
        return self.length is not None and self.offset >= self.length

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "owner": self.owner,
            "length": self.length,
            "created_at": self.created_at.isoformat(),
            "metadata": self.metadata_header,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "partial": self.partial,
            "concat": self.concat_header,
            "parts": list(self.parts),
            "finished": self.finished,
            "finish_headers": self.finish_headers,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], offset: int) -> UploadRecord:
        expires = data.get("expires_at")
        return cls(
            id=data["id"],
            owner=data["owner"],
            length=data["length"],
            created_at=datetime.fromisoformat(data["created_at"]),
            metadata_header=data.get("metadata", ""),
            expires_at=datetime.fromisoformat(expires) if expires else None,
            partial=bool(data.get("partial")),
            concat_header=data.get("concat"),
            parts=tuple(data.get("parts", ())),
            finished=bool(data.get("finished")),
            finish_headers=dict(data.get("finish_headers") or {}),
            offset=offset,
        )


class ChunkSource(Protocol):
    """Where write_chunk gets bytes: fills the buffer, 0 at the end of the chunk."""

    def readinto(self, buffer: memoryview, /) -> int: ...


class Storage(Protocol):
    def create(self, record: UploadRecord) -> None: ...
    def get_info(self, upload_id: str) -> UploadRecord: ...  # UploadNotFound / UploadGone
    def save_info(self, record: UploadRecord) -> None: ...
    def write_chunk(
        self,
        upload_id: str,
        source: ChunkSource,
        offset: int,
        limit: int | None,
        *,
        check: Callable[[], None] | None = None,
    ) -> int:
        """Append at most limit bytes at offset; with check, the chunk is staged and kept only
        if check() returns (it raises to discard). Returns the bytes appended."""
        ...

    def finalize(self, upload_id: str) -> None: ...  # make the data durable (fsync)
    def path_of(self, upload_id: str) -> Path: ...
    def list_ids(self) -> list[str]: ...
    def count_unfinished(self, owner: str, now: datetime, limit: int | None = None) -> int: ...
    def mark_complete(self, record: UploadRecord) -> None: ...  # no longer counts as unfinished
    def sweep(self, tombstones_before: datetime) -> int: ...  # old tombstones, stray temp files


@runtime_checkable
class Terminater(Protocol):
    """termination extension: remove an upload, leaving a tombstone (why, and when)."""

    def terminate(self, upload_id: str, reason: str, at: datetime) -> None: ...


@runtime_checkable
class Concater(Protocol):
    """concatenation extension: create record's data as the parts' data, in order."""

    def concatenate(self, record: UploadRecord, part_ids: tuple[str, ...]) -> None: ...
