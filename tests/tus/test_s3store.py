"""S3Store against a real SeaweedFS and PostgreSQL: parts of 5..10 MiB with the offset and the
parts in the database, tails as small objects, cut bodies kept, checked chunks staged, a store
that stops mid-upload loses nothing acknowledged, memory bounded by two parts."""

from __future__ import annotations

import hashlib
import io
import secrets
import tracemalloc
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.engine import Engine

from app.tus.s3parts import MAX_PARTS, MIN_PART_SIZE, part_size_for
from app.tus.s3schema import tus_upload_parts, tus_uploads
from app.tus.s3store import S3Store
from app.tus.storage import (
    OffsetMismatch,
    OwnerUsage,
    StorageUnavailable,
    UploadGone,
    UploadIncomplete,
    UploadNotFound,
    UploadRecord,
)
from tests.support.seaweedfs import SeaweedFS, start_seaweedfs
from tests.tus.s3fixtures import make_s3_store

pytestmark = pytest.mark.postgres

MiB = 1 << 20
NOW = datetime(2030, 1, 1, tzinfo=UTC)


class Source:
    """A request body: gives at most `cut` bytes, then 0 (a body cut short), or raises."""

    def __init__(self, data: bytes, *, cut: int | None = None, fail: bool = False) -> None:
        self.stream = io.BytesIO(data if cut is None else data[:cut])
        self.fail = fail

    def readinto(self, buffer: memoryview) -> int:
        n = self.stream.readinto(buffer[: 256 << 10])
        if not n and self.fail:
            raise ConnectionResetError("client went away")
        return n


def new_upload(store: S3Store, length: int | None, owner: str = "o") -> str:
    upload_id = secrets.token_hex(16)
    store.create(UploadRecord(id=upload_id, owner=owner, length=length, created_at=NOW))
    return upload_id


def stored_bytes(store: S3Store, upload_id: str) -> bytes:
    store.make_durable(upload_id)
    return b"".join(store.read_data(upload_id))


def parts_of(engine: Engine, upload_id: str) -> list[tuple[int, int]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(tus_upload_parts.c.number, tus_upload_parts.c.size)
            .where(tus_upload_parts.c.upload_id == upload_id)
            .order_by(tus_upload_parts.c.number)
        )
        return [tuple(r) for r in rows]


def open_multiparts(store: S3Store) -> list[str]:
    listed = store.client.list_multipart_uploads(Bucket=store.bucket, Prefix=store.prefix + "/")
    return [u["UploadId"] for u in listed.get("Uploads", ())]


def keys(store: S3Store) -> list[str]:
    listed = store.client.list_objects_v2(Bucket=store.bucket, Prefix=store.prefix + "/")
    return sorted(o["Key"][len(store.prefix) + 1 :] for o in listed.get("Contents", ()))


@given(st.integers(min_value=0, max_value=5 << 40))
def test_ten_thousand_parts_of_the_chosen_size_hold_the_largest_upload(max_size: int) -> None:
    size = part_size_for(max_size)
    assert size >= MIN_PART_SIZE and size % MiB == 0
    assert size * MAX_PARTS >= max_size
    assert size == MIN_PART_SIZE or (size - MiB) * MAX_PARTS < max_size  # no bigger than needed


def test_a_chunk_below_the_part_size_waits_as_a_tail_that_any_node_sees(
    s3_store: S3Store, tus_database: Engine, seaweedfs: SeaweedFS, s3_bucket: str, tmp_path: Path
) -> None:
    upload_id = new_upload(s3_store, 9 * MiB)
    assert s3_store.write_chunk(upload_id, Source(b"a" * 1000), 0, 9 * MiB) == 1000
    assert [k.split(".tail-")[0] for k in keys(s3_store)] == [upload_id]
    other_node = make_s3_store(seaweedfs, s3_bucket, tus_database, tmp_path)
    other_node.prefix = s3_store.prefix
    assert other_node.get_info(upload_id).offset == 1000
    rest = b"b" * (8 * MiB)
    assert other_node.write_chunk(upload_id, Source(rest), 1000, 9 * MiB - 1000) == len(rest)
    assert parts_of(tus_database, upload_id) == [(1, 8 * MiB + 1000)]  # the tail in front
    last = b"c" * (MiB - 1000)
    other_node.write_chunk(upload_id, Source(last), 8 * MiB + 1000, len(last))
    assert parts_of(tus_database, upload_id)[-1] == (2, len(last))  # the last part is small
    assert stored_bytes(s3_store, upload_id) == b"a" * 1000 + rest + last
    assert keys(s3_store) == [upload_id] and open_multiparts(s3_store) == []


