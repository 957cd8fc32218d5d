"""Pure Pillow functions: decide whether a file is a still JPEG, PNG or WebP photo, read its
EXIF facts, and make an upright thumbnail that carries no EXIF, GPS or comment.

No database, no store: a path in, facts (or an ImageRejected with a short ASCII reason) out.
"""

from __future__ import annotations

import mmap
import re
import struct
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, BinaryIO

from PIL import Image, ImageOps

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP")
FORMAT_MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
FORMAT_EXT = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
# Declared types that say nothing about the content: no mismatch can be claimed against them.
GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
MIME_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/x-png": "image/png"}

# Bytes after the JPEG EOI / PNG IEND / RIFF end: a few stray bytes and some zero padding (written
# by some encoders) are tolerated; anything more is a polyglot (e.g. an HTML tail) and rejected.
TRAILING_ANY_TOLERANCE = 4
TRAILING_PADDING_TOLERANCE = 4096
PADDING_BYTES = b"\x00\xff\r\n\t "

DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    TypeError,
    IndexError,
    KeyError,
    ZeroDivisionError,
    RuntimeError,
)

# EXIF tags (base IFD, Exif sub-IFD, GPS sub-IFD pointer).
TAG_ORIENTATION = 0x0112
TAG_MAKE = 0x010F
TAG_MODEL = 0x0110
IFD_EXIF = 0x8769
IFD_GPS = 0x8825
TAG_DATETIME_ORIGINAL = 0x9003
TAG_OFFSET_TIME_ORIGINAL = 0x9011

# Magic numbers of formats people send by mistake, for a reason that says what to do.
_OTHER_FORMATS = (
    (b"GIF8", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"%PDF", "PDF"),
)


class ImageRejected(Exception):
    """The file is not an acceptable still photo; `reason` is short ASCII for a response header."""

    def __init__(
        self, reason: str, *, format: str | None = None, size: tuple[int, int] | None = None
    ):
        super().__init__(reason)
        self.reason = ascii_reason(reason)
        self.format = format
        self.size = size


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int  # as stored, before EXIF orientation
    height: int
    orientation: int = 1
    exif: dict[str, Any] = field(default_factory=dict)
    taken_at: datetime | None = None


@dataclass(frozen=True)
class ProcessedImage:
    info: ImageInfo
    thumbnail: Image.Image  # upright RGB, long side <= the requested size, info stripped


def ascii_reason(text: str, limit: int = 200) -> str:
    clean = "".join(c if 32 <= ord(c) < 127 else "?" for c in text)
    return clean[:limit]


