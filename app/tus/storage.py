"""The parts a caller composes into a TusHandler: Storage (where uploads live) and Locker (one
request at a time per upload), the record they exchange and the errors they raise.

Two implementations of each exist: a file store and flock locker for one machine
(filestore.py, filelocker.py), an S3 store and PostgreSQL locker for several."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

# --- what is stored about an upload -------------------------------------------------------------


@dataclass(frozen=True)
class UploadRecord:
    """An upload as stored. Immutable: a change is a new record (dataclasses.replace) saved
    with Storage.save_info. Words: *complete* means all bytes arrived (offset == length);
    *finished* means the finish hook ran for it (exactly once, non-partial uploads only)."""

    id: str
    owner: str
    length: int | None  # None while the length is deferred
    created_at: datetime
    metadata_header: str = ""  # Upload-Metadata as received, echoed on HEAD
    expires_at: datetime | None = None
    is_partial: bool = False
    concat_header: str | None = None  # a final upload's Upload-Concat, as received
    parts: tuple[str, ...] = ()  # a final upload's partial uploads, in order
    finished: bool = False
    finished_at: datetime | None = None
    finish_headers: dict[str, str] = field(default_factory=dict)
    offset: int = 0  # the bytes stored; the store knows it, save_info ignores it

    @property
    def is_final(self) -> bool:
        return self.concat_header is not None

    @property
    def is_complete(self) -> bool:
        return self.length is not None and self.offset >= self.length

    @property
    def held_bytes(self) -> int:
        """What the upload counts against its owner's byte quota: its length once known."""
        return self.length if self.length is not None else self.offset

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "owner": self.owner,
            "length": self.length,
            "created_at": self.created_at.isoformat(),
            "metadata": self.metadata_header,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "partial": self.is_partial,
            "concat": self.concat_header,
            "parts": list(self.parts),
            "finished": self.finished,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "finish_headers": self.finish_headers,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], offset: int) -> UploadRecord:
        expires = data.get("expires_at")
        finished_at = data.get("finished_at")
        return cls(
            id=data["id"],
            owner=data["owner"],
            length=data["length"],
            created_at=datetime.fromisoformat(data["created_at"]),
            metadata_header=data.get("metadata", ""),
            expires_at=datetime.fromisoformat(expires) if expires else None,
            is_partial=bool(data.get("partial")),
            concat_header=data.get("concat"),
            parts=tuple(data.get("parts", ())),
            finished=bool(data.get("finished")),
            finished_at=datetime.fromisoformat(finished_at) if finished_at else None,
            finish_headers=dict(data.get("finish_headers") or {}),
            offset=offset,
        )


@dataclass(frozen=True)
class OwnerUsage:
    """What one owner holds: uploads still expecting bytes, and bytes of all its uploads."""

    unfinished: int
    bytes: int


# --- errors a store or locker raises -----------------------------------------------------------


class UploadNotFound(Exception):
    """No upload has this id (or it is not valid)."""


class UploadGone(Exception):
    """The upload existed but was terminated, expired or retired; a tombstone remembers it.
    A retired upload (finished, its copy removed after the grace period) keeps its record, so
    HEAD can still tell a client that it is complete."""

    def __init__(
        self, upload_id: str, reason: str, owner: str, record: UploadRecord | None = None
    ) -> None:
        super().__init__(f"upload {upload_id} {reason}")
        self.reason = reason
        self.owner = owner
        self.record = record


class OffsetMismatch(Exception):
    """write_chunk was asked to write at an offset that is not the end of the stored data."""

    def __init__(self, expected: int, stored: int) -> None:
        super().__init__(f"offset {expected} != stored {stored}")
        self.expected = expected
        self.stored = stored


class UploadIncomplete(Exception):
    """read_data on an unfinished upload a store cannot read yet (S3 reads no parts of an open
    multipart upload); answered 409."""

    def __init__(self, upload_id: str) -> None:
        super().__init__(f"upload {upload_id} is unfinished: its bytes can be read once complete")


class StorageUnavailable(Exception):
    """The store cannot be reached now (answered 503 with Retry-After); nothing was lost."""