def test_parts_are_one_to_two_part_sizes_and_recorded_with_their_etags(
    s3_store: S3Store, tus_database: Engine
) -> None:
    data = secrets.token_bytes(27 * MiB + 5)
    upload_id = new_upload(s3_store, len(data))
    assert s3_store.write_chunk(upload_id, Source(data), 0, len(data)) == len(data)
    assert parts_of(tus_database, upload_id) == [(1, 10 * MiB), (2, 10 * MiB), (3, 7 * MiB + 5)]
    with tus_database.connect() as conn:
        etags = conn.scalars(
            select(tus_upload_parts.c.etag).where(tus_upload_parts.c.upload_id == upload_id)
        ).all()
    assert all(etags)
    assert hashlib.sha256(stored_bytes(s3_store, upload_id)).digest() == (
        hashlib.sha256(data).digest()
    )
    with s3_store.local_file(upload_id) as path:
        assert path.read_bytes() == data
    assert not path.exists()


def test_a_photo_is_one_object_without_a_multipart_upload(s3_store: S3Store) -> None:
    data = secrets.token_bytes(300 << 10)
    upload_id = new_upload(s3_store, len(data))
    s3_store.write_chunk(upload_id, Source(data), 0, len(data))
    assert keys(s3_store) == [upload_id] and open_multiparts(s3_store) == []
    assert stored_bytes(s3_store, upload_id) == data
    assert s3_store.get_info(upload_id).offset == len(data)


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    chunks=st.lists(
        st.sampled_from([1, 4096, MiB, 3 * MiB, 5 * MiB - 1, 5 * MiB, 6 * MiB, 11 * MiB]),
        min_size=1,
        max_size=5,
    ),
    deferred=st.booleans(),
)
def test_any_chunking_stores_the_bytes_exactly(
    s3_store: S3Store, tus_database: Engine, chunks: list[int], deferred: bool
) -> None:
    data = secrets.token_bytes(sum(chunks))
    upload_id = new_upload(s3_store, None if deferred else len(data))
    offset = 0
    for size in chunks:
        limit = None if deferred else len(data) - offset
        chunk = Source(data[offset : offset + size])
        offset += s3_store.write_chunk(upload_id, chunk, offset, limit)
        assert s3_store.get_info(upload_id).offset == offset
    if deferred:
        s3_store.save_info(replace(s3_store.get_info(upload_id), length=len(data)))
    assert all(
        MIN_PART_SIZE <= size <= 2 * s3_store.part_size
        for _, size in parts_of(tus_database, upload_id)[:-1]
    )
    assert stored_bytes(s3_store, upload_id) == data
    assert keys(s3_store)[-1] == upload_id and open_multiparts(s3_store) == []
    s3_store.terminate(upload_id, "terminated", NOW)


def test_the_offset_must_match_and_invalid_ids_are_unknown(s3_store: S3Store) -> None:
    upload_id = new_upload(s3_store, 10)
    s3_store.write_chunk(upload_id, Source(b"abc"), 0, 10)
    with pytest.raises(OffsetMismatch) as mismatch:
        s3_store.write_chunk(upload_id, Source(b"x"), 2, 8)
    assert (mismatch.value.expected, mismatch.value.stored) == (2, 3)
    for bad in ("../" + "b" * 32, "B" * 32, "b" * 31, ""):
        with pytest.raises(UploadNotFound):
            s3_store.get_info(bad)
    with pytest.raises(UploadNotFound):
        s3_store.get_info(secrets.token_hex(16))


