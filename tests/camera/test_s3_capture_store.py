"""Captures on S3 (a real SeaweedFS): the capture service stores originals and thumbnails as
objects, keeps nothing on the local disk, publishes create-only, reprocesses from S3."""

from __future__ import annotations

import hashlib
import io
import secrets
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.tus.storage import UploadRecord
from services.camera import imaging
from services.camera.capture_service import CameraCaptureService, FinishedUpload
from services.camera.s3_capture_store import CaptureStoreUnavailable, S3CaptureStore
from services.models import Capture, utcnow
from tests.support import images
from tests.support.seaweedfs import SeaweedFS
from tests.tus.s3fixtures import make_s3_store

from .conftest import World
from .helpers import stored_files


@pytest.fixture
def store(tmp_path: Path, seaweedfs: SeaweedFS, s3_bucket: str) -> S3CaptureStore:
    return S3CaptureStore(
        tmp_path / "staging", seaweedfs.client(), s3_bucket, f"cap-{secrets.token_hex(4)}"
    )


def object_bytes(store: S3CaptureStore, relative: str) -> bytes:
    return b"".join(store.open(relative).blocks())


def test_a_capture_is_stored_as_objects_and_nothing_stays_on_disk(
    db: Session, world: World, store: S3CaptureStore, tmp_path: Path
) -> None:
    data = images.jpeg(320, 240)
    upload = tmp_path / "upload"
    upload.write_bytes(data)
    result = CameraCaptureService(db, store).save_capture(
        world.open_session.id, upload, upload=FinishedUpload(secrets.token_hex(16), "a.jpg")
    )
    capture = db.get(Capture, result.capture_id)
    assert result.status == "accepted" and capture is not None
    assert capture.original_path == f"originals/{capture.sha256[:2]}/{capture.sha256}.jpg"
    assert object_bytes(store, capture.original_path) == data
    thumb = Image.open(io.BytesIO(object_bytes(store, capture.thumbnail_path)))
    assert thumb.format == "JPEG" and max(thumb.size) <= 400
    listed = store.client.list_objects_v2(Bucket=store.bucket, Prefix=store.prefix)
    assert {o["Key"] for o in listed["Contents"]} == {
        store.prefix + capture.original_path,
        store.prefix + capture.thumbnail_path,
    }
    assert stored_files(store.root) == []  # staging emptied: the data lives in S3 only


def test_publish_is_create_only_so_one_racer_owns_the_file(
    store: S3CaptureStore, tmp_path: Path
) -> None:
    first, second = store.temp_path(), store.temp_path()
    first.write_bytes(b"one")
    second.write_bytes(b"two")
    assert store.publish(first, "originals/ab/x.jpg") is True
    assert store.publish(second, "originals/ab/x.jpg") is False
    assert object_bytes(store, "originals/ab/x.jpg") == b"one"
    third = store.temp_path()
    third.write_bytes(b"three")
    assert store.publish(third, "originals/ab/x.jpg", replace=True) is True
    assert object_bytes(store, "originals/ab/x.jpg") == b"three"
    assert not first.exists() and not second.exists() and not third.exists()
    assert store.exists("originals/ab/x.jpg")
    assert store.delete("originals/ab/x.jpg") is True
    assert store.delete("originals/ab/x.jpg") is False
    assert not store.exists("originals/ab/x.jpg")
    with pytest.raises(FileNotFoundError):
        store.open("originals/ab/x.jpg")


@pytest.mark.parametrize("bad", ["", "/etc/passwd", "../x", "originals/../../x", "a//b"])
def test_names_outside_the_store_are_refused(store: S3CaptureStore, bad: str) -> None:
    with pytest.raises(ValueError):
        store.key(bad)


def test_reprocess_reads_the_original_back_from_s3(
    db: Session, world: World, store: S3CaptureStore, tmp_path: Path
) -> None:
    data = images.jpeg(200, 100)
    upload = tmp_path / "upload"
    upload.write_bytes(data)
    service = CameraCaptureService(db, store)
    result = service.save_capture(
        world.open_session.id, upload, upload=FinishedUpload(secrets.token_hex(16), "a.jpg")
    )
    capture = db.get(Capture, result.capture_id)
    assert capture is not None and capture.thumbnail_path
    store.delete(capture.thumbnail_path)  # a lost thumbnail
    assert service.reprocess(capture.id).status == "accepted"
    assert store.exists(capture.thumbnail_path)
    assert hashlib.sha256(object_bytes(store, capture.original_path)).hexdigest() == (
        capture.sha256
    )
    assert stored_files(store.root) == []


