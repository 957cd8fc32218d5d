"""Pure Pillow functions: decide whether a file is a still JPEG, PNG, WebP or HEIC/HEIF photo,
read its EXIF facts, and make an upright thumbnail that carries no EXIF, GPS or comment.

No database, no store: a path in, facts (or an ImageRejected with a short ASCII reason) out.
"""

from __future__ import annotations

import mmap
import os
import re
import struct
import threading
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, BinaryIO

import pillow_heif
from PIL import Image, ImageFile, UnidentifiedImageError

from services.camera import structure

# Depth maps and auxiliary images of HEIF files are never used here: not even listed.
pillow_heif.register_heif_opener(depth_images=False, aux_images=False)

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "HEIF")  # Pillow's names; HEIF covers HEIC
# Stored format -> the MIME type its original is served with (app/ serves files with it).
MIME_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "HEIC": "image/heic",
    "HEIF": "image/heif",
}
FORMAT_EXT = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "HEIC": "heic", "HEIF": "heif"}
# Declared types that say nothing about the content: no mismatch can be claimed against them.
GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
MIME_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-png": "image/png",
    # Phones label HEIC files image/heif and the reverse: one family, one check.
    "image/heif": "image/heic",
    "image/heic-sequence": "image/heic",
    "image/heif-sequence": "image/heic",
}
# ftyp brands (ISO/IEC 23008-12): HEVC-coded HEIC, and the generic HEIF image brands.
_HEIC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})
_HEIF_BRANDS = frozenset({b"mif1", b"msf1", b"mif2", b"miaf"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})

# Bytes after the JPEG EOI / PNG IEND / RIFF end: a few stray bytes and some zero padding (written
# by some encoders) are tolerated; anything more is a polyglot (e.g. an HTML tail) and rejected.
TRAILING_ANY_TOLERANCE = 4
TRAILING_PADDING_TOLERANCE = 4096
PADDING_BYTES = b"\x00\xff\r\n\t "

