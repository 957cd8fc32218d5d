"""FileStore: uploads on a local file system, `<id>` the data (its size IS the offset),
`<id>.info` the record (JSON lines: the last whole line is the record), `<id>.gone` a tombstone
after termination or expiry."""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import os
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from app.tus.fileio import (
    copy_from,
    fsync_dir,
    fsync_path,
    remove,
    send_all,
    write_all,
    write_atomic,
    write_new,
)
from app.tus.protocol import is_upload_id
from app.tus.storage import ChunkSource, OffsetMismatch, UploadGone, UploadNotFound, UploadRecord

STRAY_SECONDS = 3600  # staging and temp files older than this belong to no live request
RECORD_LOG_BYTES = 64 << 10  # a record file past this is rewritten as its last record


class FileStore:
    """Crash safety: data is appended in place, so the offset (a stat) never counts bytes that
    are not in the file, and after a crash record and data agree (the record holds no offset);
    checksummed chunks are staged in `<id>.chunk` and appended only once verified; a record
    update is one line appended to the record file, and the last whole line is the record, so
    a reader (or a crash) meeting half a line sees the previous record. Appending, rather than
    replacing the file (temp file, rename), makes no new inode, which on ext4 here cost more
    than the rest of the update; past RECORD_LOG_BYTES the file is replaced by its last line.
    A final upload's data is assembled under a temp name, fsynced and published before its
    record.

    What is durable when (fsync policy):
    - creation and PATCH: nothing is forced to disk. After a power loss an upload may be
      shorter than the offset last answered (HEAD tells the client where to resume) or, if
      its record did not reach the disk, unknown (404: the client, which still holds the
      file, starts over). An upload whose data is not durable is worth nothing yet.
    - finalize(), before the finish hook (and after every PATCH with fsync_each_patch): the
      data, the record and the folder are fsynced; from then on the upload survives a power
      loss whole. Large bodies start their disk writeback while they arrive, so this is short.
    - record updates after creation (a later expiry, a deferred length, the finished flag):
      whole or not at all, not fsynced; a power loss may bring back the previous record. The
      finish hook is idempotent (and reconcile() re-runs it), a shorter expiry or an undeclared
      length cost the client one more request.
    - termination: the tombstone is fsynced (the upload must not come back as unknown)."""

    def __init__(self, directory: Path, *, block_size: int = 1 << 20) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        # One entry per unfinished upload: a hard link of the upload's first record (a link costs
        # no new inode; allocating inodes was a sixth of a photo upload's CPU on ext4 here).
        self.owners = self.directory / ".owners"
        self.block_size = block_size
        self._dir = f"{self.directory}{os.sep}"
        self._owners = f"{self.owners}{os.sep}"

    # --- paths: only ever built from a validated id -------------------------------------------

    def _file(self, upload_id: str, suffix: str = "") -> str:
        """The path of an upload's file as a string (the per-request paths use these: building
        pathlib objects showed in profiles of photo uploads)."""
        if not is_upload_id(upload_id):
            raise UploadNotFound(upload_id)
        return f"{self._dir}{upload_id}{suffix}"

    def _path(self, upload_id: str, suffix: str = "") -> Path:
        return Path(self._file(upload_id, suffix))

    def _marker(self, owner: str, upload_id: str = "") -> str:
        folder = f"{self._owners}{_owner_key(owner)}"
        return f"{folder}{os.sep}{upload_id}" if upload_id else folder

    def path_of(self, upload_id: str) -> Path:
        return self._path(upload_id)

    # --- records ------------------------------------------------------------------------------

    def create(self, record: UploadRecord) -> None:
        fd = os.open(self._file(record.id), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        # The record before the marker: count_unfinished drops a marker whose record it cannot
        # read, so a marker written first vanished under concurrent creations (quota escaped).
        # Nobody knows the id before the POST answers: the record is written in place.
        info = self._file(record.id, ".info")
        write_new(info, _record_line(record))
        if not record.is_complete:
            marker = self._marker(record.owner, record.id)
            try:
                _link_or_create(info, marker)
            except FileNotFoundError:  # the owner's first upload: make the folder only then
                os.makedirs(os.path.dirname(marker), exist_ok=True)
                _link_or_create(info, marker)

    def get_info(self, upload_id: str) -> UploadRecord:
        try:
            data = _last_record(_read(self._file(upload_id, ".info")))
            size = os.stat(self._file(upload_id)).st_size
        except FileNotFoundError:
            tomb = self._read_tombstone(upload_id)
            if tomb is not None:
                reason, owner = tomb.get("reason", "terminated"), tomb.get("owner", "")
                raise UploadGone(upload_id, reason, owner) from None
            raise UploadNotFound(upload_id) from None
        except ValueError:  # a record cut by a power loss (not fsynced at creation)
            raise UploadNotFound(upload_id) from None
        try:
            record = UploadRecord.from_json(data, offset=size)
        except (KeyError, TypeError, ValueError):
            raise UploadNotFound(upload_id) from None
        if record.length is not None:
            record.offset = min(size, record.length)  # never report bytes past the length
        return record

    def save_info(self, record: UploadRecord) -> None:
        """Append the record as a line (see the class docstring; not fsynced: fsync policy)."""
        line = _record_line(record)
        path = self._file(record.id, ".info")
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
        except FileNotFoundError:  # a final upload's first record: published whole
            write_atomic(Path(path), line, durable=False)
            return
        try:
            size = os.fstat(fd).st_size
            if size + len(line) < RECORD_LOG_BYTES:
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = b"\n" + line  # a record written whole, without a line end
                write_all(fd, line)  # one write() of one short line
                return
        finally:
            os.close(fd)
        write_atomic(Path(path), line, durable=False)  # the log has grown: start it again

    def list_ids(self) -> list[str]:
        names = (p.name[: -len(".info")] for p in self.directory.glob("*.info"))
        return sorted(n for n in names if is_upload_id(n))

    def count_unfinished(self, owner: str, now: datetime, limit: int | None = None) -> int:
        """The owner's unfinished, unexpired uploads. Every one of them has a marker, so while
        the markers are fewer than `limit` their number answers (an upper bound, enough to
        compare with the limit) without reading a record: one listing per POST, not one record
        per upload in flight. Near the limit the records are read and stale markers dropped."""
        folder = self._marker(owner)
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return 0
        if limit is not None and len(names) < limit:
            return len(names)
        count = 0
        for name in names:
            try:
                record = self.get_info(name)
            except (UploadNotFound, UploadGone):
                record = None
            if record is None or record.is_complete:
                remove(f"{folder}{os.sep}{name}")  # stale: the upload completed or left
            elif record.expires_at is None or record.expires_at > now:
                count += 1
        return count

    def mark_complete(self, record: UploadRecord) -> None:
        """The upload stops counting against its owner's quota now, not at the next sweep."""
        remove(self._marker(record.owner, record.id))

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
        path = self._file(upload_id)
        # Not O_APPEND: sendfile() refuses such a target; the upload lock makes us the only writer.
        fd = os.open(path, os.O_WRONLY)
        try:
            stored = os.lseek(fd, 0, os.SEEK_END)
            if stored != offset:
                raise OffsetMismatch(offset, stored)
            if check is None:
                return copy_from(source, fd, limit, self.block_size)
            return self._write_checked(upload_id, source, fd, limit, check)
        finally:
            os.close(fd)

    def _write_checked(
        self, upload_id: str, source: ChunkSource, fd: int, limit: int | None, check: Callable
    ) -> int:
        # checksum extension: the chunk is kept only if it verifies, so it is staged first.
        stage = self._file(upload_id, ".chunk")
        stage_fd = os.open(stage, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            size = copy_from(source, stage_fd, limit, self.block_size)
            check()
            send_all(fd, stage_fd, size)
            return size
        finally:
            os.close(stage_fd)
            remove(stage)

    def finalize(self, upload_id: str) -> None:
        """Make the upload durable: data, record, and their names in the folder."""
        fsync_path(self._file(upload_id))
        fsync_path(self._file(upload_id, ".info"))
        fsync_dir(self.directory)

    # --- termination and concatenation --------------------------------------------------------

    def terminate(self, upload_id: str, reason: str, at: datetime) -> None:
        try:
            owner = self.get_info(upload_id).owner
        except UploadNotFound:
            owner = ""
        tomb = {"reason": reason, "owner": owner, "at": at.isoformat()}
        write_atomic(self._path(upload_id, ".gone"), json.dumps(tomb).encode())
        # The record goes first: without it the upload no longer exists for anyone.
        for suffix in (".info", "", ".chunk"):
            self._path(upload_id, suffix).unlink(missing_ok=True)
        if owner:
            remove(self._marker(owner, upload_id))

    def concatenate(self, record: UploadRecord, part_ids: tuple[str, ...]) -> None:
        """Assemble the final's data under a temp name, then publish data and record: a crash
        leaves either a whole final upload or none."""
        temp = self._path(record.id, f".{secrets.token_hex(4)}.tmp")
        out = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            for part_id in part_ids:
                with open(self._path(part_id), "rb") as part:
                    send_all(out, part.fileno(), os.fstat(part.fileno()).st_size)
            os.fsync(out)
        except BaseException:
            os.close(out)
            temp.unlink(missing_ok=True)
            raise
        os.close(out)
        os.replace(temp, self._path(record.id))
        record.offset = record.length or 0
        self.save_info(record)

    # --- housekeeping -------------------------------------------------------------------------

    def sweep(self, tombstones_before: datetime) -> int:
        removed = 0
        stray_before = time.time() - STRAY_SECONDS
        for path in self.directory.iterdir():
            try:
                mtime = path.stat().st_mtime
            except FileNotFoundError:
                continue
            old_tomb = path.suffix == ".gone" and self._tomb_time(path) < tombstones_before
            orphan = is_upload_id(path.name) and not path.with_suffix(".info").exists()
            leftover = path.suffix in (".tmp", ".chunk", ".release") or orphan
            stray = leftover and mtime < stray_before  # (a crash between data and record)
            if old_tomb or stray:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def _tomb_time(self, path: Path) -> datetime:
        tomb = self._read_tombstone(path.stem) or {}
        try:
            return datetime.fromisoformat(tomb["at"])
        except (KeyError, TypeError, ValueError):
            return datetime.fromtimestamp(path.stat().st_mtime, UTC)

    def _read_tombstone(self, upload_id: str) -> dict | None:
        try:
            return json.loads(self._path(upload_id, ".gone").read_bytes())
        except (FileNotFoundError, ValueError, UploadNotFound):
            return None


@functools.lru_cache(maxsize=1024)
def _owner_key(owner: str) -> str:
    return hashlib.sha256(owner.encode()).hexdigest()[:32]


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _link_or_create(source: str, path: str) -> None:
    """A hard link of source at path, or an empty file where the file system has no links."""
    try:
        os.link(source, path)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EMLINK, errno.EXDEV):
            raise
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


def _record_line(record: UploadRecord) -> bytes:
    return json.dumps(record.to_json()).encode() + b"\n"  # json.dumps writes no newline


def _last_record(raw: bytes) -> dict[str, object]:
    """The last line of a record file that is whole JSON; a line cut short (a crash, or a
    reader meeting an append) never is, so the record before it counts. ValueError if none."""
    for line in reversed(raw.split(b"\n")):
        if line.strip():
            try:
                return json.loads(line)
            except ValueError:
                continue
    raise ValueError("no whole record")
