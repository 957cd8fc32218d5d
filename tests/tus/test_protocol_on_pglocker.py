"""The protocol table and every extension's tests again, as several nodes run them: the S3
store and the PostgreSQL locker (advisory locks in the store's own database)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from app.tus.pglocker import PgLocker
from app.tus.s3store import S3Store
from app.tus.storage import Locker, Storage
from tests.tus.test_protocol_on_s3 import *  # noqa: F403 (the tests, collected again here)

pytestmark = pytest.mark.postgres


@pytest.fixture
def store(s3_store: S3Store) -> Storage:
    return s3_store


@pytest.fixture
def locker(tus_database: Engine) -> Iterator[Locker]:
    pg_locker = PgLocker.from_url(tus_database.url.render_as_string(hide_password=False))
    yield pg_locker
    pg_locker.close()


@pytest.fixture
def upload_dir(tmp_path: Path) -> Path:
    """Made here (the file locker made it before): tests that look into it find it empty."""
    folder = tmp_path / "uploads"
    folder.mkdir()
    return folder
