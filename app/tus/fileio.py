"""Low-level file helpers of the file store: block copies through one reused buffer (starting
the disk writeback of large bodies as they arrive) and atomic replacement of small files."""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

from app.tus.storage import ChunkSource

# Dirty pages of a large body are handed to the disk every this many bytes, without waiting:
# the fsync before the finish hook then has little left to write (1 GiB written in 1 MiB
# blocks: its fsync took 0.5 s, 0.01-0.03 s with this). Small bodies (photos) never reach it.
WRITEBACK_BYTES = 8 << 20


def copy_from(source: ChunkSource, fd: int, limit: int | None, block_size: int) -> int:
    """Copy from source to fd (at its position) in blocks through one reused buffer; never more
    than limit. Every WRITEBACK_BYTES the written range's writeback is started."""
    buffer = memoryview(bytearray(block_size))
    written = 0
    start = os.lseek(fd, 0, os.SEEK_CUR)
    synced = 0  # bytes of this copy whose writeback was started
    while limit is None or written < limit:
        want = block_size if limit is None else min(block_size, limit - written)
        n = source.readinto(buffer[:want])
        if not n:
            break
        view = buffer[:n]
        while view:
            view = view[os.write(fd, view) :]
        written += n
        if written - synced >= WRITEBACK_BYTES:
            start_writeback(fd, start + synced, written - synced)
            synced = written
    return written


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing a range to disk, without waiting: Linux's
    sync_file_range(SYNC_FILE_RANGE_WRITE), which Python's os module does not offer. Elsewhere,
    or if it fails, nothing happens and the final fsync does all the work."""
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_SYNC_FILE_RANGE_WRITE = 2  # linux/fs.h
_sync_file_range = _load_sync_file_range()


def send_all(out_fd: int, in_fd: int, size: int) -> None:
    """Copy the first size bytes of in_fd to out_fd's position, in the kernel."""
    sent = 0
    while sent < size:
        n = os.sendfile(out_fd, in_fd, sent, size - sent)
        if not n:
            raise OSError(f"a file shrank while being copied ({sent} of {size} bytes)")
        sent += n


def write_new(path: str | Path, data: bytes) -> None:
    """Write a file that must not exist yet (O_EXCL), not fsynced."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace path with data: readers see the old file or the new one, never a mix. durable:
    fsync the file before the rename and the folder after it (on the disk when this returns);
    otherwise a crash may leave the old content (ext4 flushes a file renamed over another)."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        write_all(fd, data)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)
    if durable:
        fsync_dir(path.parent)


def write_all(fd: int, data: bytes) -> None:
    """All of data at fd's position (os.write may write less)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def remove(path: str) -> None:
    """Unlink path; already gone is fine (unlink(missing_ok=True) without a pathlib object)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def fsync_path(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
