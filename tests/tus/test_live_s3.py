"""tuscam under gunicorn with TUSCAM_STORAGE_URL=s3://… on a real SeaweedFS and PostgreSQL:
uploads and captures land in S3 and nothing stays on the node's disk, captures stream back,
a store stopped mid-upload answers 503 + Retry-After and loses nothing, `tuscam cleanup`
aborts the multipart upload of an expired upload, and S3 misconfigurations stop the start."""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from PIL import Image

from app import create_app
from app.cli import upgrade_database
from app.storage_setup import StorageConfigError
from tests.support import images
from tests.support.postgres import PostgresServer
from tests.support.seaweedfs import SeaweedFS, start_seaweedfs
from tests.support.server import LiveServer, start_live_server
from tests.support.tus import TusClient, capture_metadata

pytestmark = pytest.mark.postgres

MiB = 1 << 20


def s3_env(weed: SeaweedFS, bucket: str, prefix: str) -> dict[str, str]:
    return {**weed.env(), "TUSCAM_STORAGE_URL": f"s3://{bucket}/{prefix}"}


@pytest.fixture
def s3_node(
    tmp_path: Path, postgres: PostgresServer, seaweedfs: SeaweedFS, s3_bucket: str
) -> Iterator[LiveServer]:
    url = postgres.create_database("live_" + secrets.token_hex(6))
    env = s3_env(seaweedfs, s3_bucket, "n-" + secrets.token_hex(4))
    with start_live_server(tmp_path / "node", env=env, database_url=url) as server:
        yield server


def local_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_an_upload_becomes_a_capture_in_s3_and_streams_back(
    s3_node: LiveServer, seaweedfs: SeaweedFS, s3_bucket: str
) -> None:
    _name, token = s3_node.new_operator()
    _aid, sid = s3_node.new_capture_session(token)
    tus = TusClient(s3_node.url, token)
    photo = images.jpeg(640, 480)
    url, last = tus.upload(photo, capture_metadata(sid), chunk=100_000)
    assert last.headers["Tuscam-Capture-Status"] == "accepted"
    capture_id = last.headers["Tuscam-Capture-Id"]
    assert tus.download(url) == photo
    api = s3_node.api(token)
    original = api.get(f"/captures/{capture_id}/original")
    assert original.status_code == 200 and original.content == photo
    assert original.headers["X-Content-Type-Options"] == "nosniff"
    thumb = api.get(f"/captures/{capture_id}/thumbnail")
    assert thumb.status_code == 200
    assert Image.open(__import__("io").BytesIO(thumb.content)).format == "JPEG"
    again = api.get(
        f"/captures/{capture_id}/thumbnail", headers={"If-None-Match": thumb.headers["ETag"]}
    )
    assert again.status_code == 304
    prefix = s3_node.env["TUSCAM_STORAGE_URL"].rsplit("/", 1)[1]
    listed = seaweedfs.client().list_objects_v2(Bucket=s3_bucket, Prefix=prefix + "/")
    names = {o["Key"].split("/", 2)[1] for o in listed["Contents"]}
    assert names == {"uploads", "captures"}
    # Staging only: every byte of the upload and the capture lives in S3.
    assert [f for f in local_files(s3_node.data_dir) if "staging" in f] == []
    assert not (s3_node.data_dir / "uploads").exists() or not any(
        p.stat().st_size for p in (s3_node.data_dir / "uploads").rglob("*") if p.is_file()
    )


def test_the_original_is_the_uploads_own_object_and_outlives_the_upload(
    s3_node: LiveServer, seaweedfs: SeaweedFS, s3_bucket: str
) -> None:
    """No copy of the original inside S3 (the capture store takes the upload's object over);
    terminating the finished upload then leaves the capture's original in place."""
    _name, token = s3_node.new_operator()
    _aid, sid = s3_node.new_capture_session(token)
    tus = TusClient(s3_node.url, token)
    photo = images.jpeg(320, 240)
    url, last = tus.upload(photo, capture_metadata(sid), chunk=50_000)
    assert last.headers["Tuscam-Capture-Status"] == "accepted"
    capture_id = last.headers["Tuscam-Capture-Id"]
    prefix = s3_node.env["TUSCAM_STORAGE_URL"].rsplit("/", 1)[1]
    listed = seaweedfs.client().list_objects_v2(Bucket=s3_bucket, Prefix=prefix + "/captures/")
    kinds = {o["Key"].split("/")[2] for o in listed["Contents"]}
    assert kinds == {"thumbnails"}  # the original was not copied
    gone = tus.http.delete(url, headers={"Tus-Resumable": "1.0.0"}, timeout=30)
    assert gone.status_code == 204
    original = s3_node.api(token).get(f"/captures/{capture_id}/original")
    assert original.status_code == 200 and original.content == photo


