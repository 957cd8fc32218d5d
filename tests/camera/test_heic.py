"""HEIC/HEIF photos (iPhones): accepted with an upright thumbnail and their EXIF orientation as
for JPEG, through the service and through tus on a live server; AVIF is not accepted."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pillow_heif
import pytest
from PIL import Image
from sqlalchemy.orm import Session

from services.camera import imaging
from services.camera.capture_store import CaptureStore
from services.models import Capture
from tests.support import images
from tests.support.server import LiveServer, start_live_server
from tests.support.tus import TusClient, capture_metadata

from .conftest import SaveFn

RED, BLUE = (255, 0, 0), (0, 0, 255)


def heic(width: int = 240, height: int = 120, *, orientation: int = 6, brand: str = "") -> bytes:
    """A real HEIC (x265): the stored image has red on its left half, blue on its right, and
    EXIF orientation 6 (turn 90 degrees clockwise to show): upright, red is on top."""
    im = Image.new("RGB", (width, height), BLUE)
    im.paste(RED, (0, 0, width // 2, height))
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = images.EXIF_MAKE
    buf = io.BytesIO()
    im.save(buf, "HEIF", exif=exif.tobytes(), quality=90)
    return buf.getvalue()


def _is(pixel: tuple[int, ...], color: tuple[int, int, int]) -> bool:
    return all(abs(a - b) < 40 for a, b in zip(pixel, color, strict=False))


def assert_upright(thumbnail: Image.Image) -> None:
    width, height = thumbnail.size
    assert height > width  # turned: the stored image is landscape
    assert _is(thumbnail.getpixel((width // 2, 5)), RED)
    assert _is(thumbnail.getpixel((width // 2, height - 5)), BLUE)


def test_sniffing_tells_heic_heif_and_avif_apart() -> None:
    def ftyp(major: bytes, *compatible: bytes) -> bytes:
        body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
        return (8 + len(body)).to_bytes(4, "big") + b"ftyp" + body

    assert imaging.sniff_format(heic()) == "HEIC"
    assert imaging.sniff_format(ftyp(b"mif1", b"mif1", b"heic")) == "HEIC"
    assert imaging.sniff_format(ftyp(b"mif1", b"mif1")) == "HEIF"
    assert imaging.sniff_format(ftyp(b"avif", b"mif1", b"avif")) is None
    assert imaging.sniff_format(ftyp(b"mif1", b"mif1", b"avif")) is None
    assert imaging.sniff_format(ftyp(b"isom", b"mp41")) is None
    assert "AVIF" in imaging.unsupported_reason(ftyp(b"avif", b"mif1"))


def test_a_heic_photo_is_accepted_with_its_orientation_and_an_upright_thumbnail(
    tmp_path: Path,
) -> None:
    path = tmp_path / "IMG_0001.HEIC"
    path.write_bytes(heic())
    processed = imaging.process_image(path, declared_type="image/heic")
    info = processed.info
    assert (info.format, info.width, info.height) == ("HEIC", 240, 120)  # as stored
    assert info.orientation == 6
    assert info.exif["orientation"] == 6 and info.exif["make"] == images.EXIF_MAKE
    assert_upright(processed.thumbnail)
    assert processed.thumbnail.info == {}


@pytest.mark.parametrize(
    ("declared", "ok"),
    [("image/heic", True), ("image/heif", True), ("", True), ("image/jpeg", False)],
)
def test_a_heic_may_be_declared_heic_or_heif(tmp_path: Path, declared: str, ok: bool) -> None:
    path = tmp_path / "x.heic"
    path.write_bytes(heic(orientation=1))
    if ok:
        assert imaging.process_image(path, declared_type=declared).info.format == "HEIC"
    else:
        with pytest.raises(imaging.ImageRejected, match="declared image/jpeg but the file is HEIC"):
            imaging.process_image(path, declared_type=declared)


def test_a_heic_goes_through_the_same_memory_budget(tmp_path: Path) -> None:
    path = tmp_path / "big.heic"
    path.write_bytes(heic(640, 480, orientation=1))
    with pytest.raises(imaging.ImageRejected, match="MiB of memory"):
        imaging.process_image(path, max_decode_bytes=4 << 20)


def test_the_service_stores_a_heic_original_as_heic(
    save: SaveFn, db: Session, store: CaptureStore
) -> None:
    data = heic()
    result = save(data, filename="IMG_0001.HEIC", filetype="image/heic")
    assert result.status == "accepted", result.reason
    capture = db.get(Capture, result.capture_id)
    assert capture is not None
    assert capture.format == "HEIC" and capture.original_path.endswith(".heic")
    assert imaging.MIME_TYPES[capture.format] == "image/heic"
    assert store.path(capture.original_path).read_bytes() == data
    with Image.open(store.path(capture.thumbnail_path)) as thumb:
        assert thumb.format == "JPEG"
        assert_upright(thumb.convert("RGB"))


def test_a_non_heic_heif_is_served_as_heif(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), RED).save(buf, "HEIF")
    data = bytearray(buf.getvalue())
    data[8:12] = b"mif1"  # major brand
    data = data.replace(b"heic", b"mif1", 2)  # compatible brands
    path = tmp_path / "x.heif"
    path.write_bytes(bytes(data))
    assert imaging.sniff_format(bytes(data)) == "HEIF"
    assert imaging.process_image(path, declared_type="image/heif").info.format == "HEIF"
    assert imaging.MIME_TYPES["HEIF"] == "image/heif"


# -- through tus on a live server ---------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with start_live_server(tmp_path_factory.mktemp("heic"), workers=1, threads=2) as live:
        yield live


def test_a_heic_photo_through_tus_becomes_an_accepted_capture_with_an_upright_thumbnail(
    server: LiveServer,
) -> None:
    _name, token = server.new_operator()
    _assessment, session_id = server.new_capture_session(token)
    data = heic()
    metadata = capture_metadata(session_id, "IMG_0001.HEIC", filetype="image/heic")
    _url, last = TusClient(server.url, token).upload(data, metadata, chunk=len(data) // 2)
    assert last.headers["Tuscam-Capture-Status"] == "accepted", last.headers
    capture_id = last.headers["Tuscam-Capture-Id"]
    api = server.api(token)
    record = api.get(f"/api/captures/{capture_id}").json()
    assert record["format"] == "HEIC"
    assert record["exif"]["orientation"] == 6
    thumb = api.get(f"/captures/{capture_id}/thumbnail")
    assert thumb.status_code == 200 and thumb.headers["Content-Type"] == "image/jpeg"
    with Image.open(io.BytesIO(thumb.content)) as im:
        assert_upright(im.convert("RGB"))
    original = api.get(f"/captures/{capture_id}/original")
    assert original.status_code == 200 and original.content == data
    assert original.headers["Content-Type"] == "image/heic"


def test_pillow_heif_can_write_what_the_tests_upload() -> None:
    assert pillow_heif.libheif_info()["HEIF"], "no HEVC encoder: the HEIC tests cannot run"
