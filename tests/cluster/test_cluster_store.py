"""The object store under the cluster: stopped mid-upload, every node answers 503 with
Retry-After and nothing acknowledged is lost; started again, the upload finishes byte-exact
through other nodes. No upload data stays on a node's own disk once its request has ended."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cluster.conftest import STORAGE, tus_via
from tests.support.cluster import Cluster
from tests.support.tus import capture_metadata, sha256

MiB = 1 << 20
pytestmark = pytest.mark.skipif(STORAGE != "s3", reason="the cluster runs on a shared folder")


def local_bytes(folder: Path) -> dict[str, int]:
    """Files with content under a node's own folder, outside its logs."""
    return {
        str(p.relative_to(folder)): p.stat().st_size
        for p in folder.rglob("*")
        if p.is_file() and p.stat().st_size and p.suffix != ".log"
    }


def test_the_store_stopped_mid_upload_answers_503_then_the_upload_finishes(
    cluster: Cluster, operator: tuple[str, int]
) -> None:
    token, sid = operator
    weed = cluster.seaweedfs
    assert weed is not None
    data = os.urandom(14 * MiB)
    url = tus_via(cluster, token, 0).create(len(data), capture_metadata(sid, "blob.bin"))
    upload = url.rsplit("/", 1)[1]
    first = tus_via(cluster, token, 0)
    assert first.patch(url, 0, data[: 11 * MiB]).status_code == 204
    weed.stop()
    try:
        for node in (1, 2):
            tus = tus_via(cluster, token, node)
            node_url = f"{cluster.nodes[node].url}/files/{upload}"
            assert tus.offset(node_url) == 11 * MiB  # the offset lives in PostgreSQL
            refused = tus.patch(node_url, 11 * MiB, data[11 * MiB : 13 * MiB])
            assert refused.status_code == 503, refused.text
            assert int(refused.headers["Retry-After"]) > 0
    finally:
        weed.start()
    tus = tus_via(cluster, token, 2)
    last = tus.resume(f"{cluster.nodes[2].url}/files/{upload}", data, chunk=2 * MiB)
    assert last.headers["Tuscam-Capture-Status"] == "rejected"  # random bytes: not an image
    assert sha256(tus_via(cluster, token, 1).download(url)) == sha256(data)


def test_no_upload_data_stays_on_a_node_after_its_request(
    cluster: Cluster, operator: tuple[str, int]
) -> None:
    token, sid = operator
    before = {n.index: local_bytes(n.base) for n in cluster.nodes}
    data = os.urandom(7 * MiB + 1234)
    tus = tus_via(cluster, token)  # round robin: every node takes a part
    url = tus.create(len(data), capture_metadata(sid, "blob.bin"))
    offset = 0
    for size in (3 * MiB, 1234, 4 * MiB):
        r = tus.patch(url, offset, data[offset : offset + size])
        assert r.status_code == 204, r.text
        offset += size
        for node in cluster.nodes:  # between requests: nothing new on any node's disk
            assert local_bytes(node.base) == before[node.index], node.index
    assert sha256(tus.download(url)) == sha256(data)
