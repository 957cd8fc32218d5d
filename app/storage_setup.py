"""Where uploads and captures live, from TUSCAM_STORAGE_URL: a folder (file://, the default)
or an S3 bucket (s3://BUCKET/PREFIX, several machines, PostgreSQL required).

Every misconfiguration is found at start and named in a message an operator can act on.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy.engine import make_url


class StorageConfigError(ValueError):
    """TUSCAM_STORAGE_URL and its companions do not describe a usable storage."""


@dataclass(frozen=True)
class StorageSpec:
    kind: str  # "file" or "s3"
    directory: Path | None = None  # file: the data folder
    bucket: str = ""
    prefix: str = ""


def parse_storage_url(url: str, data_dir: str) -> StorageSpec:
    """`file://PATH` (or empty: the data folder) or `s3://BUCKET/PREFIX`."""
    if not url:
        return StorageSpec("file", Path(data_dir))
    parts = urlsplit(url)
    if parts.scheme == "file":
        path = unquote(parts.netloc + parts.path)
        return StorageSpec("file", Path(path) if path else Path(data_dir))
    if parts.scheme == "s3":
        bucket = parts.netloc
        if not 3 <= len(bucket) <= 63:
            raise StorageConfigError(
                f"TUSCAM_STORAGE_URL={url!r}: the bucket name must have 3 to 63 characters "
                "(s3://BUCKET/PREFIX)"
            )
        if parts.query or parts.fragment:
            raise StorageConfigError(f"TUSCAM_STORAGE_URL={url!r}: no query or fragment allowed")
        return StorageSpec("s3", bucket=bucket, prefix=unquote(parts.path).strip("/"))
    raise StorageConfigError(
        f"TUSCAM_STORAGE_URL={url!r}: use file://PATH or s3://BUCKET/PREFIX "
        f"(scheme {parts.scheme!r} is not known)"
    )


def require_postgres(database_url: str) -> None:
    """The S3 store keeps offsets and parts in PostgreSQL: nodes must share one database."""
    try:
        backend = make_url(database_url).get_backend_name()
    except Exception as exc:  # noqa: BLE001 (any unparsable URL gets the same message)
        raise StorageConfigError(f"TUSCAM_DATABASE_URL is not a database URL: {exc}") from None
    if backend != "postgresql":
        raise StorageConfigError(
            "TUSCAM_STORAGE_URL=s3://... needs PostgreSQL shared by every node: set "
            "TUSCAM_DATABASE_URL=postgresql+psycopg://USER@HOST/DB (it is "
            f"{backend!r} now)"
        )


def s3_client(endpoint_url: str | None, region: str) -> Any:
    """A boto3 S3 client: credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the
    usual AWS configuration chain; path-style addressing when an endpoint is given (most
    S3-compatible services want it)."""
    import boto3
    from botocore.config import Config

    config = Config(
        region_name=region,
        s3={"addressing_style": "path"} if endpoint_url else {},
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
        max_pool_connections=64,
        # Checksums only where S3 requires them: S3-compatible services differ in which of
        # the newer checksum headers they accept.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.client("s3", endpoint_url=endpoint_url or None, config=config)


def check_bucket(client: Any, bucket: str, endpoint_url: str | None) -> None:
    """Fail at start, naming the bucket, if it is missing or cannot be reached."""
    from botocore.exceptions import BotoCoreError, ClientError

    where = endpoint_url or "AWS S3"
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("404", "NoSuchBucket", "NotFound"):
            raise StorageConfigError(
                f"the bucket {bucket!r} does not exist at {where}: create it first "
                "(tuscam never creates buckets)"
            ) from None
        raise StorageConfigError(
            f"the bucket {bucket!r} at {where} refused access ({code}): check the credentials "
            "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) and the bucket's policy"
        ) from None
    except BotoCoreError as exc:
        raise StorageConfigError(
            f"the object store at {where} cannot be reached for bucket {bucket!r}: {exc}"
        ) from None


def staging_dir(data_dir: str) -> Path:
    """Local scratch space of an S3 node (finish-hook downloads, capture staging): nothing
    stays there after a request."""
    base = Path(data_dir) if data_dir else Path(tempfile.gettempdir())
    path = base / "staging"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class StorageParts:
    """What one app instance stores into: the tus store and the capture store."""

    spec: StorageSpec
    tus_store: Any  # app.tus.storage.Storage
    capture_store: Any  # services.camera.capture_store.CaptureStore


def build_storage(config: Mapping[str, Any]) -> StorageParts:
    """The stores for this configuration; for S3 every check is made here, at start."""
    from app.tus.filestore import FileStore
    from services.camera.capture_store import CaptureStore

    data_dir = str(config["DATA_DIR"])
    spec = parse_storage_url(str(config.get("STORAGE_URL") or ""), data_dir)
    if spec.kind == "file":
        assert spec.directory is not None
        return StorageParts(
            spec, FileStore(spec.directory / "uploads"), CaptureStore(spec.directory / "captures")
        )
    from app.db import server_engine
    from app.tus.s3store import S3Store
    from services.camera.s3_capture_store import S3CaptureStore

    require_postgres(str(config["DATABASE_URL"]))
    endpoint = str(config.get("S3_ENDPOINT_URL") or "") or None
    client = s3_client(endpoint, str(config.get("S3_REGION") or "us-east-1"))
    check_bucket(client, spec.bucket, endpoint)
    staging = staging_dir(data_dir)
    engine = server_engine(str(config["DATABASE_URL"]), pool_size=10)
    tus_store = S3Store(
        client,
        spec.bucket,
        f"{spec.prefix}/uploads" if spec.prefix else "uploads",
        engine,
        max_size=int(config.get("MAX_UPLOAD_BYTES") or 2 * 1024**3),
        temp_dir=staging / "tmp",
    )
    (staging / "tmp").mkdir(exist_ok=True)
    captures = S3CaptureStore(staging, client, spec.bucket, spec.prefix, uploads=tus_store)
    return StorageParts(spec, tus_store, captures)
