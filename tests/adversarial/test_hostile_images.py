"""Hostile images uploaded through tus to a real server: bombs, truncated files, polyglots with
HTML or ZIP tails, animations, SVG and HTML named .jpg, EXIF with GPS. Every one becomes exactly
one capture with the right status and reason; the bytes are kept exactly; a thumbnail carries no
GPS, EXIF or comment."""

from __future__ import annotations

import io
import os
import struct
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from PIL import Image

from tests.adversarial.conftest import (
    Hostile,
    Operator,
    captures_of,
    hostile_server,
    new_operator,
    stored,
)
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


# --- images built to exhaust memory or time (issue 16, finding 2) -----------------------------
#
# Each is uploaded whole through tus to a server with the default image limits; the resident
# memory of every process in gunicorn's process group is sampled while the last PATCH (the one
# whose finish hook decodes the image) runs. No upload may add more than 256 MiB or take more
# than 15 s, and each becomes a rejected capture with a reason a person can act on.

MIB = 1 << 20
RSS_BUDGET = 256 * MIB
TIME_BUDGET = 15.0
HOSTILE_BYTES = 34 * MIB  # under the default TUSCAM_MAX_IMAGE_BYTES: the content must be refused


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def _png(width: int, height: int, *, depth: int, color: int, extra: bytes = b"") -> bytes:
    """A real, complete PNG of width x height zero pixels, compressed as it is generated."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color]
    row = b"\x00" * (1 + width * channels * depth // 8)
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + extra
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def com_segment_jpeg() -> bytes:
    """A valid small JPEG with millions of empty COM segments before its frame."""
    body = images.jpeg(64, 48)
    count = (HOSTILE_BYTES - len(body)) // 4
    return body[:2] + b"\xff\xfe\x00\x02" * count + body[2:]


def many_text_chunks_png() -> bytes:
    """A 64x48 PNG with about 1.4 million distinct tEXt chunks before its pixels."""
    chunks = b"".join(_png_chunk(b"tEXt", b"k%07d\x00v" % i) for i in range(1_400_000))
    return _png(64, 48, depth=8, color=2, extra=chunks)


def huge_exif_png() -> bytes:
    """A 64x48 PNG whose eXIf chunk gives the Make tag 7 million distinct LONG values (28 MB)."""
    count = 7_000_000
    ifd = struct.pack(">HHHII", 1, 0x010F, 4, count, 26) + struct.pack(">I", 0)
    values = struct.pack(f">{count}I", *range(1_000_000, 1_000_000 + count))
    exif = b"MM\x00*" + struct.pack(">I", 8) + ifd + values
    return _png(64, 48, depth=8, color=2, extra=_png_chunk(b"eXIf", exif))


def many_scans_jpeg(scans: int = 20_000) -> bytes:
    """A progressive 4000x4000 JPEG whose last scan is repeated thousands of times."""
    buf = io.BytesIO()
    Image.new("RGB", (4000, 4000), (90, 120, 150)).save(buf, "JPEG", progressive=True)
    data = buf.getvalue()
    last_scan = data.rindex(b"\xff\xda")
    return data[:-2] + data[last_scan:-2] * scans + data[-2:]


def huge_webp() -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (7000, 7000), (10, 20, 30, 255)).save(buf, "WEBP", lossless=True, method=0)
    return buf.getvalue()


def huge_heic() -> bytes:
    import pillow_heif

    heif = pillow_heif.from_pillow(Image.new("RGB", (6000, 5000), (30, 60, 90)))
    buf = io.BytesIO()
    heif.save(buf, quality=10)
    return buf.getvalue()


@dataclass(frozen=True)
class Hog:
    name: str
    filename: str
    build: Callable[[], bytes]
    reason: str  # a substring of the reject reason
    status: str = "rejected"


HOGS = [
    Hog("jpeg-com-segments", "com.jpg", com_segment_jpeg, "segments"),
    Hog("png-7000x7000-rgba", "big.png", lambda: _png(7000, 7000, depth=8, color=6), "memory"),
    Hog("png-7000x7000-16bit-grey", "deep.png", lambda: _png(7000, 7000, depth=16, color=0),
        "memory"),
    Hog("png-text-chunks", "chunks.png", many_text_chunks_png, "chunks"),
    Hog("png-huge-exif", "exif.png", huge_exif_png, "metadata"),
    Hog("jpeg-progressive-scans", "scans.jpg", many_scans_jpeg, "scans"),
    Hog("webp-7000x7000", "big.webp", huge_webp, "memory"),
    Hog("heic-6000x5000", "big.heic", huge_heic, "memory"),
    # Just under the decode budget: accepted, and the budget's estimate is honest.
    Hog("png-5000x5000-rgba", "fits.png", lambda: _png(5000, 5000, depth=8, color=6), "",
        "accepted"),
]  # fmt: skip


def _group_rss(pgid: int) -> int:
    """Resident bytes of every process in the process group (gunicorn, its workers, children)."""
    total = 0
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
            if int(fields[2]) != pgid:
                continue
            with open(f"/proc/{entry.name}/statm", "rb") as fh:
                total += int(fh.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue  # the process ended between the listing and the read
    return total


class RssSampler:
    """The largest group RSS seen while the block runs, sampled every 10 ms by a thread."""

    def __init__(self, pgid: int) -> None:
        self.pgid = pgid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _group_rss(self.pgid))
            self._stop.wait(0.01)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _group_rss(self.pgid))


@pytest.fixture(scope="module")
def roomy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    """A server whose tus limit admits uploads of the sizes here; image limits at their defaults."""
    env = {"TUSCAM_MAX_UPLOAD_BYTES": str(64 * MIB)}
    with hostile_server(tmp_path_factory.mktemp("roomy"), env=env) as h:
        yield h


@pytest.fixture(scope="module")
def warmed(roomy: Hostile) -> Operator:
    """An operator, after legitimate images of every format went through each worker (the first
    decode of a format loads code and caches: that is not the memory a hostile image adds)."""
    op = new_operator(roomy.server)
    warm = [images.jpeg_12mp(), images.png(640, 480), images.webp(640, 480), images.noisy_jpeg()]
    for round_ in range(3):
        for i, data in enumerate(warm):
            metadata = capture_metadata(op.session_id, f"warm-{round_}-{i}")
            _url, last = op.tus.upload(data + b"\x00" * round_, metadata, chunk=8 * MIB)
            assert last.headers["Tuscam-Capture-Status"] == "accepted", last.headers
    return op


@pytest.mark.parametrize("hog", HOGS, ids=[h.name for h in HOGS])
def test_a_hostile_image_is_refused_within_memory_and_time(
    roomy: Hostile, warmed: Operator, hog: Hog
) -> None:
    data = hog.build()
    assert len(data) < 64 * MIB
    op = warmed
    url = op.tus.create(len(data), capture_metadata(op.session_id, hog.filename))
    offset = 0
    while offset < len(data) - 1:  # all but the last byte: the finish hook has not run yet
        r = op.tus.patch(url, offset, data[offset : min(offset + 8 * MIB, len(data) - 1)])
        assert r.status_code == 204, (r.status_code, r.text)
        offset = int(r.headers["Upload-Offset"])
    pgid = roomy.server.proc.pid
    time.sleep(0.3)  # let the previous requests' memory settle
    baseline = _group_rss(pgid)
    started = time.monotonic()
    with RssSampler(pgid) as sampler:
        last = op.tus.patch(url, offset, data[offset:])
    elapsed = time.monotonic() - started
    added = sampler.peak - baseline
    print(f"\n{hog.name}: {len(data)} bytes, +{added / MIB:.0f} MiB, {elapsed:.2f} s")
    assert last.status_code == 204, (last.status_code, last.text)
    assert added < RSS_BUDGET, f"{hog.name} added {added / MIB:.0f} MiB"
    assert elapsed < TIME_BUDGET, f"{hog.name} took {elapsed:.1f} s"
    assert last.headers["Tuscam-Capture-Status"] == hog.status, last.headers
    rows = captures_of(roomy.server, url.rsplit("/", 1)[1])
    assert [r.status for r in rows] == [hog.status]
    if hog.status == "rejected":
        reason = last.headers["Tuscam-Capture-Reason"]
        assert hog.reason in reason, reason
        assert rows[0].thumbnail_path is None
