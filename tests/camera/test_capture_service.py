"""CameraCaptureService: every finished upload becomes a validated capture, exactly once."""

from __future__ import annotations

import errno
import hashlib
import io
import os
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, sessionmaker

from services.camera import imaging
from services.camera.capture_service import (
    CameraCaptureService,
    FinishedUpload,
    delete_capture_files,
)
from services.camera.capture_store import CaptureStore
from services.models import Capture
from tests.support import images

from .conftest import SaveFn, World
from .helpers import jpeg_segments, open_image, stored_files

SAMPLES = images.samples()


def _count(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(Capture))


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.name for s in SAMPLES])
def test_each_generated_image_gets_its_verdict_and_its_bytes_kept(
    sample: images.Sample, save: SaveFn, db: Session, store: CaptureStore
) -> None:
    result = save(sample.data, filename=sample.filename, filetype=sample.filetype)

    capture = db.get(Capture, result.capture_id)
    assert capture is not None
    assert (result.status, capture.status) == (sample.status, sample.status)
    assert capture.sha256 == hashlib.sha256(sample.data).hexdigest()
    assert capture.bytes == len(sample.data)
    assert capture.filename == sample.filename
    # The original is kept byte-exact either way, so a reviewer can inspect a rejected file.
    assert store.path(capture.original_path).read_bytes() == sample.data
    assert capture.original_path.startswith(f"originals/{capture.sha256[:2]}/")
    if sample.status == "accepted":
        assert result.reason is None and capture.reject_reason is None
        thumb = open_image(store.path(capture.thumbnail_path))
        assert thumb.format == "JPEG" and max(thumb.size) <= 400
        assert capture.format in ("JPEG", "PNG", "WEBP")
    else:
        assert sample.reason and sample.reason in result.reason
        assert result.reason == capture.reject_reason
        assert result.reason.isascii() and len(result.reason) <= 200
        assert capture.thumbnail_path is None
        assert not list(store.root.glob("thumbnails/**/*.jpg"))
    assert stored_files(store.root / "tmp") == []


def test_the_exif_6_photo_gets_an_upright_portrait_thumbnail_with_red_on_top(
    save: SaveFn, db: Session, store: CaptureStore
) -> None:
    result = save(images.jpeg_exif_oriented(200, 100))
    capture = db.get(Capture, result.capture_id)

    thumb = open_image(store.path(capture.thumbnail_path))
    assert thumb.size == (100, 200)  # stored 200x100 landscape, shown rotated 90 degrees
    top, bottom = thumb.getpixel((50, 40)), thumb.getpixel((50, 160))
    assert top[0] > 200 and top[2] < 60, top  # red
    assert bottom[2] > 200 and bottom[0] < 60, bottom  # blue
    assert (capture.width, capture.height) == (200, 100)
    assert capture.exif == {
        "orientation": 6,
        "make": images.EXIF_MAKE,
        "model": images.EXIF_MODEL,
        "datetime_original": images.EXIF_DATETIME,
        "gps": True,
    }
    assert capture.taken_at.isoformat() == "2024-05-06T07:08:09+00:00"


def test_the_thumbnail_carries_no_exif_gps_or_comment(
    save: SaveFn, db: Session, store: CaptureStore
) -> None:
    original = images.jpeg_exif_oriented()
    assert {0xE1, 0xFE} <= jpeg_segments(original)  # the source has APP1 (EXIF) and COM
    capture = db.get(Capture, save(original).capture_id)

    data = store.path(capture.thumbnail_path).read_bytes()
    assert not {0xE1, 0xFE} & jpeg_segments(data)
    assert images.JPEG_COMMENT not in data and images.EXIF_MAKE.encode() not in data
    with Image.open(io.BytesIO(data)) as thumb:
        assert not thumb.getexif()
        assert "comment" not in thumb.info and "exif" not in thumb.info


def test_a_12_megapixel_photo_gets_a_400_pixel_thumbnail(
    save: SaveFn, db: Session, store: CaptureStore
) -> None:
    capture = db.get(Capture, save(images.jpeg_12mp()).capture_id)
    assert capture.status == "accepted" and (capture.width, capture.height) == (4000, 3000)
    assert open_image(store.path(capture.thumbnail_path)).size == (400, 300)


def test_the_png_alpha_is_flattened_on_white(
    save: SaveFn, db: Session, store: CaptureStore
) -> None:
    capture = db.get(Capture, save(images.png_with_alpha(), filetype="image/png").capture_id)
    thumb = open_image(store.path(capture.thumbnail_path))
    assert thumb.mode == "RGB"
    assert min(thumb.getpixel((5, 40))) > 240  # transparent half -> white
    assert thumb.getpixel((115, 40))[0] > 200  # opaque red stays red


