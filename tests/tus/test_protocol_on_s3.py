"""The protocol table and every extension's tests again, on the S3 store (SeaweedFS and
PostgreSQL) instead of the file store: the same answers from either store."""

from __future__ import annotations

import pytest

from app.tus.s3store import S3Store
from app.tus.storage import Storage
from tests.tus.test_extensions import *  # noqa: F403 (the tests, collected again here)
from tests.tus.test_protocol_table import *  # noqa: F403

pytestmark = pytest.mark.postgres

# These look into the file store's folder; tests/tus/test_s3store.py checks the same on S3
# (a refused checksum leaves no tail or part, termination aborts and deletes, concatenation).
for _name in (
    "test_a_checksum_mismatch_discards_the_chunk_and_keeps_the_offset",
    "test_delete_frees_the_files_and_tells_the_hook",
    "test_a_final_upload_is_its_partials_in_order",
):
    del globals()[_name]


@pytest.fixture
def store(s3_store: S3Store) -> Storage:
    return s3_store