def test_a_store_stopped_mid_upload_answers_503_then_the_upload_finishes_byte_exact(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    weed = start_seaweedfs(tmp_path / "weed")
    try:
        weed.create_bucket("outage")
        url = postgres.create_database("out_" + secrets.token_hex(6))
        env = s3_env(weed, "outage", "p")
        with start_live_server(tmp_path / "node", env=env, database_url=url) as node:
            _name, token = node.new_operator()
            _aid, sid = node.new_capture_session(token)
            tus = TusClient(node.url, token)
            data = os.urandom(14 * MiB)
            upload = tus.create(len(data), capture_metadata(sid, "blob.bin"))
            assert tus.patch(upload, 0, data[: 6 * MiB]).status_code == 204
            assert requests.get(node.url + "/readyz", timeout=30).status_code == 200
            weed.stop()
            refused = tus.patch(upload, 6 * MiB, data[6 * MiB : 12 * MiB])
            assert refused.status_code == 503, refused.text
            assert int(refused.headers["Retry-After"]) > 0
            assert tus.offset(upload) == 6 * MiB  # acknowledged bytes: all there
            ready = requests.get(node.url + "/readyz", timeout=60)
            assert ready.status_code == 503 and "storage" in ready.json()["checks"]
            assert "outage" in ready.json()["checks"]["storage"]  # names the bucket
            weed.start()
            assert requests.get(node.url + "/readyz", timeout=30).status_code == 200
            last = tus.resume(upload, data, chunk=4 * MiB)
            assert last.headers["Tuscam-Capture-Status"] == "rejected"  # random bytes
            assert hashlib.sha256(tus.download(upload)).digest() == hashlib.sha256(data).digest()
    finally:
        weed.destroy()


def test_cleanup_aborts_the_multipart_upload_of_an_expired_upload(
    tmp_path: Path, postgres: PostgresServer, seaweedfs: SeaweedFS, s3_bucket: str
) -> None:
    url = postgres.create_database("cl_" + secrets.token_hex(6))
    prefix = "c-" + secrets.token_hex(4)
    env = {**s3_env(seaweedfs, s3_bucket, prefix), "TUSCAM_UPLOAD_EXPIRY": "1"}
    with start_live_server(tmp_path / "node", env=env, database_url=url) as node:
        _name, token = node.new_operator()
        _aid, sid = node.new_capture_session(token)
        tus = TusClient(node.url, token)
        upload = tus.create(20 * MiB, capture_metadata(sid, "blob.bin"))
        assert tus.patch(upload, 0, os.urandom(11 * MiB)).status_code == 204
        client = seaweedfs.client()
        listed = client.list_multipart_uploads(Bucket=s3_bucket, Prefix=prefix + "/")
        assert len(listed.get("Uploads", [])) == 1
        time.sleep(1.5)
        done = subprocess.run(
            [str(Path(os.environ.get("VIRTUAL_ENV", ".venv")) / "bin" / "tuscam"), "cleanup"],
            env=node.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert "Removed 1 expired upload(s)." in done.stdout
        listed = client.list_multipart_uploads(Bucket=s3_bucket, Prefix=prefix + "/")
        assert listed.get("Uploads", []) == []
        assert tus.head(upload).status_code == 410


def test_s3_storage_without_postgresql_or_bucket_refuses_to_start(
    tmp_path: Path, postgres: PostgresServer, seaweedfs: SeaweedFS, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in seaweedfs.env().items():
        monkeypatch.setenv(key, value)
    base = {
        "TESTING": True,
        "DATA_DIR": str(tmp_path / "data"),
        "STORAGE_URL": "s3://tuscam-test/x",
        "S3_ENDPOINT_URL": seaweedfs.endpoint_url,
    }
    sqlite = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    with pytest.raises(StorageConfigError, match="needs PostgreSQL"):
        create_app({**base, "DATABASE_URL": sqlite})
    pg = postgres.create_database("cfg_" + secrets.token_hex(6))
    upgrade_database(pg)
    with pytest.raises(StorageConfigError, match="'no-such-bucket' does not exist"):
        create_app({**base, "DATABASE_URL": pg, "STORAGE_URL": "s3://no-such-bucket/x"})
