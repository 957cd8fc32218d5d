"""Walk the container of a JPEG, PNG, WebP or HEIF file before any decoder sees it: count its
segments, chunks, scans and metadata bytes, refuse absurd layouts, and find where the image ends.

Byte reading over a memory map only: the cost grows with the limits below, never with a hostile
file's segment count, and nothing is allocated in proportion to the file.
"""

from __future__ import annotations

import mmap
import re
from dataclasses import dataclass

# Real photos have a few dozen JPEG segments (EXIF, ICC in up to a dozen APP2 parts, XMP,
# tables), at most ~10 scans (libjpeg's progressive script) and a few PNG/WebP/HEIF metadata
# chunks; the limits are far above that and far below what makes a decoder's bookkeeping
# (Pillow keeps every JPEG APP/COM segment and PNG text chunk as Python objects) expensive.
MAX_JPEG_SEGMENTS = 1000
MAX_JPEG_SCANS = 100
MAX_PNG_CHUNKS = 65_536  # pixel chunks included: encoders split IDAT at 8-64 KiB
MAX_METADATA_CHUNKS = 1000  # PNG chunks other than pixels, WebP chunks, HEIF top-level boxes
MAX_METADATA_BYTES = 16 << 20  # APPn/COM segments, PNG ancillary chunks, WebP EXIF/XMP/ICC
MAX_EXIF_BYTES = 1 << 20  # a JPEG APP1 holds at most 64 KiB; Pillow parses all of it

