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


def test_get_of_an_unfinished_upload_in_parts_is_409_until_it_is_complete(
    client: Client,  # noqa: F405 (from the star import above)
) -> None:
    upload_id = client.create(9 << 20)  # the config's Tus-Max-Size is 10 MB
    assert client.patch(upload_id, 0, b"p" * (6 << 20)).status == 204  # one 6 MiB part
    r = client.request("GET", upload_id)
    assert r.status == 409 and b"complete" in r.body
    assert client.patch(upload_id, 6 << 20, b"q" * (3 << 20)).status == 204
    r = client.request("GET", upload_id)
    assert r.status == 200 and r.stream is not None
    assert sum(len(block) for block in r.stream) == 9 << 20


def test_get_of_an_upload_whose_object_its_capture_took_over_and_deleted_is_410(
    client: Client,  # noqa: F405
    s3_store: S3Store,
) -> None:
    upload_id = client.create(1000)
    assert client.patch(upload_id, 0, b"x" * 1000).status == 204
    key = s3_store.key(upload_id)
    assert s3_store.hand_over(key)  # the capture's original now
    assert client.request("GET", upload_id).status == 200
    s3_store.client.delete_object(Bucket=s3_store.bucket, Key=key)  # the capture deleted it
    r = client.request("GET", upload_id)
    assert r.status == 410 and b"gone" in r.body.lower()


def test_get_of_an_upload_whose_object_vanished_is_a_store_failure_not_gone(
    client: Client,  # noqa: F405
    s3_store: S3Store,
) -> None:
    upload_id = client.create(1000)
    assert client.patch(upload_id, 0, b"x" * 1000).status == 204
    s3_store.client.delete_object(Bucket=s3_store.bucket, Key=s3_store.key(upload_id))
    assert client.request("GET", upload_id).status == 503  # never handed over: lost, not gone
