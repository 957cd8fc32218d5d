"""Low-level file helpers of the file store: block copies through one reused buffer and
atomic replacement of small files (temp file, fsync, rename, fsync of the folder)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from app.tus.storage import ChunkSource


def copy_from(source: ChunkSource, fd: int, limit: int | None, block_size: int) -> int:
    """Copy from source to fd in blocks through one reused buffer; never more than limit."""
    buffer = memoryview(bytearray(block_size))
    written = 0
    while limit is None or written < limit:
        want = block_size if limit is None else min(block_size, limit - written)
        n = source.readinto(buffer[:want])
        if not n:
            break
        view = buffer[:n]
        while view:
            view = view[os.write(fd, view) :]
        written += n
    return written


def send_all(out_fd: int, in_fd: int, size: int) -> None:
    """Copy the first size bytes of in_fd to out_fd's position, in the kernel."""
    sent = 0
    while sent < size:
        n = os.sendfile(out_fd, in_fd, sent, size - sent)
        if not n:
            raise OSError(f"a file shrank while being copied ({sent} of {size} bytes)")
        sent += n


def write_atomic(path: Path, data: bytes) -> None:
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