_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE})
_JPEG_PROGRESSIVE = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
# The end of entropy-coded data: 0xFF then a byte that is not stuffing (0x00), a restart marker
# (0xD0-0xD7) or a fill byte (matched at the last 0xFF of a run). One 0xFF, not "0xFF+": a
# leading repeat keeps the regex engine from scanning fast for the literal.
_ENTROPY_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_PNG_PIXEL_CHUNKS = frozenset({b"IDAT", b"fdAT"})
_PNG_CRITICAL = frozenset({b"IHDR", b"PLTE", b"IEND"})
_WEBP_IMAGE_CHUNKS = frozenset({b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ANIM", b"ANMF"})
_BOX_TYPE = re.compile(rb"[\x20-\x7e]{4}")


class StructureRejected(ValueError):
    """The layout is absurd for a photo; the message is short ASCII for a reject reason."""


@dataclass(frozen=True)
class Layout:
    end: int | None  # offset just after the image's own end; None when it cannot be followed
    scans: int = 0  # JPEG: start-of-scan segments
    coefficient_bytes: int = 0  # JPEG: the DCT coefficients libjpeg holds for a multi-scan file


def walk(mm: mmap.mmap | bytes, fmt: str) -> Layout:
    """The layout of an image of format `fmt` (JPEG, PNG, WEBP, HEIC or HEIF)."""
    if fmt == "JPEG":
        return _jpeg(mm)
    if fmt == "PNG":
        return _png(mm)
    if fmt == "WEBP":
        return _webp(mm)
    return _heif(mm)


def _jpeg(mm: mmap.mmap | bytes) -> Layout:
    """Walk segments (their lengths skip APPn payloads and embedded thumbnails) and the
    entropy-coded data after each SOS, up to EOI."""
    n = len(mm)
    if mm[:2] != b"\xff\xd8":
        return Layout(None)
    pos, segments, scans, metadata = 2, 0, 0, 0
    frame: tuple[int, int, list[tuple[int, int]]] | None = None
    progressive = False
    end: int | None = None
    while pos < n:
        if mm[pos] != 0xFF:
            break
        while pos < n and mm[pos] == 0xFF:  # fill bytes before a marker
            pos += 1
        if pos >= n:
            break
        marker = mm[pos]
        pos += 1
        if marker == 0xD9:
            end = pos
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # RSTn / TEM: no length
            continue
        if pos + 2 > n:
            break
        length = int.from_bytes(mm[pos : pos + 2], "big")
        segments += 1
        if segments > MAX_JPEG_SEGMENTS:
            raise StructureRejected(
                f"JPEG has more than {MAX_JPEG_SEGMENTS} segments; a photo has a few dozen"
            )
        if 0xE0 <= marker <= 0xEF or marker == 0xFE:
            metadata += length
            if metadata > MAX_METADATA_BYTES:
                raise StructureRejected(_too_much_metadata("JPEG"))
        elif marker in _JPEG_SOF:
            frame = _jpeg_frame(mm, pos)
            progressive = marker in _JPEG_PROGRESSIVE
        pos += length
        if marker == 0xDA:
            scans += 1
            if scans > MAX_JPEG_SCANS:
                raise StructureRejected(
                    f"JPEG has more than {MAX_JPEG_SCANS} scans; a progressive photo has about 10"
                )
            found = _ENTROPY_END.search(mm, pos)
            if found is None:
                break
            pos = found.start()
    coefficients = 0
    if frame is not None and (progressive or scans > 1):
        coefficients = _coefficient_bytes(*frame)
    return Layout(end, scans, coefficients)


def _jpeg_frame(mm: mmap.mmap | bytes, pos: int) -> tuple[int, int, list[tuple[int, int]]]:
    """(width, height, [(h, v) sampling per component]) from a SOFn segment at `pos`."""
    head = mm[pos : pos + 8]
    if len(head) < 8:
        return 0, 0, []
    height = int.from_bytes(head[3:5], "big")
    width = int.from_bytes(head[5:7], "big")
    count = head[7]
    table = mm[pos + 8 : pos + 8 + 3 * count]
    sampling = [(b >> 4, b & 15) for b in table[1::3]]
    return width, height, sampling


def _coefficient_bytes(width: int, height: int, sampling: list[tuple[int, int]]) -> int:
    """libjpeg keeps every 8x8 block's 64 16-bit coefficients of every component of a
    progressive or multi-scan image, whatever scale it outputs."""
    if not sampling:
        return 0
    hmax = max(h for h, _ in sampling) or 1
    vmax = max(v for _, v in sampling) or 1
    blocks = 0
    for h, v in sampling:
        columns = -(-width * h // hmax)
        rows = -(-height * v // vmax)
        blocks += -(-columns // 8) * -(-rows // 8)
    return blocks * 128


def _png(mm: mmap.mmap | bytes) -> Layout:
    n = len(mm)
    pos, chunks, metadata_chunks, metadata = 8, 0, 0, 0
    while pos + 8 <= n:
        length = int.from_bytes(mm[pos : pos + 4], "big")
        kind = bytes(mm[pos + 4 : pos + 8])
        chunks += 1
        if chunks > MAX_PNG_CHUNKS:
            raise StructureRejected(f"PNG has more than {MAX_PNG_CHUNKS} chunks")
        if kind not in _PNG_PIXEL_CHUNKS:
            metadata_chunks += 1
            if metadata_chunks > MAX_METADATA_CHUNKS:
                raise StructureRejected(
                    f"PNG has more than {MAX_METADATA_CHUNKS} metadata chunks; a photo has a few"
                )
            if kind not in _PNG_CRITICAL:
                metadata += length
                if metadata > MAX_METADATA_BYTES:
                    raise StructureRejected(_too_much_metadata("PNG"))
            if kind == b"eXIf":
                _check_exif(length)
        pos += 12 + length
        if kind == b"IEND":
            return Layout(pos)
    return Layout(None)


def _webp(mm: mmap.mmap | bytes) -> Layout:
    n = len(mm)
    if n < 12:
        return Layout(None)
    riff_size = int.from_bytes(mm[4:8], "little")
    end = min(n, 8 + riff_size)
    pos, chunks, metadata = 12, 0, 0
    while pos + 8 <= end:
        kind = bytes(mm[pos : pos + 4])
        size = int.from_bytes(mm[pos + 4 : pos + 8], "little")
        chunks += 1
        if chunks > MAX_METADATA_CHUNKS:
            raise StructureRejected(f"WebP has more than {MAX_METADATA_CHUNKS} chunks")
        if kind not in _WEBP_IMAGE_CHUNKS:
            metadata += size
            if metadata > MAX_METADATA_BYTES:
                raise StructureRejected(_too_much_metadata("WebP"))
            if kind == b"EXIF":
                _check_exif(size)
        pos += 8 + size + (size & 1)
    return Layout(8 + riff_size + (riff_size & 1))


def _heif(mm: mmap.mmap | bytes) -> Layout:
    """Top-level ISO BMFF boxes (ftyp, meta, mdat, ...); the image ends after the last one."""
    n = len(mm)
    pos, boxes = 0, 0
    while pos + 8 <= n:
        size = int.from_bytes(mm[pos : pos + 4], "big")
        if not _BOX_TYPE.fullmatch(mm[pos + 4 : pos + 8]):
            return Layout(pos)  # not a box: whatever follows the last box
        header = 8
        if size == 1:
            if pos + 16 > n:
                return Layout(None)
            size = int.from_bytes(mm[pos + 8 : pos + 16], "big")
            header = 16
        elif size == 0:
            size = n - pos
        if size < header:
            return Layout(None)
        boxes += 1
        if boxes > MAX_METADATA_CHUNKS:
            raise StructureRejected(f"HEIF has more than {MAX_METADATA_CHUNKS} top-level boxes")
        pos += size
    return Layout(pos if pos == n else None)


def _check_exif(size: int) -> None:
    if size > MAX_EXIF_BYTES:
        raise StructureRejected(
            f"EXIF metadata is {size} bytes, more than {MAX_EXIF_BYTES}; a photo has a few KB"
        )


def _too_much_metadata(fmt: str) -> str:
    return f"{fmt} carries more than {MAX_METADATA_BYTES} bytes of metadata; a photo has a few KB"
