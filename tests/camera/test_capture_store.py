"""CaptureStore: content-addressed originals, atomic publication, no path escapes."""

from __future__ import annotations

import hashlib
import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.camera.capture_store import CaptureStore
from tests.support import images

from .conftest import SaveFn
from .helpers import stored_files


def test_staging_a_stream_hashes_it_in_blocks(store: CaptureStore) -> None:
    data = bytes(range(256)) * 5000
    staged = store.stage(io.BytesIO(data), block_size=4096)
    assert staged.sha256 == hashlib.sha256(data).hexdigest()
    assert staged.size == len(data) and not staged.linked
    assert staged.path.read_bytes() == data


def test_publish_is_exclusive_for_content_addressed_names(
    store: CaptureStore, tmp_path: Path
) -> None:
    name = store.original_name("ab" * 32, "jpg")
    assert name == f"originals/ab/{'ab' * 32}.jpg"
    first = store.stage(io.BytesIO(b"one"))
    second = store.stage(io.BytesIO(b"one"))
    assert store.publish(first.path, name) is True
    assert store.publish(second.path, name) is False  # the existing file stays, temp is gone
    assert store.path(name).read_bytes() == b"one"
    assert stored_files(store.root) == [name]


def test_publish_with_replace_overwrites(store: CaptureStore) -> None:
    name = store.thumbnail_name("cd" * 32)
    for content in (b"old", b"new"):
        with store.temp_file() as temp:
            temp.write_bytes(content)
            assert store.publish(temp, name, replace=True)
    assert store.path(name).read_bytes() == b"new"
    assert stored_files(store.root) == [name]


@pytest.mark.parametrize("relative", ["../x", "originals/../../x", "/etc/passwd", ""])
def test_paths_outside_the_store_are_refused(store: CaptureStore, relative: str) -> None:
    with pytest.raises(ValueError, match="not a path inside the capture store"):
        store.path(relative)


def test_delete_reports_whether_the_file_was_there(store: CaptureStore) -> None:
    name = store.original_name("ef" * 32, "png")
    store.publish(store.stage(io.BytesIO(b"x")).path, name)
    assert store.delete(name) is True
    assert store.delete(name) is False


def test_a_staged_upload_is_published_with_only_its_folder_fsynced(
    store: CaptureStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload = tmp_path / "upload"
    data = os.urandom(100_000)
    upload.write_bytes(data)
    seen: list[Path] = []
    real = os.fsync

    def spy(fd: int) -> None:
        seen.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    staged = store.stage(upload)
    assert staged.linked and staged.size == len(data)
    assert staged.sha256 == hashlib.sha256(data).hexdigest()
    assert seen == [upload]  # before the link: the data is on disk whatever the caller did
    durable = store.stage(upload, durable=True)  # the caller fsynced it already
    assert durable.linked and seen == [upload]
    store.discard(durable.path)
    name = store.original_name(staged.sha256, "bin")
    assert store.publish(staged.path, name)
    folder = store.path(name).parent
    assert seen[1:] == [folder.parent, folder]  # the new folder's entry, then the link's
    twin = store.stage(io.BytesIO(b"other bytes"))
    del seen[:]
    assert store.publish(twin.path, f"originals/{folder.name}/other.bin")
    assert seen == [folder]  # an existing folder: the link needs only its folder
    with store.temp_file(".jpg") as temp:
        temp.write_bytes(b"thumb")
        thumbnail = store.thumbnail_name(staged.sha256)
        store.publish(temp, thumbnail, replace=True)
    # A file written by the caller is fsynced before it is published (in a new folder here).
    assert seen[1:] == [store.root / "thumbnails", temp, store.path(thumbnail).parent]
    assert store.path(name).read_bytes() == data


@pytest.fixture(params=[0o000, 0o022, 0o277], ids=["umask-000", "umask-022", "umask-277"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def _modes(root: Path) -> dict[str, int]:
    return {
        p.relative_to(root.parent).as_posix(): stat.S_IMODE(p.stat().st_mode)
        for p in [root, *root.rglob("*")]
    }


@pytest.mark.parametrize("source", ["linked", "copied"])
def test_originals_and_thumbnails_are_for_the_service_user_only(
    umask: int, tmp_path: Path, source: str, save: SaveFn, store: CaptureStore
) -> None:
    """Files 0600 and folders 0700 whatever the umask: a capture (GPS in its EXIF) is nobody
    else's to read on a shared machine."""
    data = images.jpeg_exif_oriented(240, 120)
    if source == "linked":  # a tus upload, left with the umask's mode and hard-linked
        upload = tmp_path / "upload"
        upload.write_bytes(data)
        result = save(data, file_data=upload)
    else:  # a stream, copied
        result = save(data, file_data=io.BytesIO(data))
    assert result.status == "accepted"
    modes = _modes(store.root)
    assert any(name.startswith("captures/thumbnails/") for name in modes)
    assert any(name.startswith("captures/originals/") for name in modes)
    for name, mode in modes.items():
        expected = 0o700 if (store.root.parent / name).is_dir() else 0o600
        assert mode == expected, f"{name} is {mode:o} under umask {umask:03o}"
