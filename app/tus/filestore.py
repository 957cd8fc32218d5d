"""FileStore: uploads on a local file system, `<id>` the data (its size IS the offset),
`<id>.info` the record (JSON lines: the last whole line is the record), `<id>.gone` a tombstone
after termination, expiry or retirement; `.owners.sqlite3` indexes what each owner holds."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
from app.tus.ownerindex import OwnerIndex
from app.tus.protocol import is_upload_id
from app.tus.storage import (
    Admit,
    ChunkSource,
    FinishedData,
    OffsetMismatch,
    OwnerUsage,
    UploadGone,
    UploadNotFound,
    UploadRecord,
)

STRAY_SECONDS = 3600  # staging and temp files older than this belong to no live request
RECORD_LOG_BYTES = 64 << 10  # a record file past this is rewritten as its last record


class FileStore:
    """Crash safety: data is appended in place, so the offset (a stat) never counts bytes that
    are not in the file, and after a crash record and data agree (the record holds no offset);
    checksummed chunks are staged in `<id>.chunk` and appended only once verified; a record
    update is one line appended to the record file, and the last whole line is the record, so
    a reader (or a crash) meeting half a line sees the previous record. Appending, rather than
    replacing the file, makes no new inode; past RECORD_LOG_BYTES the file is replaced by its
    last line. A final upload's data is assembled under a temp name, fsynced and published
    before its record.

    What is durable when (fsync policy):
    - creation and PATCH: nothing is forced to disk. After a power loss an upload may be
      shorter than the offset last answered (HEAD tells the client where to resume) or, if
      its record did not reach the disk, unknown (404: the client, which still holds the
      file, starts over). An upload whose data is not durable is worth nothing yet.
    - make_durable(), before the finish hook (and after every PATCH with fsync_each_patch):
      the data, the record and the folder are fsynced; from then on the upload survives a
      power loss whole. Large bodies start their disk writeback while they arrive.
    - record updates after creation (a later expiry, a deferred length, the finished flag):
      whole or not at all, not fsynced; a power loss may bring back the previous record. The
      finish hook is idempotent (and reconcile() re-runs it), a shorter expiry or an undeclared
      length cost the client one more request.
    - termination: the tombstone is fsynced (the upload must not come back as unknown).
    - the owner index: rebuilt from the records when its file is missing."""

    def __init__(self, directory: Path, *, block_size: int = 1 << 20) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.block_size = block_size
        self._dir = f"{self.directory}{os.sep}"
        index_path = self.directory / ".owners.sqlite3"
        rebuild = not index_path.exists()
        self.owners = OwnerIndex(index_path, self._data_size)
        if rebuild:
            self.owners.put_all(r for r in map(self._peek, self.list_ids()) if r is not None)

    # --- paths: only ever built from a validated id -------------------------------------------

    def _file(self, upload_id: str, suffix: str = "") -> str:
        """The path of an upload's file as a string (built on every request: no pathlib)."""
        if not is_upload_id(upload_id):
            raise UploadNotFound(upload_id)
        return f"{self._dir}{upload_id}{suffix}"

    def _path(self, upload_id: str, suffix: str = "") -> Path:
        return Path(self._file(upload_id, suffix))

    def path_of(self, upload_id: str) -> Path:
        """Where the data file is (the file locker links its lock files to it)."""
        return self._path(upload_id)

    def _data_size(self, upload_id: str) -> int:
        try:
            return os.stat(self._file(upload_id)).st_size
        except (FileNotFoundError, UploadNotFound):
            return 0

    # --- records ------------------------------------------------------------------------------

    def create(self, record: UploadRecord, admit: Admit | None = None) -> None:
        fd = os.open(self._file(record.id), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        # Nobody knows the id before the POST answers: the record is written in place.
        write_new(self._file(record.id, ".info"), _record_line(record))
        if admit is None:
            self.owners.put(record)
            return
        try:
            self.owners.admit(record, admit)  # the quota, in the index's own transaction
        except BaseException:
            remove(self._file(record.id, ".info"))  # refused: as if never created
            remove(self._file(record.id))
            raise

    def get_info(self, upload_id: str) -> UploadRecord:
        try:
            data = _last_record(_read(self._file(upload_id, ".info")))
            size = os.stat(self._file(upload_id)).st_size
        except FileNotFoundError:
            tomb = self._read_tombstone(upload_id)
            if tomb is not None:
                reason, owner = tomb.get("reason", "terminated"), tomb.get("owner", "")
                raise UploadGone(upload_id, reason, owner, _tomb_record(tomb)) from None
            raise UploadNotFound(upload_id) from None
        except ValueError:  # a record cut by a power loss (not fsynced at creation)
            raise UploadNotFound(upload_id) from None
        try:
            record = UploadRecord.from_json(data, offset=size)
        except (KeyError, TypeError, ValueError):
            raise UploadNotFound(upload_id) from None
        if record.length is not None and size > record.length:
            record = replace(record, offset=record.length)  # never report bytes past the length
        return record

    def save_info(self, record: UploadRecord) -> None:
        """Append the record as a line (see the class docstring; not fsynced: fsync policy)."""
        line = _record_line(record)
        path = self._file(record.id, ".info")
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
        except FileNotFoundError:  # a final upload's first record: published whole
            write_atomic(Path(path), line, durable=False)
        else:
            try:
                size = os.fstat(fd).st_size
                if size + len(line) < RECORD_LOG_BYTES:
                    if size and os.pread(fd, 1, size - 1) != b"\n":
                        line = b"\n" + line  # a record written whole, without a line end
                    write_all(fd, line)  # one write() of one short line
                else:
                    write_atomic(Path(path), line, durable=False)  # the log has grown
            finally:
                os.close(fd)
        self.owners.put(record)

    def list_ids(self) -> list[str]:
        names = (p.name[: -len(".info")] for p in self.directory.glob("*.info"))
        return sorted(n for n in names if is_upload_id(n))

    def owner_usage(self, owner: str, now: datetime) -> OwnerUsage:
        return self.owners.usage(owner, now)

    def _peek(self, upload_id: str) -> UploadRecord | None:
        try:
            return self.get_info(upload_id)
        except (UploadNotFound, UploadGone):
            return None

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
        self,
        upload_id: str,
        source: ChunkSource,
        fd: int,
        limit: int | None,
        check: Callable[[], None],
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

    def make_durable(self, upload_id: str) -> None:
        """Data, record, and their names in the folder reach the disk."""
        fsync_path(self._file(upload_id))
        fsync_path(self._file(upload_id, ".info"))
        fsync_dir(self.directory)

    @contextlib.contextmanager
    def local_file(self, upload_id: str) -> Iterator[Path]:
        path = self._path(upload_id)
        if not path.exists():
            self.get_info(upload_id)  # UploadGone / UploadNotFound
            raise UploadNotFound(upload_id)
        yield path

    def finished_data(self, upload_id: str, size: int) -> FinishedData:
        return FinishedData(upload_id, size, functools.partial(self.local_file, upload_id))

    def read_data(self, upload_id: str) -> Iterator[bytes]:
        path = self._file(upload_id)
        if not os.path.exists(path):
            self.get_info(upload_id)  # UploadGone / UploadNotFound
            raise UploadNotFound(upload_id)
        return _blocks(path, self.block_size)

    # --- termination and concatenation --------------------------------------------------------

    def terminate(self, upload_id: str, reason: str, at: datetime) -> None:
        record = self._peek(upload_id)
        tomb: dict[str, object] = {
            "reason": reason,
            "owner": record.owner if record else "",
            "at": at.isoformat(),
        }
        if reason == "retired" and record is not None:
            tomb["record"] = {**record.to_json(), "offset": record.offset}
        write_atomic(self._path(upload_id, ".gone"), json.dumps(tomb).encode())
        # The record goes first: without it the upload no longer exists for anyone.
        for suffix in (".info", "", ".chunk"):
            remove(self._file(upload_id, suffix))
        self.owners.drop(upload_id)

    def concatenate(
        self, record: UploadRecord, part_ids: tuple[str, ...], admit: Admit | None = None
    ) -> None:
        """Assemble the final's data under a temp name, then publish data and record: a crash
        leaves either a whole final upload or none. The quota (admit) is checked before a
        byte is copied, and the index row taken back if the copy fails."""
        record = replace(record, offset=record.length or 0)
        if admit is not None:
            self.owners.admit(record, admit)
        temp = self._path(record.id, f".{secrets.token_hex(4)}.tmp")
        try:
            out = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                for part_id in part_ids:
                    with open(self._path(part_id), "rb") as part:
                        send_all(out, part.fileno(), os.fstat(part.fileno()).st_size)
                os.fsync(out)
            finally:
                os.close(out)
            os.replace(temp, self._path(record.id))
        except BaseException:
            temp.unlink(missing_ok=True)
            self.owners.drop(record.id)
            raise
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

    def _read_tombstone(self, upload_id: str) -> dict[str, Any] | None:
        try:
            tomb = json.loads(self._path(upload_id, ".gone").read_bytes())
        except (FileNotFoundError, ValueError, UploadNotFound):
            return None
        return tomb if isinstance(tomb, dict) else None


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _blocks(path: str, size: int) -> Iterator[bytes]:
    """Opened on the first block, so an iterator that is never consumed holds no file."""
    with open(path, "rb") as f:
        while block := f.read(size):
            yield block


def _tomb_record(tomb: dict[str, Any]) -> UploadRecord | None:
    data = tomb.get("record")
    if not isinstance(data, dict):
        return None
    try:
        return UploadRecord.from_json(data, offset=int(data.get("offset", 0)))
    except (KeyError, TypeError, ValueError):
        return None


def _record_line(record: UploadRecord) -> bytes:
    return json.dumps(record.to_json()).encode() + b"\n"  # json.dumps writes no newline


def _last_record(raw: bytes) -> dict[str, Any]:
    """The last line of a record file that is whole JSON; a line cut short (a crash, or a
    reader meeting an append) never is, so the record before it counts. ValueError if none."""
    for line in reversed(raw.split(b"\n")):
        if line.strip():
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict):
                return data
    raise ValueError("no whole record")