def test_the_capture_row_holds_what_the_hook_passed(
    save: SaveFn, db: Session, world: World
) -> None:
    result = save(
        images.jpeg(),
        upload_id="a" * 32,
        session_id=world.assigned_session.id,
        capture_trigger="timer",
        capture_type="close-up",
        camera_settings_snapshot={"zoom": 2},
        assessment_id=world.assessment.id,
        filename="IMG_1.jpg",
        uploaded_by_id=world.operator.id,
    )
    capture = db.get(Capture, result.capture_id)
    assert capture.upload_id == "a" * 32
    assert capture.session_id == world.assigned_session.id
    assert (capture.capture_trigger, capture.capture_type) == ("timer", "close-up")
    assert capture.camera_settings == {"zoom": 2}
    assert capture.declared_type == "image/jpeg"
    assert capture.uploaded_by_id == world.operator.id


def test_the_finish_hook_called_twice_records_one_capture(
    save: SaveFn, db: Session, store: CaptureStore, upload_file
) -> None:
    path = upload_file(images.jpeg())
    first = save(b"", file_data=path, upload_id="b" * 32)
    files = stored_files(store.root)
    again = save(b"", file_data=path, upload_id="b" * 32)
    assert again == first
    assert _count(db) == 1
    assert stored_files(store.root) == files


def test_with_a_session_cache_each_session_is_looked_up_once(
    db: Session, store: CaptureStore, world: World, upload_file
) -> None:
    cache: dict[int, int] = {}
    service = CameraCaptureService(db, store, session_cache=cache)
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        statements.append(statement)

    engine = db.get_bind()
    event.listen(engine, "before_cursor_execute", seen)
    try:
        for n, color in enumerate([(200, 0, 0), (0, 200, 0)]):
            result = service.save_capture(
                world.open_session.id,
                upload_file(images.jpeg(color=color)),
                upload=FinishedUpload(upload_id=f"{n}" * 32, filename="x.jpg"),
            )
            assert result.status == "accepted"
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert cache == {world.open_session.id: world.open_session.assessment_id}
    assert sum("FROM capture_sessions" in s for s in statements) == 1


def test_a_rejected_upload_is_idempotent_too(save: SaveFn, db: Session) -> None:
    first = save(images.text_file(), upload_id="c" * 32)
    assert save(images.jpeg(), upload_id="c" * 32) == first  # the first verdict stands
    assert _count(db) == 1


def test_the_upload_is_hard_linked_when_on_the_same_filesystem(
    save: SaveFn, db: Session, store: CaptureStore, upload_file
) -> None:
    path = upload_file(images.jpeg())
    capture = db.get(Capture, save(b"", file_data=path).capture_id)
    assert os.path.samefile(path, store.path(capture.original_path))


def test_the_upload_is_copied_when_a_hard_link_is_impossible(
    save: SaveFn, db: Session, store: CaptureStore, upload_file, monkeypatch
) -> None:
    path = upload_file(images.jpeg())
    real_link = os.link

    def cross_device(src, dst, *a, **kw):  # noqa: ANN001, ANN002, ANN003
        if Path(src) == path:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_link(src, dst, *a, **kw)

    monkeypatch.setattr(os, "link", cross_device)
    capture = db.get(Capture, save(b"", file_data=path).capture_id)
    stored = store.path(capture.original_path)
    assert not os.path.samefile(path, stored)
    assert stored.read_bytes() == path.read_bytes()


def test_a_stream_is_accepted_as_well_as_a_path(
    save: SaveFn, db: Session, store: CaptureStore
) -> None:
    data = images.webp()
    result = save(b"", file_data=io.BytesIO(data), filetype="image/webp")
    capture = db.get(Capture, result.capture_id)
    assert result.status == "accepted"
    assert store.path(capture.original_path).read_bytes() == data
    assert capture.original_path.endswith(".webp")


def test_a_sha256_mismatch_is_rejected_and_kept(
    save: SaveFn, db: Session, store: CaptureStore
) -> None:
    data = images.jpeg()
    actual = hashlib.sha256(data).hexdigest()
    result = save(data, expected_sha256="0" * 64)
    assert result.status == "rejected"
    assert result.reason == f"sha256 mismatch: expected {'0' * 64}, got {actual}"
    capture = db.get(Capture, result.capture_id)
    assert store.path(capture.original_path).read_bytes() == data
    assert capture.thumbnail_path is None


