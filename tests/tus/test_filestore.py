"""FileStore: ids validated before any path, record updates as appended lines that a cut never
corrupts (hypothesis), the offset is the data file's size and never more than the length, what
each owner holds (quotas), retired tombstones, housekeeping of stray files."""

from __future__ import annotations

import io
import json
import os
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.tus.filestore import RECORD_LOG_BYTES, FileStore
from app.tus.storage import OffsetMismatch, OwnerUsage, UploadGone, UploadNotFound, UploadRecord

NOW = datetime(2030, 1, 1, tzinfo=UTC)


class Source:
    def __init__(self, data: bytes) -> None:
        self.stream = io.BytesIO(data)

    def readinto(self, buffer: memoryview) -> int:
        return self.stream.readinto(buffer)


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path, block_size=8)


def record(upload_id: str = "b" * 32, length: int | None = 10, owner: str = "o") -> UploadRecord:
    return UploadRecord(id=upload_id, owner=owner, length=length, created_at=NOW)


@pytest.mark.parametrize("bad", ["../" + "b" * 32, "B" * 32, "b" * 31, "b" * 32 + "/x", ""])
def test_a_path_is_never_built_from_an_invalid_id(store: FileStore, bad: str) -> None:
    with pytest.raises(UploadNotFound):
        store.path_of(bad)
    with pytest.raises(UploadNotFound):
        store.get_info(bad)


def test_a_record_round_trips_and_leaves_no_temp_file(store: FileStore, tmp_path: Path) -> None:
    rec = replace(
        record(),
        metadata_header="k dg==",
        finish_headers={"A": "b"},
        expires_at=NOW + timedelta(days=1),
    )
    store.create(rec)
    loaded = store.get_info(rec.id)
    assert loaded == rec
    names = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".owners"))
    assert names == [rec.id, rec.id + ".info"]
    assert json.loads((tmp_path / f"{rec.id}.info").read_text())["metadata"] == "k dg=="


def test_the_offset_is_the_size_of_the_data(store: FileStore) -> None:
    store.create(record())
    assert store.write_chunk("b" * 32, Source(b"abcdefghijkl"), 0, 4) == 4
    assert store.get_info("b" * 32).offset == 4
    with pytest.raises(OffsetMismatch):
        store.write_chunk("b" * 32, Source(b"x"), 3, None)
    assert store.write_chunk("b" * 32, Source(b"efgh"), 4, None) == 4
    assert store.path_of("b" * 32).read_bytes() == b"abcdefgh"


def test_bytes_past_the_length_are_never_reported(store: FileStore) -> None:
    store.create(record(length=3))
    store.path_of("b" * 32).write_bytes(b"abcdef")  # damage done outside the store
    assert store.get_info("b" * 32).offset == 3


def test_a_checked_chunk_is_appended_only_when_the_check_passes(store: FileStore) -> None:
    store.create(record())

    def refuse() -> None:
        raise ValueError("mismatch")

    with pytest.raises(ValueError):
        store.write_chunk("b" * 32, Source(b"abc"), 0, None, check=refuse)
    assert store.get_info("b" * 32).offset == 0
    assert store.write_chunk("b" * 32, Source(b"abc" * 5), 0, None, check=lambda: None) == 15
    assert store.path_of("b" * 32).read_bytes() == b"abc" * 5
    assert not (store.directory / ("b" * 32 + ".chunk")).exists()


def test_termination_leaves_a_tombstone_with_its_reason(store: FileStore) -> None:
    store.create(record())
    store.terminate("b" * 32, "expired", NOW)
    with pytest.raises(UploadGone) as gone:
        store.get_info("b" * 32)
    assert (gone.value.reason, gone.value.owner) == ("expired", "o")
    assert store.list_ids() == []


