"""The Storage contract (app/tus/storage.py), the same tests on the file store and the S3 store:
records round-trip, the offset is checked, cut bodies are kept, checked chunks are staged,
tombstones say why (a retired one keeps its record), concatenation, usage per owner."""

from __future__ import annotations

import io
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.tus.filestore import FileStore
from app.tus.storage import (
    OffsetMismatch,
    OwnerUsage,
    Storage,
    UploadGone,
    UploadNotFound,
    UploadRecord,
)

NOW = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["file", pytest.param("s3", marks=pytest.mark.postgres)])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "file":
        return FileStore(tmp_path / "uploads", block_size=4096)
    store: Storage = request.getfixturevalue("s3_store")
    return store


class Source:
    def __init__(self, data: bytes) -> None:
        self.stream = io.BytesIO(data)

    def readinto(self, buffer: memoryview) -> int:
        return self.stream.readinto(buffer[:1000])


def new(store: Storage, length: int | None = 10, owner: str = "o", **kw: Any) -> UploadRecord:
    record = UploadRecord(id=secrets.token_hex(16), owner=owner, length=length, created_at=NOW)
    record = replace(record, **kw)
    store.create(record)
    return record


def test_a_record_round_trips(any_store: Storage) -> None:
    record = new(
        any_store,
        metadata_header="filename cGhvdG8uanBn",
        expires_at=NOW + timedelta(days=1),
        is_partial=True,
    )
    assert any_store.get_info(record.id) == record
    later = replace(record, finished=True, finished_at=NOW, finish_headers={"X-A": "1"})
    any_store.save_info(later)
    assert any_store.get_info(record.id) == later
    assert record.id in any_store.list_ids()


@pytest.mark.parametrize("bad", ["../" + "b" * 32, "B" * 32, "b" * 31, ""])
def test_unknown_and_invalid_ids_are_not_found(any_store: Storage, bad: str) -> None:
    for upload_id in (bad, secrets.token_hex(16)):
        with pytest.raises(UploadNotFound):
            any_store.get_info(upload_id)


def test_chunks_append_at_the_stored_offset_only(any_store: Storage) -> None:
    record = new(any_store, length=10)
    assert any_store.write_chunk(record.id, Source(b"abcd"), 0, 10) == 4
    with pytest.raises(OffsetMismatch):
        any_store.write_chunk(record.id, Source(b"x"), 3, 7)
    assert any_store.write_chunk(record.id, Source(b"efghijklmn"), 4, 6) == 6  # limit holds
    assert any_store.get_info(record.id).offset == 10
    any_store.make_durable(record.id)
    assert b"".join(any_store.read_data(record.id)) == b"abcdefghij"
    with any_store.local_file(record.id) as path:
        assert path.read_bytes() == b"abcdefghij"


def test_a_checked_chunk_is_kept_only_if_the_check_returns(any_store: Storage) -> None:
    record = new(any_store, length=None)
    any_store.write_chunk(record.id, Source(b"ab"), 0, None)

    def refuse() -> None:
        raise ValueError("mismatch")

    with pytest.raises(ValueError):
        any_store.write_chunk(record.id, Source(b"cdef"), 2, None, check=refuse)
    assert any_store.get_info(record.id).offset == 2
    assert any_store.write_chunk(record.id, Source(b"cd"), 2, None, check=lambda: None) == 2
    any_store.save_info(replace(any_store.get_info(record.id), length=4))
    any_store.make_durable(record.id)
    assert b"".join(any_store.read_data(record.id)) == b"abcd"


def test_termination_leaves_a_tombstone_and_a_retired_upload_keeps_its_record(
    any_store: Storage,
) -> None:
    gone, retired = new(any_store, owner="olga"), new(any_store, length=2, owner="olga")
    any_store.write_chunk(retired.id, Source(b"xy"), 0, 2)
    any_store.terminate(gone.id, "terminated", NOW)
    any_store.terminate(retired.id, "retired", NOW)
    with pytest.raises(UploadGone) as terminated:
        any_store.get_info(gone.id)
    assert (terminated.value.reason, terminated.value.owner) == ("terminated", "olga")
    with pytest.raises(UploadGone) as kept:
        any_store.get_info(retired.id)
    assert kept.value.record is not None and kept.value.record.offset == 2
    assert {gone.id, retired.id}.isdisjoint(any_store.list_ids())
    assert any_store.sweep(NOW + timedelta(seconds=1)) >= 2
    with pytest.raises(UploadNotFound):
        any_store.get_info(gone.id)