class LockTimeout(Exception):
    def __init__(self, key: str, waited: float) -> None:
        super().__init__(f"{key} stayed locked for {waited:.1f} s")
        self.upload_id = key
        self.waited = waited


# --- the protocols ------------------------------------------------------------------------------


class ChunkSource(Protocol):
    """Where write_chunk gets bytes: fills the buffer, 0 at the end of the chunk."""

    def readinto(self, buffer: memoryview, /) -> int: ...


@dataclass(frozen=True)
class FinishedData:
    """A complete upload's bytes as its finish hook gets them. `local_file()` gives them as a
    local file for a with-block (on S3 a download, removed afterwards). When the store knows
    the SHA-256 without reading the data (it hashed the bytes as they arrived) and where they
    are (`origin`: bucket and key of the object), a hook that needs no more than size, digest
    and location can do without the download."""

    upload_id: str
    size: int
    local_file: Callable[[], AbstractContextManager[Path]]
    sha256: str | None = None
    origin: tuple[str, str] | None = None


# A quota check run atomically with a creation (Storage.create): raises to refuse it.
Admit = Callable[[OwnerUsage], None]


class Storage(Protocol):
    """Every method taking an upload id raises UploadNotFound or UploadGone for one it does
    not hold; StorageUnavailable when the store cannot be reached."""

    def create(self, record: UploadRecord, admit: Admit | None = None) -> None:
        """Store a new upload. admit: called with its owner's usage at record.created_at,
        atomically with the creation (no other creation of that owner on any worker or node
        in between); it raises to refuse, and then nothing is created."""

    def get_info(self, upload_id: str) -> UploadRecord: ...
    def save_info(self, record: UploadRecord) -> None:
        """Replace the stored record (its offset is ignored: the store knows it)."""

    def write_chunk(
        self,
        upload_id: str,
        source: ChunkSource,
        offset: int,
        limit: int | None,
        *,
        check: Callable[[], None] | None = None,
    ) -> int:
        """Append at most limit bytes from source at offset (OffsetMismatch if that is not the
        stored offset). Bytes of a body that stopped early are kept. With check, the chunk is
        staged and kept only if check() returns (it raises to discard). Returns bytes added."""

    def make_durable(self, upload_id: str) -> None:
        """Before the finish hook: after a crash the whole upload is still there."""

    def local_file(self, upload_id: str) -> AbstractContextManager[Path]:
        """The whole data as a local file while the with-block runs."""

    def finished_data(self, upload_id: str, size: int) -> FinishedData:
        """What the finish hook gets of a complete, durable upload of `size` bytes."""

    def read_data(self, upload_id: str) -> Iterator[bytes]:
        """The stored bytes in blocks (GET); UploadIncomplete where an unfinished upload
        cannot be read."""

    def terminate(self, upload_id: str, reason: str, at: datetime) -> None:
        """Remove the data, leaving a tombstone (410 afterwards). reason "retired" keeps the
        record in the tombstone (see UploadGone)."""

    def concatenate(
        self, record: UploadRecord, part_ids: tuple[str, ...], admit: Admit | None = None
    ) -> None:
        """Create record as a complete upload whose data is the parts' data, in order (admit:
        as for create)."""

    def list_ids(self) -> list[str]: ...
    def owner_usage(self, owner: str, now: datetime) -> OwnerUsage:
        """Unfinished = not complete and not expired at now; bytes = held_bytes of every
        upload the owner holds (complete, partial and retired-not-yet ones included)."""

    def sweep(self, tombstones_before: datetime) -> int:
        """Forget tombstones older than the date and stray leftovers; returns how many."""


class Lock(Protocol):
    def release_requested(self) -> bool:
        """Has a newer request for this key asked the holder to let go?"""

    def discard(self) -> None:
        """The upload is gone: remove the lock's traces while it is held."""


class Locker(Protocol):
    def lock(
        self, key: str, timeout: float, *, request_release: bool = False
    ) -> AbstractContextManager[Lock]:
        """Hold key (an upload id) for the with-block. Waits at most
        timeout seconds (0: try once), then raises LockTimeout. request_release: while
        waiting, ask the holder to let go (its client may be gone)."""