def test_sweep_forgets_old_tombstones_and_stray_files(store: FileStore) -> None:
    store.create(record("c" * 32))
    store.terminate("c" * 32, "terminated", NOW)
    store.create(record())
    stray = store.directory / ("b" * 32 + ".chunk")
    stray.write_bytes(b"half a chunk")
    fresh_stray = store.directory / ".x.tmp"
    fresh_stray.write_bytes(b"in use")
    orphan = store.directory / ("d" * 32)  # data whose record was never written (a crash)
    orphan.write_bytes(b"")
    old = time.time() - 7200
    for path in (stray, orphan, store.path_of("b" * 32)):
        os.utime(path, (old, old))
    assert store.sweep(NOW - timedelta(days=1)) == 2  # only the old stray files
    assert store.sweep(NOW + timedelta(seconds=1)) == 1  # now the tombstone too
    assert fresh_stray.exists() and store.list_ids() == ["b" * 32]
    with pytest.raises(UploadNotFound):
        store.get_info("c" * 32)


def test_what_an_owner_holds_is_counted_per_owner(store: FileStore) -> None:
    store.create(record("1" * 32))
    store.create(record("2" * 32, length=2))
    store.create(record("3" * 32, length=0))  # complete at creation
    store.create(record("4" * 32, owner="other"))
    assert store.owner_usage("o", NOW) == OwnerUsage(unfinished=2, bytes=12)
    store.write_chunk("2" * 32, Source(b"xy"), 0, None)
    store.save_info(replace(store.get_info("2" * 32), finished=True))  # the handler's report
    assert store.owner_usage("o", NOW) == OwnerUsage(unfinished=1, bytes=12)
    store.terminate("1" * 32, "terminated", NOW)
    assert store.owner_usage("o", NOW) == OwnerUsage(unfinished=0, bytes=2)
    assert store.owner_usage("nobody", NOW) == OwnerUsage(0, 0)


def test_expired_uploads_no_longer_count_as_unfinished_but_hold_their_bytes(
    store: FileStore,
) -> None:
    store.create(replace(record(length=5), expires_at=NOW + timedelta(seconds=10)))
    assert store.owner_usage("o", NOW).unfinished == 1
    assert store.owner_usage("o", NOW + timedelta(seconds=11)) == OwnerUsage(0, 5)


def test_a_deferred_upload_holds_what_it_stored(store: FileStore) -> None:
    store.create(record(length=None))
    store.write_chunk("b" * 32, Source(b"12345"), 0, None)
    assert store.owner_usage("o", NOW) == OwnerUsage(unfinished=1, bytes=5)


def test_the_owner_index_is_rebuilt_from_the_records(store: FileStore, tmp_path: Path) -> None:
    store.create(record("1" * 32, length=7))
    store.create(record("2" * 32, length=3, owner="other"))
    (tmp_path / ".owners.sqlite3").unlink()
    for extra in tmp_path.glob(".owners.sqlite3-*"):
        extra.unlink()
    again = FileStore(tmp_path)
    assert again.owner_usage("o", NOW) == OwnerUsage(unfinished=1, bytes=7)
    assert again.owner_usage("other", NOW) == OwnerUsage(unfinished=1, bytes=3)


def test_a_retired_upload_keeps_its_record_in_the_tombstone(store: FileStore) -> None:
    store.create(record(length=2))
    store.write_chunk("b" * 32, Source(b"ok"), 0, None)
    store.save_info(replace(store.get_info("b" * 32), finished=True, finish_headers={"X": "1"}))
    store.terminate("b" * 32, "retired", NOW)
    with pytest.raises(UploadGone) as gone:
        store.get_info("b" * 32)
    assert gone.value.reason == "retired" and gone.value.record is not None
    assert gone.value.record.offset == 2 and gone.value.record.finish_headers == {"X": "1"}
    assert store.owner_usage("o", NOW) == OwnerUsage(0, 0)
    assert not store.path_of("b" * 32).exists()


def test_concatenation_assembles_the_parts_then_publishes_the_record(store: FileStore) -> None:
    for upload_id, data in (("1" * 32, b"one"), ("2" * 32, b"two")):
        store.create(record(upload_id, length=3))
        store.write_chunk(upload_id, Source(data), 0, None)
    final = replace(record("f" * 32, length=9), concat_header="final;x")
    store.concatenate(final, ("2" * 32, "1" * 32, "2" * 32))
    assert store.path_of("f" * 32).read_bytes() == b"twoonetwo"
    assert store.get_info("f" * 32).offset == 9
    with pytest.raises(FileNotFoundError):
        store.concatenate(record("e" * 32, length=3), ("9" * 32,))
    assert [p.name for p in store.directory.glob("e*")] == []


