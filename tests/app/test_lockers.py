"""TUSCAM_LOCKER: which upload locker the app composes, and the clear refusal of a PostgreSQL
locker without PostgreSQL."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from app.config import load
from app.lockers import locker_kind
from app.tus.filelocker import FileLocker
from app.tus.pglocker import PgLocker
from tests.conftest import make_test_app
from tests.support.postgres import PostgresServer


@pytest.mark.parametrize(
    ("locker", "storage", "expected"),
    [
        ("", "", "file"),
        ("", "file:///srv/tuscam", "file"),
        ("", "s3://bucket/prefix", "postgres"),
        ("postgres", "", "postgres"),
        ("file", "s3://bucket", "file"),
        (" Postgres ", "", "postgres"),
    ],
)
def test_the_locker_follows_the_setting_else_the_storage(
    locker: str, storage: str, expected: str
) -> None:
    assert locker_kind({"LOCKER": locker, "STORAGE_URL": storage}) == expected


def test_an_unknown_locker_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="TUSCAM_LOCKER must be 'postgres' or 'file'"):
        locker_kind({"LOCKER": "redis"})


def test_the_environment_names_the_locker(tmp_path: Path) -> None:
    assert load(tmp_path, {"TUSCAM_LOCKER": "postgres"})["LOCKER"] == "postgres"


def test_a_postgres_locker_on_sqlite_fails_at_start_saying_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="TUSCAM_DATABASE_URL=postgresql") as caught:
        make_test_app(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite3'}", LOCKER="postgres")
    assert "TUSCAM_LOCKER=file" in str(caught.value)


def test_the_app_uses_the_file_locker_by_default(tmp_path: Path) -> None:
    app = make_test_app(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite3'}")
    assert isinstance(app.extensions["tuscam.tus"].locker.inner, FileLocker)
    app.extensions["tuscam.engine"].dispose()


@pytest.mark.postgres
def test_the_app_on_postgresql_can_lock_in_postgresql(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    url = postgres.create_database("t_" + secrets.token_hex(6))
    app = make_test_app(tmp_path, url, LOCKER="postgres")
    locker = app.extensions["tuscam.tus"].locker.inner
    try:
        assert isinstance(locker, PgLocker)
        with locker.lock("e" * 32, 1):
            pass
    finally:
        locker.close()
        app.extensions["tuscam.engine"].dispose()
