"""Fixtures for the reviewer pages: the app with the review blueprint, users of every role with
logged-in clients, and a factory that writes assessments, sessions and captures directly."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from app.db import session_factory
from services.models import Assessment, Capture, CaptureSession, utcnow
from tests.app.helpers import add_user, login

ROLES = {"op": "operator", "op2": "operator", "rev": "reviewer", "adm": "admin"}


@pytest.fixture
def users(app: Flask) -> dict[str, int]:
    return {name: add_user(app, name, role) for name, role in ROLES.items()}


@pytest.fixture
def as_user(app: Flask, users: dict[str, int]) -> Callable[[str], FlaskClient]:
    """as_user("rev") -> a test client logged in as that user (one client per user)."""
    clients: dict[str, FlaskClient] = {}

    def get(name: str) -> FlaskClient:
        if name not in clients:
            client = app.test_client()
            assert login(client, name).status_code == 302
            clients[name] = client
        return clients[name]

    return get


class Factory:
    """Rows written straight to the database, as the capture service would record them."""

    def __init__(self, app: Flask, users: dict[str, int]) -> None:
        self.app = app
        self.users = users
        self._n = itertools.count(1)

    def db(self) -> Session:
        return session_factory(self.app)()

    def assessment(self, title: str = "Bridge survey", owner: str = "op") -> int:
        with self.db() as db:
            a = Assessment(title=title, created_by_id=self.users[owner])
            db.add(a)
            db.commit()
            return a.id

    def session(
        self, assessment_id: int, label: str = "north pier", operator: str | None = "op"
    ) -> int:
        with self.db() as db:
            s = CaptureSession(
                assessment_id=assessment_id,
                label=label,
                operator_id=self.users[operator] if operator else None,
            )
            db.add(s)
            db.commit()
            return s.id

    def captures(self, session_id: int, count: int, **fields: Any) -> list[int]:
        start = utcnow() - timedelta(hours=1)
        rows = []
        with self.db() as db:
            for _ in range(count):
                n = next(self._n)
                values: dict[str, Any] = {
                    "session_id": session_id,
                    "upload_id": hashlib.md5(f"u{n}".encode()).hexdigest(),
                    "uploaded_by_id": self.users["op"],
                    "filename": f"IMG_{n:05d}.jpg",
                    "declared_type": "image/jpeg",
                    "capture_trigger": "manual",
                    "capture_type": "photo",
                    "camera_settings": {"zoom": 1, "facingMode": "environment"},
                    "sha256": hashlib.sha256(f"c{n}".encode()).hexdigest(),
                    "bytes": 123_456,
                    "width": 640,
                    "height": 480,
                    "format": "JPEG",
                    "original_path": f"originals/{n}.jpg",
                    "thumbnail_path": f"thumbnails/{n}.jpg",
                    "exif": {"make": "Fake", "model": "Cam 1"},
                    "upload_started_at": start + timedelta(seconds=n),
                    "created_at": start + timedelta(seconds=n, milliseconds=1500),
                    **fields,
                }
                row = Capture(**values)
                db.add(row)
                rows.append(row)
            db.commit()
            return [r.id for r in rows]

    def get(self, capture_id: int) -> Capture:
        with self.db() as db:
            capture = db.get(Capture, capture_id)
            assert capture is not None
            db.expunge(capture)
            return capture


@pytest.fixture
def make(app: Flask, users: dict[str, int]) -> Factory:
    return Factory(app, users)