def test_a_matching_sha256_is_accepted(save: SaveFn) -> None:
    data = images.jpeg()
    assert save(data, expected_sha256=hashlib.sha256(data).hexdigest()).status == "accepted"


# -- duplicates -------------------------------------------------------------------------------


def test_the_same_bytes_twice_in_a_session_are_a_duplicate_sharing_the_files(
    save: SaveFn, db: Session, store: CaptureStore
) -> None:
    data = images.jpeg_exif_oriented()
    first = save(data)
    files = stored_files(store.root)
    second = save(data, filename="again.jpg")

    assert (second.status, second.reason) == ("duplicate", None)
    dup, original = db.get(Capture, second.capture_id), db.get(Capture, first.capture_id)
    assert dup.duplicate_of_id == first.capture_id
    assert dup.original_path == original.original_path
    assert dup.thumbnail_path == original.thumbnail_path
    assert stored_files(store.root) == files  # no second copy


def test_the_same_bytes_in_another_session_are_accepted_again(
    save: SaveFn, world: World, store: CaptureStore
) -> None:
    data = images.jpeg()
    save(data)
    files = stored_files(store.root)
    other = save(data, session_id=world.assigned_session.id)
    assert other.status == "accepted"
    assert stored_files(store.root) == files  # content-addressed: still one file


def test_a_copy_of_a_rejected_upload_is_not_a_duplicate(save: SaveFn) -> None:
    data = images.polyglot_jpeg()
    assert save(data).status == "rejected"
    assert save(data).status == "rejected"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"%PDF-1.7\n" + os.urandom(200),
        b"GIF89a" + os.urandom(200),
        b"\xef\xbb\xbf<?xml version='1.0'?><svg xmlns='http://www.w3.org/2000/svg'/>",
        b"\x00\x00\x00\x18ftypavif\x00\x00\x00\x00mif1avif" + os.urandom(200),
        os.urandom(3000).replace(b"\xff", b"\x00"),
    ],
    ids=["empty", "pdf", "gif", "svg", "avif", "random"],
)
def test_a_file_that_is_no_photo_by_its_magic_bytes_is_rejected_as_pillow_would(
    save: SaveFn, db: Session, store: CaptureStore, upload_file, monkeypatch, data: bytes
) -> None:
    path = upload_file(data)
    with pytest.raises(imaging.ImageRejected) as pillow:
        imaging.process_image(path)

    def no_twin_lookup(*args: object, **kw: object) -> None:
        raise AssertionError("no accepted capture can share bytes that are no image")

    monkeypatch.setattr(CameraCaptureService, "_accepted_twin", no_twin_lookup)
    result = save(data, filetype="image/jpeg")
    capture = db.get(Capture, result.capture_id)
    assert (result.status, result.reason) == ("rejected", pillow.value.reason)
    assert (capture.format, capture.width, capture.height) == (None, None, None)
    assert capture.original_path.endswith(".bin")
    assert store.path(capture.original_path).read_bytes() == data


# -- failures leave nothing behind --------------------------------------------------------------


