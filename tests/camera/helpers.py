"""Small helpers for the camera tests."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image


def stored_files(root: Path) -> list[str]:
    """Every file under the capture store, staging area (tmp/) included, as relative paths."""
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def jpeg_segments(data: bytes) -> set[int]:
    """The marker bytes of the header segments of a JPEG (0xE1 = APP1/EXIF, 0xFE = COM)."""
    markers: set[int] = set()
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        markers.add(marker)
        if marker == 0xDA:
            break
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return markers


def open_image(path: Path) -> Image.Image:
    with Image.open(io.BytesIO(path.read_bytes())) as im:
        im.load()
        return im