def test_an_unreachable_store_is_an_error_that_says_so(tmp_path: Path) -> None:
    from tests.support.seaweedfs import SeaweedFS as Weed
    from tests.support.seaweedfs import free_http_ports

    nowhere = Weed(tmp_path, *free_http_ports(6))  # never started: connection refused
    store = S3CaptureStore(tmp_path / "staging", nowhere.client(), "missing-bucket")
    with pytest.raises(CaptureStoreUnavailable, match="missing-bucket"):
        store.exists("originals/ab/x.jpg")


def test_a_large_file_downloaded_from_the_same_bucket_is_published_by_a_copy_inside_s3(
    seaweedfs: SeaweedFS, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("services.camera.s3_capture_store.COPY_MIN_BYTES", 10)
    client = seaweedfs.client()
    client.put_object(Bucket=s3_bucket, Key="up/one", Body=b"the upload's bytes")
    download = tmp_path / "staging" / "tmp" / "tus-x.data"
    download.parent.mkdir(parents=True)
    download.write_bytes(b"the upload's bytes")
    origins = {str(download): (s3_bucket, "up/one")}
    store = S3CaptureStore(
        tmp_path / "staging", client, s3_bucket, f"cap-{secrets.token_hex(4)}", origins=origins
    )
    staged = store.stage(download, durable=True)
    client.put_object(Bucket=s3_bucket, Key="up/one", Body=b"changed in S3 only")
    assert store.publish(staged.path, "originals/ab/y.jpg") is True
    assert object_bytes(store, "originals/ab/y.jpg") == b"changed in S3 only"  # copied in S3
    again = store.stage(download, durable=True)
    assert store.publish(again.path, "originals/ab/y.jpg") is False  # already there
    assert not staged.path.exists() and not again.path.exists()


@pytest.mark.parametrize("finishing_node", ["the writer", "another node"])
def test_an_upload_too_large_to_be_an_image_is_recorded_without_a_download_where_hashed(
    db: Session,
    world: World,
    seaweedfs: SeaweedFS,
    s3_bucket: str,
    tus_database: Engine,
    tmp_path: Path,
    finishing_node: str,
) -> None:
    """The node that received every byte knows the SHA-256: a capture too large to decode is
    then recorded (rejected, digest, size, the upload's object as original) from the first
    bytes alone. Another node reads the object once to hash it; both record the same."""
    writer = make_s3_store(seaweedfs, s3_bucket, tus_database, tmp_path)
    finisher = writer
    if finishing_node == "another node":
        finisher = make_s3_store(seaweedfs, s3_bucket, tus_database, tmp_path)
        finisher.prefix = writer.prefix
    data = images.jpeg(64, 48) + secrets.token_bytes(6 << 20)  # a JPEG head, 6 MiB in all
    upload_id = secrets.token_hex(16)
    writer.create(UploadRecord(id=upload_id, owner="1", length=len(data), created_at=utcnow()))
    half = len(data) // 2
    writer.write_chunk(upload_id, io.BytesIO(data[:half]), 0, len(data))
    writer.write_chunk(upload_id, io.BytesIO(data[half:]), half, len(data) - half)
    finisher.make_durable(upload_id)
    downloads: list[str] = []
    local_file = finisher.local_file

    def counted(upload_id: str, **options: Any) -> Any:
        downloads.append(upload_id)
        return local_file(upload_id, **options)

    finisher.local_file = counted  # type: ignore[method-assign]
    store = S3CaptureStore(tmp_path / "staging", finisher.client, s3_bucket, "c", uploads=finisher)
    result = CameraCaptureService(db, store, max_image_bytes=1 << 20).save_capture(
        world.open_session.id,
        finisher.finished_data(upload_id, len(data)),
        upload=FinishedUpload(upload_id, "big.jpg", source_durable=True),
    )
    assert downloads == ([] if finishing_node == "the writer" else [upload_id])
    capture = db.get(Capture, result.capture_id)
    assert capture is not None and result.status == "rejected"
    assert result.reason == imaging.too_large_reason(len(data), 1 << 20)
    assert (capture.sha256, capture.bytes) == (hashlib.sha256(data).hexdigest(), len(data))
    assert capture.format == "JPEG" and capture.thumbnail_path is None
    assert capture.original_path == f"uploads/{upload_id}"  # taken over, not copied
    assert object_bytes(store, capture.original_path) == data
    assert stored_files(store.root) == [] and list(tmp_path.glob("tus-*")) == []
