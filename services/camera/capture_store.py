"""Where capture files live: originals byte-exact by content hash, thumbnails beside them.

Layout under `root` (= <TUSCAM_DATA_DIR>/captures):
    originals/ab/<sha256>.<ext>        the uploaded bytes, never rewritten
    thumbnails/ab/<sha256>.jpg         derived, may be regenerated (reprocess)
    tmp/                               staging; a file appears under its final name only by
                                       link/rename after fsync, so a crash leaves no half file
Files are created 0600 and folders 0700 whatever the umask.
The database stores the relative paths, so files stored under an earlier layout
(originals/ab/cd/...) stay where they are. One level of 256 folders, not two of 65,536: with
two, nearly every capture of the first hundred thousand made a new folder (a new inode and an
fsync of its parent), measured as a visible share of a photo upload's CPU.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

BLOCK_SIZE = 1 << 20
HEAD_BYTES = 1024  # the first bytes of a staged file: what tells its format (imaging.sniff_format)
# Captures carry people's photos and GPS positions: readable by the service user only, whatever
# the umask (modes are set explicitly after creation, as a umask can only take bits away).
FILE_MODE = 0o600
DIR_MODE = 0o700


class UploadSource(Protocol):
    """A finished tus upload as the tus server hands it to its finish hook
    (app/tus/storage.py, FinishedData)."""

    @property
    def size(self) -> int: ...

    @property
    def sha256(self) -> str | None:
        """Known without reading the data, or None."""

    @property
    def origin(self) -> tuple[str, str] | None:
        """(bucket, key) of the object that holds the data, or None."""

    def local_file(self) -> AbstractContextManager[Path]:
        """The data as a local file for the with-block."""
        ...


@dataclass(frozen=True)
class StagedFile:
    """The upload's bytes under root/tmp, with the digest computed while they were read once.
    `path` is None for an upload staged by reference (S3CaptureStore.stage_upload): its bytes
    stay in the object at `origin` and only its head was read."""

    path: Path | None
    sha256: str
    size: int
    linked: bool  # a hard link to the tus data file rather than a copy
    head: bytes = b""  # the first HEAD_BYTES bytes
    origin: str | None = None  # the object key of an upload staged by reference


class CaptureStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        # Staged temp files already on disk (fsynced, or links of an fsynced file): publishing
        # them needs only the folder's fsync. Filled by stage(), emptied by publish()/discard().
        self._durable: set[Path] = set()

    # -- names -------------------------------------------------------------------------------
    @staticmethod
    def original_name(sha256: str, ext: str) -> str:
        return f"originals/{sha256[:2]}/{sha256}.{ext}"

    @staticmethod
    def thumbnail_name(sha256: str) -> str:
        return f"thumbnails/{sha256[:2]}/{sha256}.jpg"

    def path(self, relative: str) -> Path:
        """Absolute path of a stored file; refuses anything that would leave the store."""
        candidate = (self.root / relative).resolve()
        root = self.root.resolve()
        if not candidate.is_relative_to(root) or candidate == root:
            raise ValueError(f"{relative!r} is not a path inside the capture store")
        return candidate

    def exists(self, relative: str) -> bool:
        return self.path(relative).is_file()

    @contextmanager
    def local_copy(self, relative: str) -> Iterator[Path]:
        """A stored file as a local path for reading (here: the file itself)."""
        yield self.path(relative)

    # -- staging -----------------------------------------------------------------------------
    def temp_path(self, suffix: str = "") -> Path:
        tmp = self.root / "tmp"
        if not tmp.is_dir():
            _make_private_dirs(tmp)
        return tmp / f"{secrets.token_hex(12)}{suffix}.tmp"

    def stage(
        self,
        source: Path | BinaryIO,
        *,
        block_size: int = BLOCK_SIZE,
        durable: bool = False,
        known: tuple[str, int] | None = None,
    ) -> StagedFile:
        """Bring the upload into the store under a temporary name, hashing it in one pass.

        A path on the same filesystem is fsynced (unless the caller says it is `durable`:
        tus fsyncs an upload before its finish hook), hard-linked (no copy) and then read once
        for the digest; otherwise the bytes are copied, hashed and fsynced in the same pass.
        Memory stays at one block whatever the file size. Either way the staged file is on
        disk: publish() only fsyncs the folder. `known`: the (sha256, size) of a path, taken by
        whoever wrote it just now, so a linked file is not read again.
        """
        temp = self.temp_path()
        try:
            if isinstance(source, (str, os.PathLike)):
                # Before the link, not after: a link changes the inode, and its fsync would
                # then wait for a journal commit; publish()'s folder fsync commits the link.
                if not durable:
                    _fsync_file(Path(source))
                try:
                    os.link(source, temp)
                except OSError as exc:
                    if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                        raise
                else:
                    self._durable.add(temp)
                    _make_private(temp)  # one inode: the tus data file becomes private too
                    digest, size = known or _hash_file(temp, block_size)
                    return StagedFile(temp, digest, size, linked=True, head=_head(temp))
                with open(source, "rb") as src:
                    digest, size = _copy_hashing(src, temp, block_size)
            else:
                digest, size = _copy_hashing(source, temp, block_size)
        except BaseException:
            self._durable.discard(temp)
            temp.unlink(missing_ok=True)
            raise
        self._durable.add(temp)
        return StagedFile(temp, digest, size, linked=False, head=_head(temp))

    def stage_upload(
        self,
        upload: UploadSource,
        *,
        block_size: int = BLOCK_SIZE,
        durable: bool = False,
        needed_up_to: int | None = None,
    ) -> StagedFile:
        """stage() for a finished tus upload. `needed_up_to`: the caller reads the bytes of an
        upload up to this size only (larger ones are rejected unread), so a store that can
        stage a larger one by reference may (S3CaptureStore); here it is always staged."""
        known = (upload.sha256, upload.size) if upload.sha256 else None
        with upload.local_file() as path:
            return self.stage(path, block_size=block_size, durable=durable, known=known)

    @contextmanager
    def temp_file(self, suffix: str = "") -> Iterator[Path]:
        """A temporary file in the store (empty, private), removed on exit unless published
        meanwhile. Writers open it again by path: truncating keeps its mode."""
        temp = self.temp_path(suffix)
        os.close(_create_private(temp))
        try:
            yield temp
        finally:
            temp.unlink(missing_ok=True)

    def publish(self, temp: Path, relative: str, *, replace: bool = False) -> bool:
        """Give a fsynced temporary file its final name; True if this call created the file.

        Without `replace`, an existing file of the same name is kept (content-addressed: same
        name, same bytes) and the link is exclusive, so of two racing writers only one "creates"
        the file -- only that one may remove it again on rollback.
        """
        final = self.path(relative)
        if not final.parent.is_dir():  # a new folder's own entry must reach the disk too
            _make_private_dirs(final.parent)
            _fsync_dir(final.parent.parent)
        if temp in self._durable:
            self._durable.discard(temp)
        else:
            _fsync_file(temp)
        if replace:
            os.replace(temp, final)
            created = True
        else:
            try:
                os.link(temp, final)
                created = True
            except FileExistsError:
                created = False
            temp.unlink(missing_ok=True)
        _fsync_dir(final.parent)
        return created

    def publish_original(self, staged: StagedFile, relative: str) -> tuple[str, bool]:
        """Store a staged upload as a capture's original: (the name it is stored under, True if
        this call created it). Here: publish() under the content-addressed name."""
        if staged.path is None:
            raise ValueError("the file store stages every upload on its disk")
        return relative, self.publish(staged.path, relative)

    def discard(self, temp: Path) -> None:
        self._durable.discard(temp)
        temp.unlink(missing_ok=True)

    def delete(self, relative: str) -> bool:
        """Remove a stored file (rollback, cleanup); True if it was there."""
        try:
            self.path(relative).unlink()
        except FileNotFoundError:
            return False
        return True


def _head(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(HEAD_BYTES)


def _hash_file(path: Path, block_size: int) -> tuple[str, int]:
    with open(path, "rb", buffering=0) as fh:
        # file_digest reads into one reused buffer (no bytes object per block).
        digest = hashlib.file_digest(fh, "sha256")
        size = fh.tell()
    return digest.hexdigest(), size


def _create_private(path: Path) -> int:
    """A new file open for writing, mode FILE_MODE whatever the umask; returns its descriptor."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _make_private(path: Path) -> None:
    if os.stat(path).st_mode & 0o777 != FILE_MODE:
        os.chmod(path, FILE_MODE)


def _make_private_dirs(path: Path) -> None:
    """Create `path` and its missing parents, each DIR_MODE whatever the umask (mkdir's
    parents=True gives parents the umask's mode)."""
    missing = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, DIR_MODE)
        except FileExistsError:
            continue  # another process made it (and sets its mode)
        os.chmod(folder, DIR_MODE)


def _copy_hashing(src: BinaryIO, dest: Path, block_size: int) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(_create_private(dest), "wb", closefd=True) as out:
        while block := src.read(block_size):
            digest.update(block)
            out.write(block)
            size += len(block)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest(), size


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    # The rename/link is durable only once the directory entry is on disk.
    with suppress(OSError):
        _fsync_file(path)


__all__ = ["BLOCK_SIZE", "CaptureStore", "StagedFile"]