# Memory: one upload must not add more than 256 MiB to the server. The file is refused above
# MAX_IMAGE_BYTES (decoders of WebP and HEIF hold it whole), its structure is walked before any
# decoder (structure.py), and the decode is refused when the memory it needs -- estimated from
# the header: the pixels at Pillow's bytes per pixel, conversion copies, the decoder's own
# buffers -- exceeds MAX_DECODE_BYTES. A 12 MP JPEG decoded at 1/8 scale needs ~2 MB.
MAX_IMAGE_BYTES = 64 << 20
MAX_DECODE_BYTES = 224 << 20
# Decodes above this size take turns in a process (a worker's threads would add up otherwise);
# smaller ones (every draft-mode JPEG) run side by side.
LARGE_DECODE_BYTES = 32 << 20
DECODER_SLACK = 8 << 20  # zlib windows, libjpeg row buffers, HEVC reference frames
_LARGE_DECODES = threading.BoundedSemaphore(1)

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
    ) -> None:
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
    """JPEG / PNG / WEBP / HEIC / HEIF from the first bytes, else None (names the original's
    extension). HEIC and HEIF are told apart by their ftyp brands; AVIF is not accepted."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[4:8] == b"ftyp":
        return _heif_kind(head)
    return None


def _heif_kind(head: bytes) -> str | None:
    size = int.from_bytes(head[:4], "big")
    box = head[8 : max(12, min(size, len(head)))]
    brands = {box[i : i + 4] for i in range(0, len(box) - 3, 4)} - {box[4:8]}  # not the version
    if brands & _HEIC_BRANDS:
        return "HEIC"
    if brands & _AVIF_BRANDS or not brands & _HEIF_BRANDS:
        return None
    return "HEIF"


def unsupported_reason(head: bytes) -> str:
    if not head:
        return "empty file"
    for magic, name in _OTHER_FORMATS:
        if head.startswith(magic):
            return f"{name} is not accepted: send a JPEG, PNG, WebP or HEIC photo"
    if head[4:8] == b"ftyp":
        return "AVIF and other ISO media are not accepted: send a JPEG, PNG, WebP or HEIC photo"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<?xml", b"<svg")) or b"<svg" in head.lower():
        return "SVG is not accepted: send a JPEG, PNG, WebP or HEIC photo"
    return "not a JPEG, PNG or WebP image, nor a HEIC photo"


def check_declared_type(declared_type: str | None, fmt: str) -> None:
    declared = (declared_type or "").split(";")[0].strip().lower()
    if declared in GENERIC_TYPES:
        return
    declared = MIME_ALIASES.get(declared, declared)
    if declared != MIME_ALIASES.get(MIME_TYPES[fmt], MIME_TYPES[fmt]):
        raise ImageRejected(f"declared {declared} but the file is {fmt}", format=fmt)


def too_large_reason(size: int, max_bytes: int) -> str:
    return f"file is {size} bytes; images larger than {max_bytes} bytes are not accepted"


def process_image(
    path: Path,
    *,
    declared_type: str | None = None,
    max_pixels: int = 50_000_000,
    thumbnail_size: int = 400,
    draft: bool = True,
    max_bytes: int = MAX_IMAGE_BYTES,
    max_decode_bytes: int = MAX_DECODE_BYTES,
) -> ProcessedImage:
    """Validate a stored upload and make its thumbnail; raises ImageRejected.

    Before any pixel is decoded: the file size, the container's structure (structure.py), the
    format, declared type, pixel count, animation, trailing data and the memory the decode
    needs. Then one decode (at 1/2..1/8 scale for JPEG when `draft`) both proves the data is
    complete -- verify() misses truncation, load() does not -- and feeds the thumbnail.
    """
    path = Path(path)
    with path.open("rb") as fh:
        head = fh.read(1024)
        fmt = sniff_format(head)
        if fmt is None:
            raise ImageRejected(unsupported_reason(head))
        size = os.fstat(fh.fileno()).st_size
        if size > max_bytes:
            raise ImageRejected(too_large_reason(size, max_bytes), format=fmt)
        try:
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                layout = structure.walk(mm, fmt)
        except structure.StructureRejected as exc:
            raise ImageRejected(str(exc), format=fmt) from None
    trailing = _trailing(path, layout.end, size)
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
                checks = _Checks(fmt, declared_type, max_pixels, max_decode_bytes, trailing)
                return _process_open(im, checks, layout, size, thumbnail_size, draft=draft)
        except UnidentifiedImageError:
            raise ImageRejected(unsupported_reason(head)) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageRejected(_bomb_reason(str(exc), max_pixels)) from None
        except DECODE_ERRORS as exc:
            raise ImageRejected(f"cannot decode the image: {exc}", format=fmt) from None
        finally:
            Image.MAX_IMAGE_PIXELS = previous_limit


@dataclass(frozen=True)
class _Checks:
    fmt: str  # from the magic bytes: JPEG, PNG, WEBP, HEIC or HEIF
    declared_type: str | None
    max_pixels: int
    max_decode_bytes: int
    trailing: int


def _process_open(
    im: ImageFile.ImageFile,
    checks: _Checks,
    layout: structure.Layout,
    file_size: int,
    thumbnail_size: int,
    *,
    draft: bool,
) -> ProcessedImage:
    fmt = checks.fmt
    size = im.size
    if im.format not in ALLOWED_FORMATS or (im.format == "HEIF") != fmt.startswith("HEI"):
        # e.g. MPO, which Pillow opens through the JPEG plugin
        raise ImageRejected(
            f"{im.format} is not accepted: send a single JPEG, PNG, WebP or HEIC photo"
        )
    check_declared_type(checks.declared_type, fmt)
    width, height = size
    if width * height > checks.max_pixels:
        raise ImageRejected(
            f"image is {width}x{height} = {width * height} pixels, more than {checks.max_pixels}",
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
    if checks.trailing:
        raise ImageRejected(
            f"trailing data after the image ({checks.trailing} bytes after the {fmt} end)",
            format=fmt,
            size=size,
        )
    exif_size = len(im.info.get("exif") or b"")
    if exif_size > structure.MAX_EXIF_BYTES:
        raise ImageRejected(
            f"EXIF metadata is {exif_size} bytes, more than {structure.MAX_EXIF_BYTES}",
            format=fmt,
            size=size,
        )
    target = fit_within(size, thumbnail_size)
    if draft and fmt == "JPEG":
        # The decoder scales by 1/2, 1/4 or 1/8 while decoding, never below `target`.
        im.draft("RGB", target)
    needed = decode_bytes(im, fmt, layout, file_size)
    if needed > checks.max_decode_bytes:
        raise ImageRejected(
            f"decoding this {width}x{height} {im.mode} image needs about {needed >> 20} MiB of "
            f"memory, more than {checks.max_decode_bytes >> 20} MiB: send a smaller photo",
            format=fmt,
            size=size,
        )
    with _LARGE_DECODES if needed > LARGE_DECODE_BYTES else nullcontext():
        try:
            im.load()
        except DECODE_ERRORS as exc:
            reason = f"image data is truncated or corrupt: {exc}"
            raise ImageRejected(reason, format=fmt, size=size) from None
        # After load(): PNG keeps eXIf after the pixel data, and getexif() would load() it.
        exif_facts, orientation, taken_at = read_exif(im)
        to_turn = orientation
        applied = im.info.get("original_orientation")
        if fmt in ("HEIC", "HEIF") and isinstance(applied, int) and 1 < applied <= 8:
            # libheif decodes upright already (pillow-heif then reports orientation 1): record
            # what the file says and its size as stored, as for JPEG, and turn nothing twice.
            orientation, to_turn = applied, 1
            exif_facts["orientation"] = applied
            if applied >= 5:
                width, height = height, width
        info = ImageInfo(fmt, width, height, orientation, exif_facts, taken_at)
        thumbnail = make_thumbnail(im, size=thumbnail_size, orientation=to_turn)
        return ProcessedImage(info, thumbnail)


def _pillow_bytes_per_pixel(mode: str) -> int:
    """Bytes per pixel of Pillow's storage: 1 for 1/L/P, 2 for I;16*, else 4 (RGB is padded)."""
    if mode in ("1", "L", "P"):
        return 1
    if mode.startswith("I;16"):
        return 2
    return 4