@pytest.mark.parametrize("fail", [False, True], ids=["cut", "raised"])
def test_the_bytes_of_a_body_cut_short_are_kept(s3_store: S3Store, fail: bool) -> None:
    data = secrets.token_bytes(13 * MiB)
    upload_id = new_upload(s3_store, len(data))
    cut = 12 * MiB + 7  # a whole part stored while reading, the rest becomes the tail
    if fail:
        with pytest.raises(ConnectionResetError):
            s3_store.write_chunk(upload_id, Source(data, cut=cut, fail=True), 0, len(data))
    else:
        assert s3_store.write_chunk(upload_id, Source(data, cut=cut), 0, len(data)) == cut
    assert s3_store.get_info(upload_id).offset == cut
    s3_store.write_chunk(upload_id, Source(data[cut:]), cut, len(data) - cut)
    assert stored_bytes(s3_store, upload_id) == data


def test_a_checked_chunk_is_kept_only_when_its_check_passes(
    s3_store: S3Store, tus_database: Engine
) -> None:
    data = secrets.token_bytes(23 * MiB)
    upload_id = new_upload(s3_store, len(data))
    s3_store.write_chunk(upload_id, Source(data[:100]), 0, len(data))
    before = keys(s3_store)

    def refuse() -> None:
        raise ValueError("checksum mismatch")

    with pytest.raises(ValueError):
        s3_store.write_chunk(upload_id, Source(data[100:]), 100, len(data) - 100, check=refuse)
    assert s3_store.get_info(upload_id).offset == 100
    assert keys(s3_store) == before and parts_of(tus_database, upload_id) == []
    n = s3_store.write_chunk(upload_id, Source(data[100:]), 100, None, check=lambda: None)
    assert n == len(data) - 100
    assert stored_bytes(s3_store, upload_id) == data


def test_termination_aborts_the_multipart_upload_and_leaves_a_tombstone(
    s3_store: S3Store, tus_database: Engine
) -> None:
    upload_id = new_upload(s3_store, 20 * MiB, owner="olga")
    s3_store.write_chunk(upload_id, Source(b"x" * (11 * MiB)), 0, None)
    assert len(open_multiparts(s3_store)) == 1 and keys(s3_store)
    s3_store.terminate(upload_id, "expired", NOW)
    assert open_multiparts(s3_store) == [] and keys(s3_store) == []
    with pytest.raises(UploadGone) as gone:
        s3_store.get_info(upload_id)
    assert (gone.value.reason, gone.value.owner) == ("expired", "olga")
    assert upload_id not in s3_store.list_ids()
    assert parts_of(tus_database, upload_id) == []
    assert s3_store.sweep(NOW - timedelta(days=1)) == 0
    assert s3_store.sweep(NOW + timedelta(seconds=1)) == 1
    with pytest.raises(UploadNotFound):
        s3_store.get_info(upload_id)


def test_concatenation_streams_the_parts_in_order(s3_store: S3Store) -> None:
    pieces = [secrets.token_bytes(n) for n in (3, 6 * MiB + 1, 100)]
    ids = []
    for piece in pieces:
        ids.append(new_upload(s3_store, len(piece)))
        s3_store.write_chunk(ids[-1], Source(piece), 0, len(piece))
    order = (ids[1], ids[0], ids[2], ids[1])
    final = UploadRecord(
        id=secrets.token_hex(16),
        owner="o",
        length=sum(len(pieces[ids.index(i)]) for i in order),
        created_at=NOW,
        concat_header="final;" + " ".join(order),
    )
    s3_store.concatenate(final, order)
    record = s3_store.get_info(final.id)
    assert record.offset == final.length and record.concat_header == final.concat_header
    assert b"".join(s3_store.read_data(final.id)) == b"".join(pieces[ids.index(i)] for i in order)


