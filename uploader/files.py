"""Which files to upload: walking the given paths, picking images, sizes and content hashes.

Pure functions over the file system; no network, no state.
"""

from __future__ import annotations

import fnmatch
import hashlib
import mimetypes
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

IMAGE_PATTERNS = ("*.jpg", "*.jpeg", "*.png", "*.webp", "*.heic")
HASH_BLOCK = 1 << 20

# mimetypes does not know HEIC everywhere (it depends on the system's mime.types).
_EXTRA_TYPES = {".heic": "image/heic", ".heif": "image/heif", ".webp": "image/webp"}

_SIZE = re.compile(r"([0-9]{1,15})(?:\.([0-9]{1,6}))?\s*([kmgt]?)(i?b?)", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


@dataclass(frozen=True)
class LocalFile:
    path: Path  # absolute, resolved
    size: int

    @property
    def filetype(self) -> str | None:
        return filetype_of(self.path)


def parse_size(text: str) -> int:
    """A byte count from "4194304", "512K", "8M", "8MiB", "1.5G" (binary units, K = 1024).

    Raises ValueError with a message meant for the person who typed it.
    """
    match = _SIZE.fullmatch(text.strip())
    if not match or (match.group(4) and not match.group(3) and match.group(4).lower() != "b"):
        raise ValueError(f"{text!r} is not a size: write a number of bytes or e.g. 512K, 8M, 1G")
    whole, frac, unit, _suffix = match.groups()
    multiplier = _UNITS[unit.lower()]
    value = int(whole) * multiplier
    if frac:
        value += int(frac) * multiplier // 10 ** len(frac)
    if value <= 0:
        raise ValueError(f"{text!r} is not a size: it must be more than 0 bytes")
    return value


def format_size(n: int | float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def filetype_of(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix in _EXTRA_TYPES:
        return _EXTRA_TYPES[suffix]
    return mimetypes.guess_type(path.name, strict=False)[0]


def matches(name: str, patterns: Sequence[str]) -> bool:
    """Case-insensitive glob match of a file name (IMG_0001.JPG is a *.jpg)."""
    lowered = name.lower()
    return any(fnmatch.fnmatchcase(lowered, p.lower()) for p in patterns)


class PathProblem(ValueError):
    """A path given on the command line that does not exist or cannot be read."""


def collect(paths: Iterable[str | Path], include: Sequence[str] = ()) -> list[LocalFile]:
    """The files to upload, sorted, each once.

    Directories are walked recursively (hidden entries skipped, symlinked directories not
    followed, so a link loop cannot trap the walk); their files are kept when the name matches
    `include` (default: common image extensions). A file named explicitly is always kept.
    """
    patterns = tuple(include) or IMAGE_PATTERNS
    found: dict[Path, LocalFile] = {}
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise PathProblem(f"{raw}: no such file or directory")
        if path.is_dir():
            for file in _walk(path, patterns):
                found.setdefault(file.path, file)
        elif path.is_file():
            file = _local(path)
            found.setdefault(file.path, file)
        else:
            raise PathProblem(f"{raw}: not a regular file or directory")
    return sorted(found.values(), key=lambda f: str(f.path))


def _walk(root: Path, patterns: Sequence[str]) -> Iterable[LocalFile]:
    def fail(error: OSError) -> None:
        raise PathProblem(f"{error.filename}: {error.strerror}")

    for dirpath, dirnames, filenames in os.walk(root, onerror=fail):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or not matches(name, patterns):
                continue
            path = Path(dirpath, name)
            if path.is_file():
                yield _local(path)


def _local(path: Path) -> LocalFile:
    resolved = path.resolve()
    try:
        size = resolved.stat().st_size
        with open(resolved, "rb"):
            pass
    except OSError as exc:
        raise PathProblem(f"{path}: {exc.strerror}") from exc
    return LocalFile(resolved, size)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in blocks (memory stays flat whatever the size)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()