def test_a_failing_thumbnail_writer_leaves_no_row_and_no_file(
    save: SaveFn, db: Session, store: CaptureStore, monkeypatch
) -> None:
    def broken(*_a: object, **_kw: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(imaging, "save_thumbnail", broken)
    with pytest.raises(OSError, match="No space"):
        save(images.jpeg(), upload_id="d" * 32)
    assert _count(db) == 0
    assert stored_files(store.root) == []
    monkeypatch.undo()
    assert save(images.jpeg(), upload_id="d" * 32).status == "accepted"  # a retry works


def test_a_failing_commit_leaves_no_row_and_no_file(
    save: SaveFn, db: Session, store: CaptureStore, monkeypatch
) -> None:
    def broken_commit() -> None:
        db.flush()  # the row reaches the database, then the commit fails
        raise RuntimeError("connection lost during COMMIT")

    monkeypatch.setattr(db, "commit", broken_commit)
    with pytest.raises(RuntimeError, match="connection lost"):
        save(images.jpeg_exif_oriented())
    monkeypatch.undo()
    assert _count(db) == 0
    assert stored_files(store.root) == []


def test_a_failure_keeps_files_that_another_capture_already_uses(
    save: SaveFn, db: Session, world: World, store: CaptureStore, monkeypatch
) -> None:
    data = images.jpeg()
    save(data)  # accepted in the open session: original + thumbnail exist
    files = stored_files(store.root)
    monkeypatch.setattr(db, "commit", lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError):
        save(data, session_id=world.assigned_session.id)
    monkeypatch.undo()
    assert stored_files(store.root) == files


def test_two_processes_finishing_the_same_upload_record_it_once(
    sessions: sessionmaker[Session], world: World, store: CaptureStore, upload_file, monkeypatch
) -> None:
    """Process A records the upload while B is deciding; B loses the insert race."""
    path = upload_file(images.jpeg())
    with sessions() as db_a, sessions() as db_b:
        service_b = CameraCaptureService(db_b, store)
        real_classify = service_b._classify
        lookups = []

        def classify_racing(*args: object) -> None:
            # A finishes in between B's start and B's insert.
            winner = CameraCaptureService(db_a, store).save_capture(
                world.open_session.id, path, upload=FinishedUpload("e" * 32, "a.jpg")
            )
            assert winner.status == "accepted"
            real_classify(*args)  # type: ignore[arg-type]

        real_lookup = service_b._by_upload_id
        monkeypatch.setattr(service_b, "_classify", classify_racing)
        monkeypatch.setattr(
            service_b, "_by_upload_id", lambda uid: lookups.append(uid) or real_lookup(uid)
        )
        result = service_b.save_capture(
            world.open_session.id, path, upload=FinishedUpload("e" * 32, "b.jpg")
        )
        assert lookups == ["e" * 32]  # B hit the unique constraint and read A's result
        rows = db_b.scalars(select(Capture)).all()
        assert [(r.id, r.filename) for r in rows] == [(result.capture_id, "a.jpg")]
        assert result.status == "accepted"
        capture = rows[0]
        assert store.path(capture.original_path).read_bytes() == path.read_bytes()
        assert store.exists(capture.thumbnail_path)
        assert stored_files(store.root / "tmp") == []


def test_an_unknown_session_is_an_error_not_a_capture(save: SaveFn, db: Session) -> None:
    with pytest.raises(LookupError, match="capture session 999 does not exist"):
        save(images.jpeg(), session_id=999)
    assert _count(db) == 0


# -- reprocess and deletion ---------------------------------------------------------------------


def test_reprocess_regenerates_a_lost_thumbnail(
    save: SaveFn, db: Session, store: CaptureStore, service: CameraCaptureService
) -> None:
    first = save(images.jpeg_exif_oriented())
    capture = db.get(Capture, first.capture_id)
    thumb = store.path(capture.thumbnail_path)
    thumb.unlink()
    assert service.reprocess(capture.id) == first
    assert open_image(thumb).size == (100, 200)


def test_reprocess_rejects_an_original_changed_on_disk(
    save: SaveFn, db: Session, store: CaptureStore, service: CameraCaptureService
) -> None:
    capture = db.get(Capture, save(images.jpeg()).capture_id)
    path = store.path(capture.original_path)
    os.unlink(path)  # it may be a hard link to the tus file: replace, do not write through
    path.write_bytes(images.jpeg(color=(9, 9, 9)))
    result = service.reprocess(capture.id)
    assert (result.status, result.reason) == (
        "rejected",
        "stored original does not match its sha256",
    )
    assert db.get(Capture, capture.id).thumbnail_path is None


def test_reprocess_accepts_a_capture_rejected_under_a_stricter_limit(
    db: Session, store: CaptureStore, world: World, upload_file
) -> None:
    strict = CameraCaptureService(db, store, max_pixels=1000)
    result = strict.save_capture(
        world.open_session.id,
        upload_file(images.jpeg(64, 48)),
        upload=FinishedUpload("f" * 32, "a.jpg"),
    )
    assert result.status == "rejected" and "3072 pixels" in result.reason
    again = CameraCaptureService(db, store).reprocess(result.capture_id)
    assert (again.status, again.reason) == ("accepted", None)
    assert store.exists(db.get(Capture, result.capture_id).thumbnail_path)


def test_deleting_a_captures_files_spares_files_shared_with_another_capture(
    save: SaveFn, db: Session, store: CaptureStore, world: World
) -> None:
    data = images.jpeg()
    first = db.get(Capture, save(data).capture_id)
    second = db.get(Capture, save(data, session_id=world.assigned_session.id).capture_id)
    assert delete_capture_files(db, store, second) == []
    db.delete(second)
    db.commit()
    removed = delete_capture_files(db, store, first)
    assert removed == sorted([first.original_path, first.thumbnail_path])
    assert stored_files(store.root) == []