def fsynced_paths(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Record which files os.fsync is called on (through /proc: the fd's path)."""
    seen: list[Path] = []
    real = os.fsync

    def spy(fd: int) -> None:
        seen.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return seen


def test_creation_and_patches_force_nothing_to_disk_make_durable_makes_it_all_durable(
    store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = fsynced_paths(monkeypatch)
    rec = record(length=10)
    store.create(rec)
    store.write_chunk(rec.id, Source(b"01234"), 0, 10)
    store.save_info(rec)  # e.g. a later expiry: atomic, not fsynced
    assert seen == []
    store.make_durable(rec.id)
    assert seen == [tmp_path / rec.id, tmp_path / f"{rec.id}.info", tmp_path]


def test_a_record_update_is_a_line_and_a_cut_line_leaves_the_previous_record(
    store: FileStore,
) -> None:
    rec = record()
    store.create(rec)
    info = store.directory / f"{rec.id}.info"
    inode = info.stat().st_ino
    store.save_info(replace(rec, finished=True, finish_headers={"X": "1"}))
    assert info.read_bytes().count(b"\n") == 2 and info.stat().st_ino == inode  # appended
    assert store.get_info(rec.id).finish_headers == {"X": "1"}
    whole = info.read_bytes()
    with info.open("ab") as f:  # an append cut short (a crash, or read while it is written)
        f.write(json.dumps(replace(rec, finished=False).to_json()).encode()[:50])
    assert store.get_info(rec.id).finished is True
    info.write_bytes(whole)
    for n in range(RECORD_LOG_BYTES // len(whole) + 2):  # the log is rewritten before it is big
        store.save_info(replace(rec, finish_headers={"N": str(n)}))
    assert info.stat().st_size <= RECORD_LOG_BYTES
    assert store.get_info(rec.id).finish_headers == {"N": str(n)}
    info.write_bytes(json.dumps(rec.to_json()).encode())  # one record, no line end (older files)
    store.save_info(replace(rec, finished=True))
    assert store.get_info(rec.id).finished is True


def test_a_record_cut_by_a_power_loss_reads_as_an_unknown_upload(store: FileStore) -> None:
    rec = record()
    store.create(rec)
    info = store.directory / f"{rec.id}.info"
    for cut in (info.read_bytes()[:20], b"", b'{"id": "x"}'):
        info.write_bytes(cut)
        with pytest.raises(UploadNotFound):
            store.get_info(rec.id)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    headers=st.lists(
        st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=12), max_size=3),
        min_size=1,
        max_size=6,
    ),
    cut=st.integers(min_value=0),
)
def test_a_record_file_cut_anywhere_reads_as_the_last_whole_update(
    tmp_path: Path, headers: list[dict[str, str]], cut: int
) -> None:
    """Whatever the updates and wherever a crash cuts the file, the record read is the last
    update whose line is whole (the creation's, at least, once its own line is whole)."""
    store = FileStore(tmp_path / f"s{len(list(tmp_path.iterdir()))}")
    rec = record()
    store.create(rec)
    info = store.directory / f"{rec.id}.info"
    versions = [rec]
    for h in headers:
        versions.append(replace(rec, finish_headers=h))
        store.save_info(versions[-1])
    raw = info.read_bytes()
    lines = raw.split(b"\n")[:-1]  # one line per version, each ended by a newline
    assert len(lines) == len(versions)
    cut %= len(raw) + 1
    info.write_bytes(raw[:cut])
    kept = raw[:cut].split(b"\n")
    whole = [i for i, line in enumerate(kept) if i < len(lines) and line == lines[i]]
    if not whole:
        with pytest.raises(UploadNotFound):
            store.get_info(rec.id)
        return
    assert store.get_info(rec.id).finish_headers == versions[whole[-1]].finish_headers