def sniff_format(head: bytes) -> str | None:
    """JPEG / PNG / WEBP from the first 12 bytes, else None (names the stored original's ext)."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return None


def unsupported_reason(head: bytes) -> str:
    if not head:
        return "empty file"
    for magic, name in _OTHER_FORMATS:
        if head.startswith(magic):
            return f"{name} is not accepted: send a JPEG, PNG or WebP photo"
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"avif"):
        return "HEIC/AVIF is not accepted: send a JPEG, PNG or WebP photo"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<?xml", b"<svg")) or b"<svg" in head.lower():
        return "SVG is not accepted: send a JPEG, PNG or WebP photo"
    return "not a JPEG, PNG or WebP image"


def check_declared_type(declared_type: str | None, fmt: str) -> None:
    declared = (declared_type or "").split(";")[0].strip().lower()
    if declared in GENERIC_TYPES:
        return
    declared = MIME_ALIASES.get(declared, declared)
    if declared != FORMAT_MIME.get(fmt):
        raise ImageRejected(f"declared {declared} but the file is {fmt}", format=fmt)


def process_image(
    path: Path,
    *,
    declared_type: str | None = None,
    max_pixels: int = 50_000_000,
    thumbnail_size: int = 400,
    draft: bool = True,
) -> ProcessedImage:
    """Validate a stored upload and make its thumbnail; raises ImageRejected.

    The header is checked (format, declared type, pixel count, animation, trailing data) before
    any pixel is decoded; then one decode (at 1/2..1/8 scale for JPEG when `draft`) both proves
    the data is complete -- verify() misses truncation, load() does not -- and feeds the thumbnail.
    """
    path = Path(path)
    with path.open("rb") as fh:
        head = fh.read(1024)
    # Pillow only warns for a bomb between 1x and 2x its limit. Both the limit and the warning
    # filters are process-global and not thread-safe, so the size check in _process_open
    # repeats the rule; the previous limit is restored for other Pillow users in the process.
    previous_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's "corrupt EXIF" chatter is not a verdict
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path, formats=list(ALLOWED_FORMATS)) as im:
                return _process_open(
                    im, path, declared_type, max_pixels, thumbnail_size, draft=draft
                )
        except Image.UnidentifiedImageError:
            raise ImageRejected(unsupported_reason(head)) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageRejected(_bomb_reason(str(exc), max_pixels)) from None
        except DECODE_ERRORS as exc:
            fmt = sniff_format(head)
            raise ImageRejected(f"cannot decode the image: {exc}", format=fmt) from None
        finally:
            Image.MAX_IMAGE_PIXELS = previous_limit


def _process_open(
    im: Image.ImageFile.ImageFile,
    path: Path,
    declared_type: str | None,
    max_pixels: int,
    thumbnail_size: int,
    *,
    draft: bool,
) -> ProcessedImage:
    fmt = im.format or ""
    size = im.size
    if fmt not in ALLOWED_FORMATS:  # e.g. MPO, which Pillow opens through the JPEG plugin
        raise ImageRejected(f"{fmt} is not accepted: send a single JPEG, PNG or WebP photo")
    check_declared_type(declared_type, fmt)
    width, height = size
    if width * height > max_pixels:
        raise ImageRejected(
            f"image is {width}x{height} = {width * height} pixels, more than {max_pixels}",
            format=fmt,
            size=size,
        )
    frames = getattr(im, "n_frames", 1)
    if getattr(im, "is_animated", False) or frames > 1:
        raise ImageRejected(
            f"animated image ({frames} frames): a capture must be a still photo",
            format=fmt,
            size=size,
        )
    trailing = trailing_data(path, fmt)
    if trailing:
        raise ImageRejected(
            f"trailing data after the image ({trailing} bytes after the {fmt} end)",
            format=fmt,
            size=size,
        )
    target = fit_within(size, thumbnail_size)
    if draft and fmt == "JPEG":
        # The decoder scales by 1/2, 1/4 or 1/8 while decoding, never below `target`.
        im.draft("RGB", target)
    try:
        im.load()
    except DECODE_ERRORS as exc:
        reason = f"image data is truncated or corrupt: {exc}"
        raise ImageRejected(reason, format=fmt, size=size) from None
    # After load(): PNG keeps eXIf after the pixel data, and getexif() would load() it.
    exif_facts, orientation, taken_at = read_exif(im)
    info = ImageInfo(fmt, width, height, orientation, exif_facts, taken_at)
    return ProcessedImage(info, make_thumbnail(im, size=thumbnail_size))


def _bomb_reason(message: str, max_pixels: int) -> str:
    match = re.search(r"\((\d+) pixels\)", message)
    pixels = match.group(1) if match else "too many"
    return f"image too large: {pixels} pixels, more than {max_pixels}"


def fit_within(size: tuple[int, int], longest: int) -> tuple[int, int]:
    width, height = size
    scale = min(1.0, longest / max(width, height, 1))
    return max(1, round(width * scale)), max(1, round(height * scale))


def make_thumbnail(im: Image.Image, *, size: int) -> Image.Image:
    """An upright RGB copy whose long side is at most `size`; no EXIF, comment or other info."""
    icc = im.info.get("icc_profile") if im.mode in ("RGB", "RGBA") else None
    if im.mode in ("P", "PA"):
        im = im.convert("RGBA")
    elif im.mode.startswith("I") or im.mode == "F":
        im = im.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    try:
        upright = ImageOps.exif_transpose(im)  # a copy, even with no orientation to apply
    except DECODE_ERRORS:  # an unreadable EXIF block must not cost the thumbnail
        upright = im.copy()
    upright.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    out = _flatten_rgb(upright)
    out.info = {"icc_profile": icc} if icc else {}
    return out


def _flatten_rgb(im: Image.Image) -> Image.Image:
    if im.mode == "RGB":
        return im
    if "A" in im.mode or "a" in im.mode:
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        background.alpha_composite(rgba)
        return background.convert("RGB")
    return im.convert("RGB")


def save_thumbnail(thumbnail: Image.Image, dest: BinaryIO | Path, *, quality: int = 85) -> None:
    """Write a JPEG with pixels (and the colour profile) only: no EXIF, GPS or COM segment.

    JPEG save takes `comment` from im.info when not given, so info is cleared on a copy first.
    """
    clean = thumbnail.copy()
    icc = clean.info.get("icc_profile")
    clean.info = {}
    params: dict[str, Any] = {"quality": quality, "exif": b""}
    if icc:
        params["icc_profile"] = icc
    clean.save(dest, format="JPEG", **params)


def read_exif(im: Image.Image) -> tuple[dict[str, Any], int, datetime | None]:
    """(facts for the record, orientation 1..8, taken_at) -- never raises on a bad EXIF block."""
    try:
        exif = im.getexif()
        sub = exif.get_ifd(IFD_EXIF)
        has_gps = bool(exif.get_ifd(IFD_GPS)) or IFD_GPS in exif
    except DECODE_ERRORS:
        return {}, 1, None
    facts: dict[str, Any] = {}
    orientation = exif.get(TAG_ORIENTATION)
    orientation = orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1
    if TAG_ORIENTATION in exif:
        facts["orientation"] = orientation
    for key, value in (
        ("make", exif.get(TAG_MAKE)),
        ("model", exif.get(TAG_MODEL)),
        ("datetime_original", sub.get(TAG_DATETIME_ORIGINAL)),
        ("offset_time_original", sub.get(TAG_OFFSET_TIME_ORIGINAL)),
    ):
        text = _exif_text(value)
        if text:
            facts[key] = text
    if has_gps:
        facts["gps"] = True  # presence only; coordinates stay in the original
    taken_at = parse_exif_datetime(
        facts.get("datetime_original"), facts.get("offset_time_original")
    )
    return facts, orientation, taken_at


def _exif_text(value: Any, limit: int = 100) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str):
        return None
    text = "".join(c for c in value if c.isprintable()).strip()
    return text[:limit] or None


def parse_exif_datetime(value: str | None, offset: str | None = None) -> datetime | None:
    """'YYYY:MM:DD HH:MM:SS' (+ OffsetTimeOriginal '+02:00'). Without an offset the camera's
    local time is unknown and is recorded as UTC (the raw text stays in the EXIF facts)."""
    if not value:
        return None
    try:
        naive = datetime.strptime(value[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    tz: timezone = UTC
    if offset and re.fullmatch(r"[+-][0-9]{2}:[0-9]{2}", offset):
        sign = -1 if offset[0] == "-" else 1
        delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
        if delta < timedelta(hours=15):
            tz = timezone(sign * delta)
    return naive.replace(tzinfo=tz).astimezone(UTC)


def trailing_data(path: Path, fmt: str) -> int:
    """Count of suspicious bytes after the image's own end (0 when within the tolerance)."""
    with Path(path).open("rb") as fh:
        size = fh.seek(0, 2)
        if size == 0:
            return 0
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            end = {"JPEG": _jpeg_end, "PNG": _png_end, "WEBP": _webp_end}[fmt](mm)
            if end is None or end >= size:
                return 0
            extra = size - end
            if extra <= TRAILING_ANY_TOLERANCE:
                return 0
            if extra <= TRAILING_PADDING_TOLERANCE and not mm[end:].strip(PADDING_BYTES):
                return 0
            return extra


