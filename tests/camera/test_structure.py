"""structure + the limits process_image applies before a decoder runs: segment, scan, chunk and
metadata counts, the file size cap and the decode memory budget."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from services.camera import imaging, structure
from tests.support import images


def _write(tmp_path: Path, data: bytes, name: str = "upload") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _with_comments(count: int) -> bytes:
    body = images.jpeg(64, 48)
    return body[:2] + b"\xff\xfe\x00\x03x" * count + body[2:]


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_with(extra: bytes) -> bytes:
    data = images.png(32, 24)
    idat = data.index(b"IDAT") - 4
    return data[:idat] + extra + data[idat:]


def _progressive(scans: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (90, 120, 150)).save(buf, "JPEG", progressive=True)
    data = buf.getvalue()
    last = data.rindex(b"\xff\xda")
    have = data.count(b"\xff\xda")
    return data[:-2] + data[last:-2] * (scans - have) + data[-2:]


def test_a_jpeg_with_many_comment_segments_is_accepted_up_to_the_limit(tmp_path: Path) -> None:
    limit = structure.MAX_JPEG_SEGMENTS
    ok = _write(tmp_path, _with_comments(limit - 20), "ok.jpg")
    assert imaging.process_image(ok).info.format == "JPEG"
    bomb = _write(tmp_path, _with_comments(limit + 1), "bomb.jpg")
    with pytest.raises(imaging.ImageRejected, match=f"more than {limit} segments") as rejected:
        imaging.process_image(bomb)
    assert rejected.value.format == "JPEG"


def test_a_progressive_jpeg_is_accepted_and_one_with_too_many_scans_is_not(
    tmp_path: Path,
) -> None:
    normal = _progressive(10)
    assert structure.walk(normal, "JPEG").scans == 10
    assert imaging.process_image(_write(tmp_path, normal, "p.jpg")).info.format == "JPEG"
    bomb = _write(tmp_path, _progressive(structure.MAX_JPEG_SCANS + 1), "scans.jpg")
    with pytest.raises(imaging.ImageRejected, match="scans"):
        imaging.process_image(bomb)


def test_a_progressive_jpeg_counts_its_coefficients_at_full_size() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (800, 600)).save(buf, "JPEG", progressive=True, subsampling=0)
    layout = structure.walk(buf.getvalue(), "JPEG")
    assert layout.coefficient_bytes == 3 * 100 * 75 * 128  # 3 components of 100x75 blocks
    assert structure.walk(images.jpeg(800, 600), "JPEG").coefficient_bytes == 0  # one scan


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (b"".join(_png_chunk(b"tEXt", b"k%d\x00v" % i) for i in range(1001)), "metadata chunks"),
        (_png_chunk(b"zTXt", b"k\x00\x00" + b"x" * (17 << 20)), "bytes of metadata"),
        (_png_chunk(b"eXIf", b"MM\x00*" + b"\x00" * (1 << 20)), "EXIF metadata is"),
    ],
    ids=["text-chunks", "metadata-bytes", "exif"],
)
def test_png_metadata_beyond_the_limits_is_refused(
    tmp_path: Path, extra: bytes, match: str
) -> None:
    with pytest.raises(imaging.ImageRejected, match=match):
        imaging.process_image(_write(tmp_path, _png_with(extra)))


def test_a_png_with_a_few_text_chunks_is_accepted(tmp_path: Path) -> None:
    extra = b"".join(_png_chunk(b"tEXt", b"k%d\x00v" % i) for i in range(20))
    assert imaging.process_image(_write(tmp_path, _png_with(extra))).info.format == "PNG"


def test_a_webp_exif_chunk_beyond_the_limit_is_refused(tmp_path: Path) -> None:
    data = images.webp()
    exif = b"EXIF" + struct.pack("<I", 2 << 20) + b"\x00" * (2 << 20)
    riff = data[12:] + exif
    bomb = b"RIFF" + struct.pack("<I", 4 + len(riff)) + b"WEBP" + riff
    with pytest.raises(imaging.ImageRejected, match="EXIF metadata is"):
        imaging.process_image(_write(tmp_path, bomb))


def test_a_file_over_the_size_cap_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = _write(tmp_path, images.jpeg(64, 48))
    size = path.stat().st_size
    with pytest.raises(imaging.ImageRejected, match=f"file is {size} bytes") as rejected:
        imaging.process_image(path, max_bytes=size - 1)
    assert "larger than" in rejected.value.reason
    assert imaging.process_image(path, max_bytes=size).info.format == "JPEG"


@pytest.mark.parametrize(
    ("mode", "per_pixel"), [("RGB", 4), ("RGBA", 8), ("P", 9), ("L", 1), ("I;16", 11)]
)
def test_the_decode_budget_counts_bytes_per_pixel_not_only_pixels(
    tmp_path: Path, mode: str, per_pixel: int
) -> None:
    im = Image.new(mode, (500, 400))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    path = _write(tmp_path, buf.getvalue())
    with Image.open(path) as opened:
        needed = imaging.decode_bytes(opened, "PNG", structure.Layout(None), 0)
    assert needed == 500 * 400 * per_pixel + imaging.DECODER_SLACK
    imaging.process_image(path, max_decode_bytes=needed)
    with pytest.raises(imaging.ImageRejected, match="MiB of memory") as rejected:
        imaging.process_image(path, max_decode_bytes=needed - 1)
    assert rejected.value.size == (500, 400)


def test_a_draft_mode_jpeg_needs_a_fraction_of_its_full_size() -> None:
    with Image.open(io.BytesIO(images.jpeg_12mp())) as im:
        im.draft("RGB", (400, 300))
        needed = imaging.decode_bytes(im, "JPEG", structure.Layout(None), 0)
    assert needed == 500 * 375 * 4 + imaging.DECODER_SLACK  # decoded at 1/8 scale


_MAGIC = {
    "JPEG": b"\xff\xd8\xff",
    "PNG": b"\x89PNG\r\n\x1a\n",
    "WEBP": b"RIFF\x00\x01\x00\x00WEBP",
    "HEIC": b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic",
}


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(fmt=st.sampled_from(sorted(_MAGIC)), tail=st.binary(max_size=400))
def test_any_bytes_walk_to_a_layout_or_a_short_reason(fmt: str, tail: bytes) -> None:
    data = _MAGIC[fmt] + tail
    try:
        layout = structure.walk(data, fmt)
    except structure.StructureRejected as exc:
        assert str(exc).isascii() and len(str(exc)) < 200
    else:
        assert layout.end is None or 0 < layout.end