def test_owner_usage_counts_unfinished_uploads_and_the_bytes_of_all(s3_store: S3Store) -> None:
    owner = "u-" + secrets.token_hex(4)
    done = new_upload(s3_store, 2, owner)
    s3_store.write_chunk(done, Source(b"ab"), 0, 2)
    new_upload(s3_store, 10, owner)
    deferred = new_upload(s3_store, None, owner)
    s3_store.write_chunk(deferred, Source(b"abc"), 0, None)
    expired = UploadRecord(
        id=secrets.token_hex(16), owner=owner, length=5, created_at=NOW, expires_at=NOW
    )
    s3_store.create(expired)
    assert s3_store.owner_usage(owner, NOW) == OwnerUsage(unfinished=2, bytes=2 + 10 + 3 + 5)
    s3_store.terminate(deferred, "terminated", NOW)
    assert s3_store.owner_usage(owner, NOW) == OwnerUsage(unfinished=1, bytes=17)
    s3_store.terminate(done, "retired", NOW)
    with pytest.raises(UploadGone) as gone:
        s3_store.get_info(done)
    assert gone.value.record is not None and gone.value.record.offset == 2  # HEAD still says so


def test_an_unfinished_upload_in_parts_cannot_be_read_until_complete(s3_store: S3Store) -> None:
    upload_id = new_upload(s3_store, 20 * MiB)
    assert list(s3_store.read_data(upload_id)) == []
    s3_store.write_chunk(upload_id, Source(b"t" * 10), 0, None)
    assert b"".join(s3_store.read_data(upload_id)) == b"t" * 10  # a tail alone is readable
    s3_store.write_chunk(upload_id, Source(b"p" * (11 * MiB)), 10, None)
    with pytest.raises(UploadIncomplete):
        s3_store.read_data(upload_id)


def test_strays_are_reported_then_swept(s3_store: S3Store) -> None:
    key = f"{s3_store.prefix}/{secrets.token_hex(16)}"
    stray = s3_store.client.create_multipart_upload(Bucket=s3_store.bucket, Key=key)["UploadId"]
    s3_store.client.put_object(Bucket=s3_store.bucket, Key=key + ".tail-00", Body=b"x")
    live = new_upload(s3_store, 20 * MiB)
    s3_store.write_chunk(live, Source(b"y" * (11 * MiB + 3)), 0, None)
    later = datetime.now(UTC) + timedelta(minutes=1)
    found = {(s.kind, s.key) for s in s3_store.strays(older_than=later)}
    assert found == {("multipart", key), ("object", key + ".tail-00")}
    assert s3_store.strays() == []  # younger than an hour: maybe a request in flight
    s3_store.clock = lambda: later + timedelta(hours=1)
    assert s3_store.sweep(NOW) == 2
    assert stray not in open_multiparts(s3_store) and len(open_multiparts(s3_store)) == 1
    assert s3_store.get_info(live).offset == 11 * MiB + 3


def test_memory_stays_within_two_parts_whatever_the_chunk(s3_store: S3Store) -> None:
    class Zeros:
        def __init__(self, size: int) -> None:
            self.left = size

        def readinto(self, buffer: memoryview) -> int:
            n = min(len(buffer), self.left, 1 << 20)
            buffer[:n] = bytes(n)
            self.left -= n
            return n

    size = 64 * MiB
    upload_id = new_upload(s3_store, size)
    tracemalloc.start()
    try:
        s3_store.write_chunk(upload_id, Zeros(size), 0, size)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * s3_store.part_size + 4 * MiB, peak
    s3_store.terminate(upload_id, "terminated", NOW)


def test_a_store_stopped_mid_upload_refuses_then_resumes_losing_nothing(
    tus_database: Engine, tmp_path: Path
) -> None:
    weed = start_seaweedfs(tmp_path / "weed")
    try:
        weed.create_bucket("stopping")
        store = make_s3_store(weed, "stopping", tus_database, tmp_path)
        data = secrets.token_bytes(25 * MiB)
        upload_id = new_upload(store, len(data))
        acknowledged = store.write_chunk(upload_id, Source(data[: 12 * MiB]), 0, len(data))
        weed.stop()
        with pytest.raises(StorageUnavailable) as refused:
            store.write_chunk(upload_id, Source(data[acknowledged:]), acknowledged, None)
        assert "stopping" in str(refused.value)
        assert store.get_info(upload_id).offset == acknowledged  # the database still answers
        with pytest.raises(StorageUnavailable):
            store.terminate(upload_id, "terminated", NOW)  # refused whole: nothing changes
        weed.start()
        offset = store.get_info(upload_id).offset
        store.write_chunk(upload_id, Source(data[offset:]), offset, len(data) - offset)
        assert stored_bytes(store, upload_id) == data
    finally:
        weed.destroy()


