"""Fixtures for the camera service: a real SQLite database in tmp_path (Base.metadata.create_all),
a Session, users of each role, an assessment with open/assigned/closed sessions, a CaptureStore
in tmp_path, and a helper that puts bytes where tus would leave a finished upload.

`camera_database_url` is the one switch: TUSCAM_CAMERA_TEST_DB=postgres (or overriding the
fixture, e.g. with the root `database_url`) runs these tests on PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from services.camera.capture_service import CameraCaptureService, CaptureResult, FinishedUpload
from services.camera.capture_store import CaptureStore
from services.models import Assessment, Base, CaptureSession, Role, User, utcnow
from tests.tus.s3fixtures import tus_database, tus_template  # noqa: F401  (the tus S3 store's)


@pytest.fixture
def camera_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """SQLite by default; TUSCAM_CAMERA_TEST_DB=postgres runs the same tests on PostgreSQL."""
    if os.environ.get("TUSCAM_CAMERA_TEST_DB") == "postgres":
        server = request.getfixturevalue("postgres")  # tests/conftest.py
        return server.create_database("cam_" + secrets.token_hex(6))
    return f"sqlite:///{tmp_path / 'camera.sqlite3'}"


@pytest.fixture
def engine(camera_database_url: str) -> Iterator[Engine]:
    engine = create_engine(camera_database_url)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _foreign_keys(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
            dbapi_conn.execute("PRAGMA foreign_keys=ON")

    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@pytest.fixture
def db(sessions: sessionmaker[Session]) -> Iterator[Session]:
    with sessions() as session:
        yield session


@dataclass
class World:
    admin: User
    operator: User
    other_operator: User
    reviewer: User
    assessment: Assessment
    other_assessment: Assessment
    open_session: CaptureSession  # no operator: any operator may upload
    assigned_session: CaptureSession  # operator only
    closed_session: CaptureSession


@pytest.fixture
def world(db: Session) -> World:
    def user(name: str, role: Role) -> User:
        return User(username=name, role=role.value, password_hash="x")

    admin, operator, other, reviewer = (
        user("admin", Role.ADMIN),
        user("olga", Role.OPERATOR),
        user("oscar", Role.OPERATOR),
        user("rita", Role.REVIEWER),
    )
    assessment = Assessment(title="Bridge inspection", created_by=admin)
    other_assessment = Assessment(title="Roof", created_by=admin)
    open_session = CaptureSession(assessment=assessment, label="open")
    assigned = CaptureSession(assessment=assessment, label="olga's", operator=operator)
    closed = CaptureSession(assessment=assessment, label="done", ended_at=utcnow())
    db.add_all([admin, operator, other, reviewer, assessment, other_assessment])
    db.add_all([open_session, assigned, closed])
    db.commit()
    people = (admin, operator, other, reviewer)
    return World(*people, assessment, other_assessment, open_session, assigned, closed)


@pytest.fixture
def store(tmp_path: Path) -> CaptureStore:
    return CaptureStore(tmp_path / "captures")


@pytest.fixture
def service(db: Session, store: CaptureStore) -> CameraCaptureService:
    return CameraCaptureService(db, store)


@pytest.fixture
def upload_file(tmp_path: Path) -> Callable[[bytes], Path]:
    """Write bytes where tus keeps a finished upload (<upload_dir>/<id>) and return the path."""
    upload_dir = tmp_path / "uploads"
    upload_dir.mkdir()

    def write(data: bytes) -> Path:
        path = upload_dir / secrets.token_hex(16)
        path.write_bytes(data)
        return path

    return write


SaveFn = Callable[..., CaptureResult]
UPLOAD_FIELDS = frozenset(f.name for f in dataclasses.fields(FinishedUpload))


@pytest.fixture
def save(
    service: CameraCaptureService, world: World, upload_file: Callable[[bytes], Path]
) -> SaveFn:
    """save(data, **overrides): one finished upload through the service, into the open session."""

    def run(data: bytes, **kw: Any) -> CaptureResult:
        facts: dict[str, Any] = {
            "upload_id": secrets.token_hex(16),
            "filename": "photo.jpg",
            "filetype": "image/jpeg",
            "uploaded_by_id": world.operator.id,
        }
        for name in UPLOAD_FIELDS & kw.keys():
            facts[name] = kw.pop(name)
        session_id = kw.pop("session_id", world.open_session.id)
        source = kw.pop("file_data", None) or upload_file(data)
        return service.save_capture(session_id, source, **kw, upload=FinishedUpload(**facts))

    return run
