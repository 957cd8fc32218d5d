"""What holds secrets is the service user's only, whatever the umask: the SQLite database (and
its -wal/-shm), the instance folder, secret_key and the data folder. Workers starting together
agree on one secret key."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from app import config
from app.cli import upgrade_database
from app.db import make_engine
from tests.conftest import make_test_app


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@contextlib.contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


UMASKS = pytest.mark.parametrize("mask", [0o000, 0o022, 0o002], ids=["000", "022", "002"])


@UMASKS
def test_instance_folder_and_secret_key_are_private(tmp_path: Path, mask: int) -> None:
    instance = tmp_path / "srv" / "instance"
    with umask(mask):
        loaded = config.load(instance, environ={})
    assert mode(instance) == 0o700 and mode(instance.parent) == 0o700
    assert mode(instance / "secret_key") == 0o600
    assert loaded["SECRET_KEY"] == (instance / "secret_key").read_text().strip()
    assert [p.name for p in instance.iterdir()] == ["secret_key"]  # no temporary file left


@UMASKS
def test_a_new_sqlite_database_and_its_journal_files_are_private(tmp_path: Path, mask: int) -> None:
    path = tmp_path / "db" / "tuscam.sqlite3"
    with umask(mask):
        engine = make_engine(f"sqlite:///{path}")
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
        with engine.connect() as conn:  # WAL: the -wal and -shm files exist while connected
            conn.execute(text("SELECT * FROM t")).all()
            files = sorted(p.name for p in path.parent.iterdir())
            modes = {name: mode(path.parent / name) for name in files}
        engine.dispose()
    assert mode(path.parent) == 0o700
    assert "tuscam.sqlite3-wal" in files
    assert modes == dict.fromkeys(files, 0o600)


@UMASKS
def test_migrating_a_new_database_creates_it_private(tmp_path: Path, mask: int) -> None:
    path = tmp_path / "m" / "tuscam.sqlite3"
    with umask(mask):
        upgrade_database(f"sqlite:///{path}")
    assert mode(path) == 0o600 and mode(path.parent) == 0o700


@UMASKS
def test_the_data_folder_is_private(tmp_path: Path, mask: int) -> None:
    with umask(mask):
        app = make_test_app(
            tmp_path, f"sqlite:///{tmp_path / 'x.sqlite3'}", DATA_DIR=str(tmp_path / "d" / "data")
        )
    assert mode(tmp_path / "d" / "data") == 0o700 and mode(tmp_path / "d") == 0o700
    app.extensions["tuscam.engine"].dispose()


def test_an_existing_folder_keeps_its_mode(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o750)
    os.chmod(shared, 0o750)
    config.private_dir(shared / "data")
    assert mode(shared) == 0o750 and mode(shared / "data") == 0o700


# --- one secret key, however many workers start at once ---------------------------------------


def _worker(instance: str, barrier, results) -> None:  # noqa: ANN001
    barrier.wait()
    try:
        results.put(config.load(Path(instance), environ={})["SECRET_KEY"])
    except Exception as exc:  # noqa: BLE001 - reported to the test
        results.put(f"error: {exc!r}")


@pytest.mark.parametrize("round_", range(4))
def test_workers_starting_together_all_use_the_one_key_that_won(
    tmp_path: Path, round_: int
) -> None:
    ctx = multiprocessing.get_context("fork")
    workers = 16
    barrier, results = ctx.Barrier(workers), ctx.Queue()
    instance = tmp_path / "instance"
    procs = [
        ctx.Process(target=_worker, args=(str(instance), barrier, results)) for _ in range(workers)
    ]
    for p in procs:
        p.start()
    keys = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert len(set(keys)) == 1, keys
    (key,) = set(keys)
    assert len(key) == 64 and key == (instance / "secret_key").read_text()
    assert [p.name for p in instance.iterdir()] == ["secret_key"]