def _jpeg_end(mm: mmap.mmap) -> int | None:
    """Offset just after the EOI marker, walking segments (APPn lengths skip embedded
    thumbnails) and entropy-coded scans; None when the structure cannot be followed."""
    n = len(mm)
    if mm[:2] != b"\xff\xd8":
        return None
    pos = 2
    while pos < n:
        if mm[pos] != 0xFF:
            return None
        while pos < n and mm[pos] == 0xFF:  # fill bytes before a marker
            pos += 1
        if pos >= n:
            return None
        marker = mm[pos]
        pos += 1
        if marker == 0xD9:
            return pos
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # RSTn / TEM: no length
            continue
        if pos + 2 > n:
            return None
        pos += int.from_bytes(mm[pos : pos + 2], "big")
        if marker == 0xDA:  # SOS: scan to the next real marker (not stuffing, not RSTn)
            while True:
                pos = mm.find(b"\xff", pos)
                if pos < 0 or pos + 1 >= n:
                    return None
                nxt = mm[pos + 1]
                if nxt == 0x00 or 0xD0 <= nxt <= 0xD7 or nxt == 0xFF:
                    pos += 1
                    continue
                break
    return None


def _png_end(mm: mmap.mmap) -> int | None:
    n = len(mm)
    pos = 8
    while pos + 8 <= n:
        length = int.from_bytes(mm[pos : pos + 4], "big")
        kind = mm[pos + 4 : pos + 8]
        pos += 12 + length
        if kind == b"IEND":
            return pos
    return None


def _webp_end(mm: mmap.mmap) -> int | None:
    if len(mm) < 12:
        return None
    riff_size = int.from_bytes(mm[4:8], "little")
    return 8 + riff_size + (riff_size & 1)
