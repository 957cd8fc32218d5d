"""Generated test images, shared by every test suite (camera service, tus, app, e2e, bench).

Each function returns bytes, made in memory in milliseconds (the 12 MP JPEG is cached).
`SAMPLES` lists them with the file name and declared type a client would send and the verdict
the capture service must reach, so a suite can parametrize over it.
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from dataclasses import dataclass

from PIL import Image

RED = (255, 0, 0)
BLUE = (0, 0, 255)
EXIF_MAKE = "TuscamTestMake"
EXIF_MODEL = "TuscamTestModel"
EXIF_DATETIME = "2024:05:06 07:08:09"
JPEG_COMMENT = b"tuscam-secret-comment"
HTML_TAIL = b"<html><body><script>alert('polyglot')</script></body></html>\n"


def _save(im: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **params)
    return buf.getvalue()


def red_left_image(width: int = 200, height: int = 100) -> Image.Image:
    """Left half red, right half blue: orientation is visible in the pixels."""
    im = Image.new("RGB", (width, height), BLUE)
    im.paste(RED, (0, 0, width // 2, height))
    return im


def jpeg(width: int = 64, height: int = 48, *, color: tuple[int, int, int] = (0, 128, 0)) -> bytes:
    """A plain small JPEG; vary `color` to get different bytes (and sha256)."""
    return _save(Image.new("RGB", (width, height), color), "JPEG", quality=90)


def jpeg_exif_oriented(width: int = 200, height: int = 100) -> bytes:
    """EXIF orientation 6 (display rotated 90 degrees clockwise), GPS, Make, Model,
    DateTimeOriginal and a COM comment. Stored landscape with red on the left, so the upright
    picture is portrait with red on top."""
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = EXIF_MAKE
    exif[0x0110] = EXIF_MODEL
    exif[0x8769] = {0x9003: EXIF_DATETIME}
    exif[0x8825] = {1: "N", 2: (52.0, 22.0, 30.5), 3: "E", 4: (4.0, 53.0, 12.25)}
    return _save(red_left_image(width, height), "JPEG", quality=95, exif=exif, comment=JPEG_COMMENT)


def png_with_alpha(width: int = 120, height: int = 80) -> bytes:
    im = Image.new("RGBA", (width, height), (255, 0, 0, 255))
    im.paste((0, 0, 255, 0), (0, 0, width // 2, height))  # left half fully transparent
    return _save(im, "PNG")


def webp(width: int = 96, height: int = 64) -> bytes:
    return _save(red_left_image(width, height), "WEBP", quality=90)


def noisy_jpeg(width: int = 640, height: int = 480) -> bytes:
    """Noise compresses badly, so most of the file is entropy-coded scan data."""
    return _save(Image.effect_noise((width, height), 80).convert("RGB"), "JPEG", quality=92)


def truncated_jpeg(fraction: float = 0.8) -> bytes:
    """Passes Image.open() and verify(); only load() notices (docs/PITFALLS.md)."""
    data = noisy_jpeg()
    return data[: int(len(data) * fraction)]


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A ~70-byte PNG whose IHDR declares width x height RGB pixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def jpeg_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A small real JPEG whose SOF0 segment is patched to declare width x height."""
    data = bytearray(jpeg(16, 16))
    sof = data.index(b"\xff\xc0")
    # FFC0, length(2), precision(1), height(2), width(2)
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def text_file() -> bytes:
    return b"These are meeting notes, not a photo.\nLine two.\n"


def svg() -> bytes:
    return (
        b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" '
        b'height="10"><script>alert(1)</script><rect width="10" height="10"/></svg>\n'
    )


def png(width: int = 64, height: int = 48) -> bytes:
    return _save(red_left_image(width, height), "PNG")