def test_the_rows_record_what_s3_holds(s3_store: S3Store, tus_database: Engine) -> None:
    upload_id = new_upload(s3_store, 30 * MiB)
    s3_store.write_chunk(upload_id, Source(b"z" * (12 * MiB)), 0, None)
    with tus_database.connect() as conn:
        row = conn.execute(select(tus_uploads).where(tus_uploads.c.id == upload_id)).one()
    assert row.upload_offset == 12 * MiB and row.tail_size == 2 * MiB and row.multipart_id
    head = s3_store.client.head_object(Bucket=s3_store.bucket, Key=row.tail_key)
    assert head["ContentLength"] == 2 * MiB


def test_the_finish_hook_gets_a_photo_from_the_request_that_stored_it_not_from_s3(
    s3_store: S3Store,
) -> None:
    data = secrets.token_bytes(300 << 10)
    upload_id = new_upload(s3_store, len(data))
    s3_store.write_chunk(upload_id, Source(data), 0, len(data))
    s3_store.client.delete_object(Bucket=s3_store.bucket, Key=s3_store.key(upload_id))
    with s3_store.local_file(upload_id) as path:  # from the bytes this thread just stored
        assert path.read_bytes() == data
    with pytest.raises(StorageUnavailable), s3_store.local_file(upload_id):
        pass  # taken once: now it is read from S3, where it was deleted


def object_exists(store: S3Store, key: str) -> bool:
    listed = store.client.list_objects_v2(Bucket=store.bucket, Prefix=key)
    return any(o["Key"] == key for o in listed.get("Contents", ()))


def test_a_finished_object_handed_over_outlives_termination(s3_store: S3Store) -> None:
    """The capture store takes an upload's object over instead of copying it: terminating or
    retiring the upload must then leave the object in place."""
    data = secrets.token_bytes(300 << 10)
    upload_id = new_upload(s3_store, len(data))
    s3_store.write_chunk(upload_id, Source(data), 0, None)
    key = s3_store.key(upload_id)
    with s3_store.local_file(upload_id) as path:
        assert s3_store.origins[str(path)] == (s3_store.bucket, key)
        assert s3_store.digests[str(path)] == (hashlib.sha256(data).hexdigest(), len(data))
        assert s3_store.hand_over(key)
    assert str(path) not in s3_store.digests
    s3_store.terminate(upload_id, "retired", NOW)
    assert object_exists(s3_store, key)
    got = s3_store.client.get_object(Bucket=s3_store.bucket, Key=key)["Body"].read()
    assert got == data


