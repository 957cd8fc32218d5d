"""Uploads through nginx round robin over three nodes: tuspy and tus-js-client, each request on
another node, byte-exact, one capture per upload, its thumbnail served by a node that had no part
in the upload."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import func, select
from tusclient import client as tus_client

from services.models import Capture
from tests.cluster.conftest import tus_via
from tests.support.cluster import Cluster
from tests.support.images import noisy_jpeg
from tests.support.tus import capture_metadata, sha256

ROOT = Path(__file__).resolve().parents[2]
TUSJS = ROOT / "tests" / "tus" / "tusjs_client.mjs"
CHUNK = 256 * 1024


@pytest.fixture(scope="module")
def photo() -> bytes:
    data = noisy_jpeg(1600, 1200)
    assert len(data) > 4 * CHUNK  # several PATCHes, so several nodes
    return data


def nodes_by_request(cluster: Cluster, upload_id: str) -> dict[str, list[int]]:
    """For each method, the nodes that answered the requests of one upload (nginx's log)."""
    index = {node.upstream: node.index for node in cluster.nodes}
    seen: dict[str, list[int]] = {}
    pattern = re.compile(r'"(\w+) (\S+) HTTP/[\d.]+" \d+ .* upstream=(\S+) .* location=(\S*)')
    for line in cluster.nginx.access_log().splitlines():
        m = pattern.search(line)
        if m is None:
            continue
        method, path, upstream, location = m.groups()
        if upload_id in path or upload_id in location:  # a POST names it in its Location
            seen.setdefault(method, []).append(index[upstream])
    return seen


def check_capture(cluster: Cluster, token: str, upload_id: str, data: bytes) -> None:
    """Byte-exact through every node, one accepted capture, its thumbnail served by a node that
    neither created nor finished the upload."""
    for node in range(len(cluster.nodes)):
        tus = tus_via(cluster, token, node)
        url = f"{cluster.nodes[node].url}/files/{upload_id}"
        assert tus.offset(url) == len(data)
        assert sha256(tus.download(url)) == sha256(data)
    with cluster.server().db() as db:
        count = db.scalar(select(func.count()).where(Capture.upload_id == upload_id))
    assert count == 1
    r = cluster.api(token).get(f"/api/uploads/{upload_id}")
    assert r.status_code == 200 and r.json()["status"] == "accepted", r.text
    capture_id = r.json()["capture_id"]
    seen = nodes_by_request(cluster, upload_id)
    created, finished = seen["POST"][-1], seen["PATCH"][-1]
    assert len(set(seen["PATCH"])) > 1, seen  # the PATCHes went to several nodes
    third = next(i for i in range(len(cluster.nodes)) if i not in (created, finished))
    thumb = cluster.nodes[third].server
    assert thumb is not None
    r = thumb.api(token).get(f"/captures/{capture_id}/thumbnail")
    assert r.status_code == 200 and r.content[:3] == b"\xff\xd8\xff"


def test_consecutive_requests_land_on_different_nodes(cluster: Cluster) -> None:
    answered = [cluster.node_of(cluster.api().get("/healthz")) for _ in range(9)]
    assert set(answered) == {0, 1, 2}
    assert all(a != b for a, b in zip(answered, answered[1:], strict=False)), answered


def test_tuspy_uploads_through_round_robin(
    cluster: Cluster, operator: tuple[str, int], photo: bytes
) -> None:
    token, sid = operator
    uploader = tus_client.TusClient(
        cluster.url + "/files/", headers={"Authorization": f"Bearer {token}"}
    ).uploader(
        file_stream=io.BytesIO(photo),
        chunk_size=CHUNK,
        metadata=capture_metadata(sid, "tuspy.jpg"),
    )
    uploader.upload()
    assert uploader.url is not None and uploader.url.startswith(cluster.url)
    check_capture(cluster, token, uploader.url.rsplit("/", 1)[1], photo)


def test_tus_js_client_uploads_through_round_robin(
    cluster: Cluster, operator: tuple[str, int], photo: bytes, tmp_path: Path
) -> None:
    node = shutil.which("node")
    if node is None or not (ROOT / "node_modules" / "tus-js-client").is_dir():
        if os.environ.get("CI"):
            pytest.fail("node and node_modules/tus-js-client are needed (npm ci)")
        pytest.skip("node or node_modules/tus-js-client missing: run `npm ci`")
    token, sid = operator
    path = tmp_path / "photo.jpg"
    path.write_bytes(photo)
    result = subprocess.run(
        [node, str(TUSJS), cluster.url + "/files/", token, str(path), str(sid), "plain"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["headers"]["Tuscam-Capture-Status"] == "accepted"
    check_capture(cluster, token, out["url"].rsplit("/", 1)[1], photo)