@functools.cache
def jpeg_12mp(width: int = 4000, height: int = 3000) -> bytes:
    """A 12-megapixel JPEG with photo-like content (smooth gradients plus grain), ~2-4 MB.

    Made at 1/8 size and scaled up, so generation takes well under a second.
    """
    small = (width // 8, height // 8)
    r = Image.linear_gradient("L").resize(small)
    g = Image.radial_gradient("L").resize(small)
    b = Image.effect_noise(small, 60)
    base = Image.merge("RGB", (r, g, b)).resize((width, height), Image.Resampling.BILINEAR)
    grain = Image.effect_noise((width, height), 12).convert("RGB")
    photo = Image.blend(base, grain, 0.15)
    return _save(photo, "JPEG", quality=88)


def polyglot_jpeg() -> bytes:
    """A valid JPEG followed by an HTML document after its EOI."""
    return jpeg(color=(10, 20, 30)) + HTML_TAIL


def padded_jpeg(padding: int = 10) -> bytes:
    """A JPEG followed by a few zero bytes, which some encoders write: tolerated."""
    return jpeg(color=(40, 50, 60)) + b"\x00" * padding


def animated_gif() -> bytes:
    frames = [Image.new("P", (32, 32), i * 60) for i in range(3)]
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def animated_webp() -> bytes:
    frames = [Image.new("RGB", (32, 32), (i * 80, 0, 0)) for i in range(3)]
    return _save(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100)


def animated_png() -> bytes:
    frames = [Image.new("RGB", (32, 32), (0, i * 80, 0)) for i in range(3)]
    return _save(frames[0], "PNG", save_all=True, append_images=frames[1:], duration=100)


@dataclass(frozen=True)
class Sample:
    name: str
    filename: str
    filetype: str | None
    data: bytes
    status: str  # the capture status the service must record
    reason: str | None = None  # a substring of the reject reason


def samples() -> list[Sample]:
    """Every generated case with the verdict of services/camera (built on call: ~0.2 s)."""
    ok, no = "accepted", "rejected"
    jpg, pngt, wbp = "image/jpeg", "image/png", "image/webp"
    return [
        Sample("jpeg-exif-orientation-6", "rotated.jpg", jpg, jpeg_exif_oriented(), ok),
        Sample("png-alpha", "alpha.png", pngt, png_with_alpha(), ok),
        Sample("webp", "photo.webp", wbp, webp(), ok),
        Sample("jpeg-zero-padding", "padded.jpg", jpg, padded_jpeg(), ok),
        Sample("jpeg-no-filetype", "plain.jpg", None, jpeg(color=(1, 2, 3)), ok),
        Sample("truncated-jpeg", "cut.jpg", jpg, truncated_jpeg(), no, "truncated"),
        Sample("png-bomb-30000", "bomb.png", pngt, png_bomb(), no, "too large"),
        Sample("jpeg-bomb-30000", "bomb.jpg", jpg, jpeg_bomb(), no, "too large"),
        # 8000 x 8000 = 64 Mpx: between 1x and 2x the 50 Mpx limit, where Pillow only warns.
        Sample("png-bomb-1.3x", "big.png", pngt, png_bomb(8000, 8000), no, "64000000 pixels"),
        Sample("text-as-jpg", "notes.jpg", jpg, text_file(), no, "not a JPEG, PNG or WebP"),
        Sample("png-as-jpeg", "x.jpg", jpg, png(), no, "declared image/jpeg but the file is PNG"),
        Sample("polyglot-jpeg-html", "poly.jpg", jpg, polyglot_jpeg(), no, "trailing data"),
        Sample("animated-gif", "anim.gif", "image/gif", animated_gif(), no, "GIF is not accepted"),
        Sample("animated-webp", "anim.webp", wbp, animated_webp(), no, "animated"),
        Sample("animated-png", "anim.png", pngt, animated_png(), no, "animated"),
        Sample("svg-as-jpg", "vector.jpg", jpg, svg(), no, "SVG is not accepted"),
        Sample("empty-file", "empty.jpg", jpg, b"", no, "empty file"),
    ]  # fmt: skip


__all__ = [name for name in dir() if not name.startswith("_")]