def test_a_final_upload_is_its_parts_in_order(any_store: Storage) -> None:
    parts = []
    for data in (b"one", b"two"):
        part = new(any_store, length=3, is_partial=True)
        any_store.write_chunk(part.id, Source(data), 0, 3)
        parts.append(part.id)
    order = (parts[1], parts[0], parts[1])
    final = UploadRecord(
        id=secrets.token_hex(16),
        owner="o",
        length=9,
        created_at=NOW,
        concat_header="final;" + " ".join(order),
        parts=order,
    )
    any_store.concatenate(final, order)
    assert any_store.get_info(final.id).offset == 9
    assert b"".join(any_store.read_data(final.id)) == b"twoonetwo"


def test_usage_counts_unfinished_uploads_and_all_held_bytes(any_store: Storage) -> None:
    owner = "u-" + secrets.token_hex(4)
    done = new(any_store, length=2, owner=owner)
    any_store.write_chunk(done.id, Source(b"ab"), 0, 2)
    any_store.save_info(any_store.get_info(done.id))
    new(any_store, length=10, owner=owner)
    deferred = new(any_store, length=None, owner=owner)
    any_store.write_chunk(deferred.id, Source(b"abc"), 0, None)
    any_store.save_info(any_store.get_info(deferred.id))
    assert any_store.owner_usage(owner, NOW) == OwnerUsage(unfinished=2, bytes=15)
    assert any_store.owner_usage("nobody", NOW) == OwnerUsage(0, 0)


class Full(Exception):
    pass


def at_most(unfinished: int) -> Any:
    """An admit check: refuse once the owner has that many unfinished uploads."""

    def admit(usage: OwnerUsage) -> None:
        if usage.unfinished >= unfinished:
            raise Full(usage)

    return admit


def test_concurrent_creations_with_a_quota_never_pass_it(any_store: Storage) -> None:
    """The check and the creation are one step: 24 creations from 12 threads at once, a quota
    of 5, exactly 5 uploads."""
    owner = "q-" + secrets.token_hex(4)

    def create(_: int) -> str:
        record = UploadRecord(secrets.token_hex(16), owner, 10, NOW)
        try:
            any_store.create(record, at_most(5))
        except Full:
            return "refused"
        return record.id

    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(create, range(24)))
    created = [r for r in results if r != "refused"]
    assert len(created) == 5
    assert any_store.owner_usage(owner, NOW) == OwnerUsage(unfinished=5, bytes=50)
    assert all(any_store.get_info(upload_id).owner == owner for upload_id in created)


def test_a_refused_creation_leaves_nothing(any_store: Storage) -> None:
    owner = "r-" + secrets.token_hex(4)
    new(any_store, owner=owner)
    record = UploadRecord(secrets.token_hex(16), owner, 10, NOW)
    with pytest.raises(Full):
        any_store.create(record, at_most(1))
    with pytest.raises(UploadNotFound):
        any_store.get_info(record.id)
    assert record.id not in any_store.list_ids()
    assert any_store.owner_usage(owner, NOW) == OwnerUsage(unfinished=1, bytes=10)
    allowed = UploadRecord(secrets.token_hex(16), owner, 10, NOW)
    any_store.create(allowed, at_most(2))  # within the quota: created
    assert any_store.get_info(allowed.id).length == 10


def test_a_refused_concatenation_leaves_nothing(any_store: Storage) -> None:
    owner = "c-" + secrets.token_hex(4)
    part = new(any_store, length=3, owner=owner, is_partial=True)
    any_store.write_chunk(part.id, Source(b"abc"), 0, 3)
    any_store.save_info(any_store.get_info(part.id))
    final = UploadRecord(
        secrets.token_hex(16), owner, 3, NOW, concat_header=f"final;{part.id}", parts=(part.id,)
    )

    def no_bytes_left(usage: OwnerUsage) -> None:
        if usage.bytes + 3 > 5:
            raise Full(usage)

    with pytest.raises(Full):
        any_store.concatenate(final, (part.id,), no_bytes_left)
    with pytest.raises(UploadNotFound):
        any_store.get_info(final.id)
    assert final.id not in any_store.list_ids()
    assert any_store.owner_usage(owner, NOW).bytes == 3
