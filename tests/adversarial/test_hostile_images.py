"""Hostile images uploaded through tus to a real server: bombs, truncated files, polyglots with
HTML or ZIP tails, animations, SVG and HTML named .jpg, EXIF with GPS. Every one becomes exactly
one capture with the right status and reason; the bytes are kept exactly; a thumbnail carries no
GPS, EXIF or comment."""

from __future__ import annotations

import io
import zipfile

import pytest
from PIL import Image

from tests.adversarial.conftest import Hostile, Operator, captures_of, new_operator, stored
from tests.support import images
from tests.support.tus import capture_metadata


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("payload.html", "<script>alert(1)</script>")
    return buf.getvalue()


def _bmp() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "BMP")
    return buf.getvalue()


HTML_PAGE = b"<!doctype html><html><script>alert(document.cookie)</script></html>\n"

EXTRA = [
    images.Sample(
        "jpeg-zip-tail", "zip.jpg", "image/jpeg", images.jpeg(color=(7, 7, 70)) + _zip(),
        "rejected", "trailing data",
    ),
    images.Sample(
        "png-html-tail", "tail.png", "image/png", images.png(33, 21) + images.HTML_TAIL,
        "rejected", "trailing data",
    ),
    images.Sample(
        "html-named-jpg", "page.jpg", "image/jpeg", HTML_PAGE, "rejected",
        "not a JPEG, PNG or WebP",
    ),
    images.Sample(
        "svg-declared-svg", "v.jpg", "image/svg+xml", images.svg(), "rejected",
        "SVG is not accepted",
    ),
    images.Sample(
        "gifar", "g.jpg", "image/jpeg", b"GIF89a" + HTML_PAGE, "rejected", "GIF is not accepted"
    ),
    images.Sample("bmp", "b.jpg", "image/jpeg", _bmp(), "rejected", "BMP is not accepted"),
    images.Sample(
        "truncated-half", "half.jpg", "image/jpeg", images.truncated_jpeg(0.5), "rejected",
        "truncated",
    ),
    images.Sample(
        "jpeg-declared-png", "x.png", "image/png", images.jpeg(color=(70, 7, 7)), "rejected",
        "declared image/png but the file is JPEG",
    ),
]  # fmt: skip
SAMPLES = {s.name: s for s in [*images.samples(), *EXTRA]}


@pytest.fixture(scope="module")
def uploader(hostile: Hostile) -> Operator:
    return new_operator(hostile.server)


@pytest.mark.parametrize("sample", SAMPLES.values(), ids=SAMPLES.keys())
def test_a_hostile_image_becomes_one_capture_with_its_verdict(
    hostile: Hostile, uploader: Operator, sample: images.Sample
) -> None:
    metadata = capture_metadata(uploader.session_id, sample.filename)
    if sample.filetype:
        metadata["filetype"] = sample.filetype
    chunk = max(1, len(sample.data) // 2)
    url, last = uploader.tus.upload(sample.data, metadata, chunk=chunk)
    upload_id = url.rsplit("/", 1)[1]
    assert last.headers["Tuscam-Capture-Status"] == sample.status, last.headers
    if sample.reason:
        assert sample.reason in last.headers["Tuscam-Capture-Reason"]
    rows = captures_of(hostile.server, upload_id)
    assert len(rows) == 1
    assert rows[0].status == sample.status
    assert str(rows[0].id) == last.headers["Tuscam-Capture-Id"]
    assert stored(hostile, upload_id) == sample.data
    if sample.status == "rejected":
        assert rows[0].thumbnail_path is None
        assert sample.reason in (rows[0].reject_reason or "")
    # A lost response: HEAD repeats the verdict, no second capture.
    head = uploader.tus.head(url)
    assert head.headers["Tuscam-Capture-Id"] == last.headers["Tuscam-Capture-Id"]
    assert len(captures_of(hostile.server, upload_id)) == 1


def test_exif_gps_is_accepted_but_absent_from_the_thumbnail(
    hostile: Hostile, uploader: Operator
) -> None:
    data = images.jpeg_exif_oriented(240, 120)
    url, last = uploader.tus.upload(data, capture_metadata(uploader.session_id, "gps.jpg"))
    assert last.headers["Tuscam-Capture-Status"] == "accepted"
    capture_id = last.headers["Tuscam-Capture-Id"]
    api = hostile.server.api(uploader.token)
    assert api.get(f"/api/captures/{capture_id}").json()["exif"].get("gps") is True
    thumb = api.get(f"/captures/{capture_id}/thumbnail")
    assert thumb.status_code == 200
    with Image.open(io.BytesIO(thumb.content)) as im:
        exif = im.getexif()
        assert 0x8825 not in exif and not exif.get_ifd(0x8825)
        assert len(exif) == 0
        assert "comment" not in im.info
        assert im.size[0] < im.size[1]  # upright (orientation 6 applied)
    assert images.JPEG_COMMENT not in thumb.content
    assert b"GPS" not in thumb.content and images.EXIF_MAKE.encode() not in thumb.content
    # The original is kept byte-exact, GPS and all.
    assert api.get(f"/captures/{capture_id}/original").content == data
