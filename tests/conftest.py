"""Shared fixtures: the app on SQLite (and PostgreSQL where a test asks for both), a real
gunicorn server, and a PostgreSQL server started for the test run."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from hypothesis import settings
from sqlalchemy.orm import Session

from app import create_app
from app.cli import upgrade_database
from app.db import session_factory
from tests.support.postgres import PostgresServer, start_postgres
from tests.support.seaweedfs import SeaweedFS, start_seaweedfs
from tests.support.server import LiveServer, start_live_server

# Speed is measured in bench/, not in tests: no per-example deadline, which a loaded machine
# misses now and then (the rest of the active profile, CI's included, stays as it is).
settings.register_profile("tuscam", parent=settings.default, deadline=None)
settings.load_profile("tuscam")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    try:
        server = start_postgres()
    except Exception as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL is not available here: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def seaweedfs() -> Iterator[SeaweedFS]:
    """A real SeaweedFS S3 gateway on 127.0.0.1 for the whole run (tests that stop the store
    start their own with `start_seaweedfs()`)."""
    try:
        server = start_seaweedfs()
    except Exception as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"SeaweedFS is not available here: {exc}")
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def s3_bucket(seaweedfs: SeaweedFS) -> str:
    """A bucket in the session's SeaweedFS; tests keep apart by a key prefix of their own."""
    return seaweedfs.create_bucket("tuscam-test")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Run a test on SQLite and on a real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.sqlite3'}"
    pg: PostgresServer = request.getfixturevalue("postgres")
    return pg.create_database("t_" + secrets.token_hex(6))


def make_test_app(tmp_path: Path, database_url: str, **extra: object) -> Flask:
    upgrade_database(database_url)
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-" + secrets.token_hex(8),
            "DATABASE_URL": database_url,
            "DATA_DIR": str(tmp_path / "data"),
            **extra,
        }
    )
    return app


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    app = make_test_app(tmp_path, f"sqlite:///{tmp_path / 'test.sqlite3'}")
    yield app
    app.extensions["tuscam.engine"].dispose()


@pytest.fixture
def any_db_app(tmp_path: Path, database_url: str) -> Iterator[Flask]:
    """The app on SQLite and, as a second run, on PostgreSQL."""
    app = make_test_app(tmp_path, database_url)
    yield app
    app.extensions["tuscam.engine"].dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


@pytest.fixture
def db(app: Flask) -> Iterator[Session]:
    with session_factory(app)() as session:
        yield session


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One real gunicorn server (gthread, 2 workers x 4 threads) shared by the run."""
    with start_live_server(tmp_path_factory.mktemp("live")) as server:
        yield server
