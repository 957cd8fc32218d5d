"""imaging: pure Pillow checks and thumbnails, without a database."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image

from services.camera import imaging
from tests.support import images

from .helpers import jpeg_segments


def _write(tmp_path: Path, data: bytes, name: str = "upload") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_save_thumbnail_drops_exif_and_comment_even_when_the_image_carries_them() -> None:
    with Image.open(io.BytesIO(images.jpeg_exif_oriented())) as im:
        im.load()
        assert "comment" in im.info and "exif" in im.info
        out = io.BytesIO()
        imaging.save_thumbnail(im, out)
        assert "comment" in im.info  # the caller's image is not changed
    assert not {0xE1, 0xFE} & jpeg_segments(out.getvalue())


def test_draft_decodes_a_12_megapixel_jpeg_at_reduced_scale(tmp_path: Path) -> None:
    path = _write(tmp_path, images.jpeg_12mp())
    fast = imaging.process_image(path, declared_type="image/jpeg", draft=True)
    full = imaging.process_image(path, declared_type="image/jpeg", draft=False)
    assert fast.thumbnail.size == full.thumbnail.size == (400, 300)
    assert (fast.info.width, fast.info.height) == (4000, 3000)


def test_a_bomb_between_one_and_two_times_the_limit_is_rejected_not_just_warned(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path, images.png_bomb(300, 300))  # 90,000 pixels
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # prove the rejection does not rely on -W error
        with pytest.raises(imaging.ImageRejected, match="90000 pixels, more than 60000"):
            imaging.process_image(path, max_pixels=60_000)


def test_a_file_exactly_at_the_pixel_limit_is_accepted(tmp_path: Path) -> None:
    path = _write(tmp_path, images.jpeg(100, 50))
    assert imaging.process_image(path, max_pixels=5000).info.width == 100


@pytest.mark.parametrize(
    ("tail", "rejected"),
    [
        (b"", False),
        (b"\x00" * 10, False),
        (b"\r\n", False),
        (b"abc", False),  # a few stray bytes are tolerated
        (b"\x00" * 5000, True),
        (b"<script>", True),
        (b"\xff\xd8\xff" + b"x" * 100, True),
    ],
)
@pytest.mark.parametrize("maker", [images.jpeg, images.png, images.webp])
def test_trailing_data_after_the_image_end(
    tmp_path: Path, maker: Callable[[], bytes], tail: bytes, rejected: bool
) -> None:
    path = _write(tmp_path, maker() + tail)
    if rejected:
        with pytest.raises(imaging.ImageRejected, match=f"trailing data .*{len(tail)} bytes"):
            imaging.process_image(path)
    else:
        imaging.process_image(path)


def test_the_jpeg_end_is_found_past_an_embedded_thumbnail(tmp_path: Path) -> None:
    # APP segments may hold a whole JPEG (SOI..EOI, like an EXIF thumbnail); the walk skips
    # them by segment length instead of stopping at the first EOI.
    inner, outer = images.jpeg(8, 8), images.jpeg(color=(200, 10, 10))
    app15 = b"\xff\xef" + (len(inner) + 2).to_bytes(2, "big") + inner
    data = outer[:2] + app15 + outer[2:]
    assert data.count(b"\xff\xd9") == 2
    path = _write(tmp_path, data)
    assert imaging.trailing_data(path, "JPEG") == 0
    assert imaging.process_image(path).info.format == "JPEG"


@pytest.mark.parametrize(
    ("declared", "fmt", "ok"),
    [
        (None, "PNG", True),
        ("", "PNG", True),
        ("application/octet-stream", "JPEG", True),
        ("image/jpeg", "JPEG", True),
        ("image/jpg", "JPEG", True),
        ("image/png", "PNG", True),
        ("image/webp", "WEBP", True),
        ("image/jpeg", "PNG", False),
        ("image/png", "WEBP", False),
        ("text/html", "JPEG", False),
    ],
)
def test_declared_type_must_match_the_real_format(declared: str | None, fmt: str, ok: bool) -> None:
    if ok:
        imaging.check_declared_type(declared, fmt)
    else:
        with pytest.raises(imaging.ImageRejected, match=f"declared {declared} but the file is"):
            imaging.check_declared_type(declared, fmt)


def test_a_bmp_is_refused_before_decoding(tmp_path: Path) -> None:
    path = _write(tmp_path, images._save(Image.new("RGB", (4, 4)), "BMP"))
    with pytest.raises(imaging.ImageRejected, match="BMP is not accepted"):
        imaging.process_image(path)


@pytest.mark.parametrize(
    ("value", "offset", "expected"),
    [
        ("2024:05:06 07:08:09", None, datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)),
        ("2024:05:06 07:08:09", "+02:00", datetime(2024, 5, 6, 5, 8, 9, tzinfo=UTC)),
        ("2024:05:06 07:08:09", "-05:30", datetime(2024, 5, 6, 12, 38, 9, tzinfo=UTC)),
        ("0000:00:00 00:00:00", None, None),
        ("    :  :     :  :  ", None, None),
        (None, None, None),
    ],
)
def test_exif_dates_become_utc_timestamps(
    value: str | None, offset: str | None, expected: datetime | None
) -> None:
    assert imaging.parse_exif_datetime(value, offset) == expected


def test_a_grayscale_16_bit_png_gets_a_thumbnail(tmp_path: Path) -> None:
    im = Image.new("I;16", (40, 20), 40000)
    path = _write(tmp_path, images._save(im, "PNG"))
    thumb = imaging.process_image(path).thumbnail
    assert thumb.mode == "RGB" and 140 < thumb.getpixel((5, 5))[0] < 170
