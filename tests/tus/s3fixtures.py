"""Fixtures for the S3 store: a migrated PostgreSQL database and an S3Store on the session's
SeaweedFS under a key prefix of each test's own (imported by the conftest of tests/tus)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

from app.cli import upgrade_database
from app.tus.s3store import S3Store
from tests.support.postgres import PostgresServer
from tests.support.seaweedfs import SeaweedFS

MAX_SIZE = 10_000_000  # small: parts of the 5 MiB minimum


@pytest.fixture(scope="session")
def tus_template(postgres: PostgresServer) -> str:
    """A migrated database to copy: a copy takes a fraction of a migration."""
    name = "s3_template_" + secrets.token_hex(4)
    upgrade_database(postgres.create_database(name))
    return name


@pytest.fixture
def tus_database(postgres: PostgresServer, tus_template: str) -> Iterator[Engine]:
    """A migrated database of the test's own."""
    import psycopg

    name = "s3_" + secrets.token_hex(6)
    with psycopg.connect(
        host="127.0.0.1", port=postgres.port, user="tuscam", dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{tus_template}"')
    engine = create_engine(postgres.url(name), pool_size=10)
    yield engine
    engine.dispose()


def make_s3_store(
    seaweedfs: SeaweedFS, bucket: str, engine: Engine, tmp_path: Path, max_size: int = MAX_SIZE
) -> S3Store:
    """An S3 store under a fresh prefix of the bucket."""
    prefix = f"t-{secrets.token_hex(4)}"
    return S3Store(seaweedfs.client(), bucket, prefix, engine, max_size=max_size, temp_dir=tmp_path)


@pytest.fixture
def s3_store(seaweedfs: SeaweedFS, s3_bucket: str, tus_database: Engine, tmp_path: Path) -> S3Store:
    return make_s3_store(seaweedfs, s3_bucket, tus_database, tmp_path)
