"""Expiry across nodes: `tuscam cleanup` run on one node removes an upload another node
created and fed (aborting its S3 multipart upload), and leaves alone an expired upload whose
lock a request holds on another node."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.conftest import STORAGE, tus_via
from tests.cluster.test_cluster_locks import RawPatch, lock_held, wait_for
from tests.support.cluster import Cluster, start_cluster
from tests.support.postgres import PostgresServer
from tests.support.tus import capture_metadata

MiB = 1 << 20
EXPIRY = 2
TUSCAM = Path(sys.executable).parent / "tuscam"


@pytest.fixture(scope="module")
def cluster(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    postgres: PostgresServer,
) -> Iterator[Cluster]:
    """A cluster whose uploads expire after 2 s (the shared one keeps them a day)."""
    database_url = postgres.create_database("x_" + secrets.token_hex(6))
    store = {}
    if STORAGE == "s3":
        store = {
            "seaweedfs": request.getfixturevalue("seaweedfs"),
            "bucket": request.getfixturevalue("s3_bucket"),
        }
    with start_cluster(
        tmp_path_factory.mktemp("expiry"),
        database_url,
        storage=STORAGE,
        workers=1,
        env={"TUSCAM_UPLOAD_EXPIRY": str(EXPIRY)},
        **store,
    ) as cluster:
        yield cluster


def cleanup(cluster: Cluster, node: int) -> str:
    server = cluster.nodes[node].server
    assert server is not None
    done = subprocess.run(
        [str(TUSCAM), "cleanup"], env=server.env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def multipart_uploads(cluster: Cluster) -> list[str]:
    assert cluster.seaweedfs is not None
    prefix = cluster.env["TUSCAM_STORAGE_URL"].removeprefix("s3://").split("/", 1)
    listed = cluster.seaweedfs.client().list_multipart_uploads(
        Bucket=prefix[0], Prefix=prefix[1] + "/"
    )
    return [u["Key"] for u in listed.get("Uploads", [])]


def test_cleanup_on_one_node_removes_what_others_created_and_fed(
    cluster: Cluster, operator: tuple[str, int]
) -> None:
    token, sid = operator
    url = tus_via(cluster, token, 0).create(20 * MiB, capture_metadata(sid, "blob.bin"))
    upload = url.rsplit("/", 1)[1]
    node1 = f"{cluster.nodes[1].url}/files/{upload}"
    assert tus_via(cluster, token, 1).patch(node1, 0, os.urandom(11 * MiB)).status_code == 204
    if STORAGE == "s3":
        assert [k for k in multipart_uploads(cluster) if upload in k]
    time.sleep(EXPIRY + 0.5)
    assert "Removed 1 expired upload(s)." in cleanup(cluster, 2)
    if STORAGE == "s3":
        assert not [k for k in multipart_uploads(cluster) if upload in k]  # aborted
    for node in range(3):
        r = tus_via(cluster, token, node).head(f"{cluster.nodes[node].url}/files/{upload}")
        assert r.status_code == 410


def test_cleanup_leaves_an_upload_locked_on_another_node(
    cluster: Cluster, operator: tuple[str, int]
) -> None:
    token, sid = operator
    url = tus_via(cluster, token, 0).create(1000, capture_metadata(sid, "blob.bin"))
    upload = url.rsplit("/", 1)[1]
    busy = RawPatch(f"{cluster.nodes[1].url}/files/{upload}", token, 0, 1000)
    try:
        busy.send(b"x" * 10)  # a request in progress on node 1 holds the upload
        wait_for(lambda: lock_held(cluster, upload))
        time.sleep(EXPIRY + 0.5)
        assert "Removed 0 expired upload(s)." in cleanup(cluster, 2)
        assert lock_held(cluster, upload)
    finally:
        busy.close()
