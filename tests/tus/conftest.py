"""Fixtures for the tus core tests: a handler on a temporary folder and a small client that
speaks to it with io.BytesIO bodies (no web server)."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

import pytest

from app.tus.config import TusConfig
from app.tus.filelocker import FileLocker
from app.tus.filestore import FileStore
from app.tus.handler import TusHandler
from app.tus.hooks import Hooks
from app.tus.messages import TusRequest, TusResponse
from app.tus.storage import Locker, Storage

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = "application/offset+octet-stream"


def meta(**values: str | None) -> str:
    return ",".join(
        k if v is None else f"{k} {base64.b64encode(v.encode()).decode()}"
        for k, v in values.items()
    )


class Clock:
    """An injectable clock for expiry tests."""

    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


class Client:
    """Drives a TusHandler the way a tus client would."""

    def __init__(self, handler: TusHandler, owner: str = "alice", is_admin: bool = False):
        self.handler = handler
        self.owner = owner
        self.is_admin = is_admin

    def request(
        self,
        method: str,
        upload_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | BinaryIO = b"",
        *,
        tus: bool = True,
    ) -> TusResponse:
        stream = io.BytesIO(body) if isinstance(body, bytes) else body
        hdrs = {**(TUS if tus else {}), **(headers or {})}
        return self.handler.handle(
            TusRequest(method, upload_id, hdrs, stream, self.owner, self.is_admin, "/files/")
        )

    def create(self, length: int | None = None, metadata: str = "", **headers: str) -> str:
        hdrs = dict(headers)
        if length is None:
            hdrs.setdefault("Upload-Defer-Length", "1")
        else:
            hdrs["Upload-Length"] = str(length)
        if metadata:
            hdrs["Upload-Metadata"] = metadata
        r = self.request("POST", None, hdrs)
        assert r.status == 201, r
        return r.headers["Location"].rsplit("/", 1)[1]

    def patch(
        self,
        upload_id: str,
        offset: int,
        data: bytes | BinaryIO,
        length: int | None = None,
        **h: str,
    ) -> TusResponse:
        hdrs = {"Content-Type": OCTETS, "Upload-Offset": str(offset)}
        if isinstance(data, bytes) or length is not None:
            hdrs["Content-Length"] = str(len(data) if isinstance(data, bytes) else length)
        return self.request("PATCH", upload_id, {**hdrs, **h}, data)

    def head(self, upload_id: str) -> TusResponse:
        return self.request("HEAD", upload_id)

    def offset(self, upload_id: str) -> int:
        r = self.head(upload_id)
        assert r.status == 200, r
        return int(r.headers["Upload-Offset"])


@pytest.fixture
def clock() -> Clock:
    return Clock()


def file_parts(directory: Path, block_size: int = 4096) -> tuple[FileStore, FileLocker]:
    """The one-machine composition: a file store and flock locks in one folder."""
    store = FileStore(directory, block_size=block_size)
    return store, FileLocker(directory, link_to=store.path_of)


def make_handler(
    directory: Path, config: TusConfig | None = None, hooks: Hooks | None = None, **kwargs: object
) -> TusHandler:
    store, locker = file_parts(directory)
    return TusHandler(store, locker, hooks, config or TusConfig(), **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def upload_dir(tmp_path: Path) -> Path:
    return tmp_path / "uploads"


@pytest.fixture
def config() -> TusConfig:
    return TusConfig(
        max_size=10_000_000,
        lock_timeout=2.0,
        body_idle_timeout=2.0,
        max_unfinished_per_owner=20,
        max_metadata_bytes=1024,
    )


@pytest.fixture
def store(upload_dir: Path) -> Storage:
    return FileStore(upload_dir, block_size=4096)


@pytest.fixture
def locker(upload_dir: Path, store: Storage) -> Locker:
    return FileLocker(upload_dir, link_to=getattr(store, "path_of", None))


@pytest.fixture
def hooks() -> Hooks:
    return Hooks()


@pytest.fixture
def handler(
    store: Storage, locker: Locker, config: TusConfig, hooks: Hooks, clock: Clock
) -> TusHandler:
    return TusHandler(store, locker, hooks, config, clock=clock)


@pytest.fixture
def client(handler: TusHandler) -> Client:
    return Client(handler)


from tests.tus.s3fixtures import s3_store, tus_database, tus_template  # noqa: E402, F401
