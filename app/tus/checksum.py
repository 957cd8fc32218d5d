"""Checksum algorithms of the tus checksum extension (sha1 is mandatory).

Each is a factory of objects with update() and digest(), like hashlib's."""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable
from typing import Protocol


class Hasher(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...
    def digest(self) -> bytes: ...


class Crc32:
    """CRC-32 (zlib's), its digest the 4 bytes big-endian."""

    def __init__(self) -> None:
        self._value = 0

    def update(self, data: bytes | memoryview, /) -> None:
        self._value = zlib.crc32(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(4, "big")


ALGORITHMS: dict[str, Callable[[], Hasher]] = {
    "sha1": lambda: hashlib.sha1(usedforsecurity=False),
    "md5": lambda: hashlib.md5(usedforsecurity=False),
    "sha256": hashlib.sha256,
    "crc32": Crc32,
}


def new_hasher(name: str) -> Hasher:
    return ALGORITHMS[name]()


def digest_size(name: str) -> int:
    return len(new_hasher(name).digest())