def test_only_a_stored_live_upload_of_the_store_can_be_handed_over(s3_store: S3Store) -> None:
    data = secrets.token_bytes(1000)
    unfinished = new_upload(s3_store, len(data) + 1)
    s3_store.write_chunk(unfinished, Source(data), 0, None)
    assert not s3_store.hand_over(s3_store.key(unfinished))  # not stored whole yet
    done = new_upload(s3_store, len(data))
    s3_store.write_chunk(done, Source(data), 0, None)
    assert not s3_store.hand_over("elsewhere/" + done)  # not under the store's prefix
    assert not s3_store.hand_over(s3_store.key(done) + ".tail-00")  # not an upload id
    s3_store.terminate(done, "terminated", NOW)
    assert not s3_store.hand_over(s3_store.key(done))  # gone
    assert not object_exists(s3_store, s3_store.key(done))  # and termination removed it


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    plan=st.lists(
        st.tuples(
            st.sampled_from([1, 4096, 300 << 10, 6 * MiB]),
            st.sampled_from(["a", "b"]),
            st.sampled_from(["ok", "cut", "raised", "refused"]),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_the_digest_of_a_finished_upload_is_exact_or_absent(
    s3_store: S3Store,
    tus_database: Engine,
    seaweedfs: SeaweedFS,
    s3_bucket: str,
    tmp_path: Path,
    plan: list[tuple[int, str, str]],
) -> None:
    """Chunks through two nodes, cut, failed or refused by their check: a node that saw every
    stored byte knows the upload's SHA-256; any other knows none. Never a wrong one."""
    other = make_s3_store(seaweedfs, s3_bucket, tus_database, tmp_path)
    other.prefix = s3_store.prefix
    nodes = {"a": s3_store, "b": other}
    data = secrets.token_bytes(sum(size for size, _, _ in plan))
    upload_id = new_upload(s3_store, len(data))
    offset, used = 0, set()

    def refuse() -> None:
        raise ValueError("checksum mismatch")

    for size, name, how in plan:
        store, piece = nodes[name], data[offset : offset + size]
        used.add(name)
        if how == "ok":
            store.write_chunk(upload_id, Source(piece), offset, len(data) - offset)
        elif how == "cut":
            store.write_chunk(upload_id, Source(piece, cut=size // 2), offset, len(data) - offset)
        elif how == "raised":
            with pytest.raises(ConnectionResetError):
                chunk = Source(piece, cut=size // 2, fail=True)
                store.write_chunk(upload_id, chunk, offset, len(data) - offset)
        else:
            with pytest.raises(ValueError):
                store.write_chunk(upload_id, Source(piece), offset, None, check=refuse)
        offset = s3_store.get_info(upload_id).offset
    last = nodes[plan[-1][1]]
    if offset < len(data):
        last.write_chunk(upload_id, Source(data[offset:]), offset, len(data) - offset)
    last.make_durable(upload_id)
    expected = hashlib.sha256(data).hexdigest()
    for name, store in nodes.items():
        got = store.finished_data(upload_id, len(data)).sha256
        assert got in (None, expected)
        if used == {name}:
            assert got == expected
    s3_store.terminate(upload_id, "terminated", NOW)


def test_a_finished_upload_tells_its_object_and_still_gives_its_bytes(s3_store: S3Store) -> None:
    data = secrets.token_bytes(6 * MiB)
    upload_id = new_upload(s3_store, len(data))
    s3_store.write_chunk(upload_id, Source(data), 0, len(data))
    s3_store.make_durable(upload_id)
    finished = s3_store.finished_data(upload_id, len(data))
    assert finished.origin == (s3_store.bucket, s3_store.key(upload_id))
    assert finished.sha256 == hashlib.sha256(data).hexdigest() and finished.size == len(data)
    with finished.local_file() as path:
        assert path.read_bytes() == data
    assert s3_store.finished_data(upload_id, len(data)).sha256 is None  # told once


class Overtaking:
    """A body during which another writer (a node that got the lock this one lost) writes at
    the same offset: `meanwhile` runs once `at` bytes were read."""

    def __init__(self, data: bytes, at: int, meanwhile: Any) -> None:
        self.source = Source(data)
        self.at, self.read, self.meanwhile = at, 0, meanwhile

    def readinto(self, buffer: memoryview) -> int:
        if self.meanwhile is not None and self.read >= self.at:
            self.meanwhile()
            self.meanwhile = None
        if self.meanwhile is not None:
            buffer = buffer[: self.at - self.read]  # stop at `at` first
        n = self.source.readinto(buffer)
        self.read += n
        return n


@pytest.mark.parametrize(
    ("first", "chunk"),
    [(0, 300 << 10), (6 * MiB, 12 * MiB)],
    ids=["tail", "parts"],
)
def test_a_writer_that_lost_its_lock_is_refused_and_changes_nothing(
    s3_store: S3Store,
    tus_database: Engine,
    seaweedfs: SeaweedFS,
    s3_bucket: str,
    tmp_path: Path,
    first: int,
    chunk: int,
) -> None:
    """Stale writer A and the lock's new holder B write at the same offset: B's bytes are
    recorded, A gets OffsetMismatch (409) without replacing B's part or tail, and the upload
    finishes byte-exact from B's offset."""
    other = make_s3_store(seaweedfs, s3_bucket, tus_database, tmp_path)
    other.prefix = s3_store.prefix
    length = first + 2 * chunk
    mine, theirs = secrets.token_bytes(length), secrets.token_bytes(length)
    upload_id = new_upload(s3_store, length)
    if first:
        s3_store.write_chunk(upload_id, Source(mine[:first]), 0, length)  # a multipart upload
    recorded: list[int] = []

    def node_b_writes() -> None:
        recorded.append(other.write_chunk(upload_id, Source(theirs[first:][:chunk]), first, None))

    stale = Overtaking(mine[first:][:chunk], chunk // 2 if not first else 9 * MiB, node_b_writes)
    with pytest.raises(OffsetMismatch) as refused:
        s3_store.write_chunk(upload_id, stale, first, None)
    assert recorded == [chunk]
    assert (refused.value.expected, refused.value.stored) == (first, first + chunk)
    assert s3_store.get_info(upload_id).offset == first + chunk
    tails = [k for k in keys(s3_store) if ".tail-" in k]
    assert len(tails) <= 1  # B's, if any: A's new tail was removed
    rest = theirs[first + chunk :]
    s3_store.write_chunk(upload_id, Source(rest), first + chunk, len(rest))
    assert stored_bytes(s3_store, upload_id) == mine[:first] + theirs[first:]


class PausingClient:
    """The store's real S3 client, with `meanwhile` run once just before the first part is
    uploaded: the instant between a writer's last look at the row and its part reaching S3.
    `numbers`: the part numbers it uploaded."""

    def __init__(self, client: Any, meanwhile: Any) -> None:
        self.client, self.meanwhile = client, meanwhile
        self.numbers: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def upload_part(self, **kwargs: Any) -> Any:
        if self.meanwhile is not None:
            self.meanwhile, meanwhile = None, self.meanwhile
            meanwhile()
        self.numbers.append(kwargs["PartNumber"])
        return self.client.upload_part(**kwargs)


@pytest.mark.parametrize("first", [0, 6 * MiB], ids=["first-part", "next-part"])
def test_a_writer_that_lost_its_lock_cannot_replace_the_part_of_the_new_holder(
    s3_store: S3Store,
    tus_database: Engine,
    seaweedfs: SeaweedFS,
    s3_bucket: str,
    tmp_path: Path,
    first: int,
) -> None:
    """Stale writer A passed its last look at the row; new holder B then stores and records a
    part at the same offset; only then does A's part reach S3. A's part has a number of its
    own, so B's part stands, A gets OffsetMismatch, and the upload finishes byte-exact.

    (On AWS S3 a part uploaded again under a recorded number replaces it, and the completion
    then fails on the recorded ETag. SeaweedFS keeps both and completes with the one whose
    ETag is listed, so here the numbers themselves are what is checked.)"""
    chunk = 12 * MiB
    length = first + 2 * chunk
    mine, theirs = secrets.token_bytes(length), secrets.token_bytes(length)
    upload_id = new_upload(s3_store, length)
    if first:
        s3_store.write_chunk(upload_id, Source(mine[:first]), 0, length)  # part 1
    other = make_s3_store(seaweedfs, s3_bucket, tus_database, tmp_path)
    other.prefix = s3_store.prefix
    recorded: list[int] = []

    def node_b_writes() -> None:
        recorded.append(other.write_chunk(upload_id, Source(theirs[first:][:chunk]), first, None))

    stale = make_s3_store(seaweedfs, s3_bucket, tus_database, tmp_path)
    stale.prefix = s3_store.prefix
    stale.client = client = PausingClient(stale.client, node_b_writes)
    with pytest.raises(OffsetMismatch) as refused:
        stale.write_chunk(upload_id, Source(mine[first:][:chunk]), first, None)
    assert recorded == [chunk]
    assert (refused.value.expected, refused.value.stored) == (first, first + chunk)
    numbers = [number for number, _ in parts_of(tus_database, upload_id)]
    assert len(numbers) == (2 if first else 1) and client.numbers
    assert not set(client.numbers) & set(numbers)  # A never used a number B recorded
    rest = theirs[first + chunk :]
    s3_store.write_chunk(upload_id, Source(rest), first + chunk, len(rest))
    assert stored_bytes(s3_store, upload_id) == mine[:first] + theirs[first:]