def decode_bytes(im: Image.Image, fmt: str, layout: structure.Layout, file_size: int) -> int:
    """The memory decoding `im` (as opened, after draft()) and making its thumbnail needs at its
    peak: Pillow's image, the full-size copies make_thumbnail goes through, the decoder's own
    buffers. Measured per format and mode (bench/README.md), rounded up: an estimate too low
    would let memory through."""
    pixels = im.size[0] * im.size[1]
    if fmt == "WEBP":
        # libwebp's RGBA canvas, its copy as bytes, Pillow's image and its premultiplied copy
        # for resampling; the file is read whole.
        return pixels * 16 + file_size + DECODER_SLACK
    total = pixels * _pillow_bytes_per_pixel(im.mode)
    if im.mode in ("P", "PA"):
        total += pixels * 8  # converted to RGBA, then premultiplied (RGBa) for resampling
    elif im.mode in ("RGBA", "LA"):
        total += pixels * 4  # premultiplied copy for resampling
    elif im.mode.startswith("I") or im.mode == "F":
        total += pixels * 9  # I (4) -> point (4) -> L (1), see make_thumbnail
    if fmt == "JPEG":
        total += layout.coefficient_bytes
    elif fmt in ("HEIC", "HEIF"):
        total += pixels * 4 + file_size  # libheif's decoded frame; the file is read whole
    return total + DECODER_SLACK


def _bomb_reason(message: str, max_pixels: int) -> str:
    match = re.search(r"\((\d+) pixels\)", message)
    pixels = match.group(1) if match else "too many"
    return f"image too large: {pixels} pixels, more than {max_pixels}"


def fit_within(size: tuple[int, int], longest: int) -> tuple[int, int]:
    width, height = size
    scale = min(1.0, longest / max(width, height, 1))
    return max(1, round(width * scale)), max(1, round(height * scale))


_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def make_thumbnail(im: Image.Image, *, size: int, orientation: int | None = None) -> Image.Image:
    """An upright RGB copy whose long side is at most `size`; no EXIF, comment or other info.

    `orientation` (EXIF 1..8) is read from `im` when not given. The image is scaled down first
    and turned upright after, so no full-size rotated copy is ever made.
    """
    icc = im.info.get("icc_profile") if im.mode in ("RGB", "RGBA") else None
    if orientation is None:
        orientation = read_exif(im)[1]
    if im.mode in ("P", "PA"):
        im = im.convert("RGBA")  # palette images resample only by nearest neighbour
    elif im.mode.startswith("I") or im.mode == "F":
        im = im.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    target = fit_within(im.size, size)
    if target != im.size:
        small = im.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
    else:
        small = im.copy()
    if orientation in _TRANSPOSE:
        small = small.transpose(_TRANSPOSE[orientation])
    out = _flatten_rgb(small)
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
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            return 0
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            end = structure.walk(mm, fmt).end
    return _trailing(Path(path), end, size)


def _trailing(path: Path, end: int | None, size: int) -> int:
    if end is None or end >= size:
        return 0
    extra = size - end
    if extra <= TRAILING_ANY_TOLERANCE:
        return 0
    if extra <= TRAILING_PADDING_TOLERANCE:
        with path.open("rb") as fh:
            fh.seek(end)
            if not fh.read().strip(PADDING_BYTES):
                return 0
    return extra
