"""TUSCAM_STORAGE_URL and its companions: parsed strictly, and every misconfiguration of the S3
mode (no PostgreSQL, a missing bucket, an unreachable store) named at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from app import config as config_module
from app.storage_setup import (
    StorageConfigError,
    StorageSpec,
    check_bucket,
    parse_storage_url,
    require_postgres,
    s3_client,
)
from tests.support.seaweedfs import SeaweedFS, free_http_ports


@pytest.mark.parametrize(
    ("url", "spec"),
    [
        ("", StorageSpec("file", Path("/data"))),
        ("file://", StorageSpec("file", Path("/data"))),
        ("file:///srv/tuscam", StorageSpec("file", Path("/srv/tuscam"))),
        ("s3://photos", StorageSpec("s3", bucket="photos")),
        ("s3://photos/tuscam/prod/", StorageSpec("s3", bucket="photos", prefix="tuscam/prod")),
    ],
)
def test_storage_urls_name_a_folder_or_a_bucket_and_prefix(url: str, spec: StorageSpec) -> None:
    assert parse_storage_url(url, "/data") == spec


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://photos/x", "file://PATH or s3://BUCKET/PREFIX"),
        ("s3://ab/x", "3 to 63 characters"),
        ("s3:///x", "3 to 63 characters"),
        ("s3://photos/x?region=eu", "no query"),
    ],
)
def test_a_bad_storage_url_is_refused_with_the_expected_form(url: str, says: str) -> None:
    with pytest.raises(StorageConfigError, match=says.replace("?", r"\?")):
        parse_storage_url(url, "/data")


def test_the_s3_mode_needs_postgresql_and_says_how_to_set_it() -> None:
    require_postgres("postgresql+psycopg://tuscam@db/tuscam")
    with pytest.raises(StorageConfigError, match="TUSCAM_DATABASE_URL=postgresql"):
        require_postgres("sqlite:///instance/tuscam.sqlite3")


def test_the_environment_carries_the_storage_settings(tmp_path: Path) -> None:
    env = {
        "TUSCAM_STORAGE_URL": "s3://photos/p",
        "TUSCAM_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
        "TUSCAM_SECRET_KEY": "x",
    }
    loaded = config_module.load(tmp_path, env)
    assert loaded["STORAGE_URL"] == "s3://photos/p"
    assert loaded["S3_ENDPOINT_URL"] == "http://127.0.0.1:9000"
    assert loaded["S3_REGION"] == "us-east-1"
    assert config_module.load(tmp_path, {"TUSCAM_SECRET_KEY": "x"})["STORAGE_URL"] == ""


def test_a_missing_bucket_is_named(seaweedfs: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in seaweedfs.env().items():
        monkeypatch.setenv(key, value)
    client = s3_client(seaweedfs.endpoint_url, "us-east-1")
    check_bucket(client, seaweedfs.create_bucket("present"), seaweedfs.endpoint_url)
    with pytest.raises(StorageConfigError, match="'absent-bucket' does not exist"):
        check_bucket(client, "absent-bucket", seaweedfs.endpoint_url)


def test_an_unreachable_store_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    endpoint = f"http://127.0.0.1:{free_http_ports(1)[0]}"  # nothing listens there
    client = s3_client(endpoint, "us-east-1")
    with pytest.raises(StorageConfigError, match="cannot be reached for bucket 'photos'"):
        check_bucket(client, "photos", endpoint)
