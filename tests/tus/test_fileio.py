"""fileio: block copies that start the disk writeback of large bodies as they go, and small
files written whole (new) or replaced atomically."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from app.tus import fileio


class Source:
    def __init__(self, data: bytes) -> None:
        self.stream = io.BytesIO(data)

    def readinto(self, buffer: memoryview) -> int:
        return self.stream.readinto(buffer)


def test_a_large_copy_starts_writeback_of_each_written_range(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ranges: list[tuple[int, int]] = []
    monkeypatch.setattr(fileio, "WRITEBACK_BYTES", 1000)
    monkeypatch.setattr(
        fileio, "_sync_file_range", lambda fd, off, n, flags: ranges.append((off, n))
    )
    data = os.urandom(4500)
    fd = os.open(tmp_path / "data", os.O_RDWR | os.O_CREAT)
    try:
        os.write(fd, b"x" * 100)  # an upload that already holds 100 bytes
        assert fileio.copy_from(Source(data), fd, None, 256) == len(data)
    finally:
        os.close(fd)
    assert (tmp_path / "data").read_bytes() == b"x" * 100 + data
    assert ranges[0][0] == 100 and all(n >= 1000 for _, n in ranges)
    assert all(a + n == b for (a, n), (b, _) in zip(ranges, ranges[1:], strict=False))
    assert ranges[-1][0] + ranges[-1][1] <= 100 + len(data)


def test_writeback_is_a_real_call_on_linux(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "data", os.O_RDWR | os.O_CREAT)
    try:
        os.write(fd, b"y" * 10000)
        fileio.start_writeback(fd, 0, 10000)  # must not raise
    finally:
        os.close(fd)
    if os.uname().sysname == "Linux":
        assert fileio._sync_file_range is not None


def test_a_new_file_is_never_written_over_an_existing_one(tmp_path: Path) -> None:
    fileio.write_new(tmp_path / "a", b"one")
    with pytest.raises(FileExistsError):
        fileio.write_new(tmp_path / "a", b"two")
    assert (tmp_path / "a").read_bytes() == b"one"


@pytest.mark.parametrize("durable", [True, False])
def test_an_atomic_replacement_leaves_no_temp_file(tmp_path: Path, durable: bool) -> None:
    fileio.write_atomic(tmp_path / "r", b"old")
    fileio.write_atomic(tmp_path / "r", b"new", durable=durable)
    assert [p.name for p in tmp_path.iterdir()] == ["r"]
    assert (tmp_path / "r").read_bytes() == b"new"
