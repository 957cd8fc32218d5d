"""The tus hooks of app/uploads.py through the Flask test client: who may create an upload where,
in which order the refusals come, and what a finished upload answers."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.db import session_factory
from services.models import Assessment, Capture, CaptureSession, User
from tests.app.helpers import add_user, bearer, token_for

TUS = {"Tus-Resumable": "1.0.0"}


def _metadata(**fields: str | None) -> str:
    return ",".join(
        key if value is None else f"{key} {base64.b64encode(value.encode()).decode()}"
        for key, value in fields.items()
    )


@dataclass
class World:
    tokens: dict[str, str]
    ids: dict[str, int]


@pytest.fixture
def world(app: Flask) -> World:
    users = {name: add_user(app, name, role) for name, role in _ROLES.items()}
    with session_factory(app)() as db:
        first, second = Assessment(title="A"), Assessment(title="B")
        db.add_all([first, second])
        db.flush()
        sessions = {
            "open": CaptureSession(assessment_id=first.id, label="open"),
            "assigned": CaptureSession(
                assessment_id=first.id, label="mine", operator_id=users["op"]
            ),
            "closed": CaptureSession(
                assessment_id=first.id, label="closed", ended_at=datetime.now(UTC)
            ),
        }
        db.add_all(sessions.values())
        db.commit()
        ids = {name: s.id for name, s in sessions.items()}
        ids.update(assessment=first.id, other_assessment=second.id)
    return World({name: token_for(app, name) for name in users}, ids)


_ROLES = {"op": "operator", "op2": "operator", "rev": "reviewer", "admin": "admin"}


def _create(client: FlaskClient, token: str, metadata: str, **headers: str):  # noqa: ANN202
    return client.post(
        "/files/",
        headers={
            **TUS,
            **bearer(token),
            "Upload-Length": "10",
            "Upload-Metadata": metadata,
            **headers,
        },
    )


@pytest.mark.parametrize(
    ("who", "session", "extra", "status", "message"),
    [
        ("op", "open", {}, 201, None),
        ("op", "assigned", {}, 201, None),
        ("admin", "assigned", {}, 201, None),
        ("op2", "assigned", {}, 404, "does not exist"),  # not told apart from a missing one
        ("rev", "open", {}, 403, "needs the operator role"),
        ("op", "missing", {}, 404, "does not exist"),
        ("op", "closed", {}, 409, "is closed"),
        ("op", "open", {"assessment_id": "other_assessment"}, 400, "does not match session"),
        ("op", "open", {"assessment_id": "assessment"}, 201, None),
    ],
)
def test_creating_an_upload_checks_the_user_and_the_session(
    client: FlaskClient,
    world: World,
    who: str,
    session: str,
    extra: dict[str, str],
    status: int,
    message: str | None,
) -> None:
    session_id = str(world.ids.get(session, 424242))
    fields = {k: str(world.ids[v]) for k, v in extra.items()}
    response = _create(
        client, world.tokens[who], _metadata(filename="a.jpg", session_id=session_id, **fields)
    )
    assert response.status_code == status, response.get_data(as_text=True)
    if message:
        assert message in response.get_data(as_text=True)


def test_bad_metadata_is_400_naming_the_field(client: FlaskClient, world: World) -> None:
    response = _create(client, world.tokens["op"], _metadata(filename="a.jpg", session_id="x1"))
    assert response.status_code == 400
    assert "session_id must be a positive integer" in response.get_data(as_text=True)


def _deactivate(app: Flask, username: str) -> None:
    with session_factory(app)() as db:
        db.query(User).filter_by(username=username).one().active = False
        db.commit()


def test_a_deactivated_account_is_refused_before_its_metadata_is_judged(
    app: Flask, client: FlaskClient, world: World
) -> None:
    token = world.tokens["op"]
    ok = _metadata(filename="a.jpg", session_id=str(world.ids["open"]))
    assert _create(client, token, ok).status_code == 201  # the token is now in the cache
    _deactivate(app, "op")
    # Within the cache's lifetime the token still authenticates, but the pre-create hook reads
    # the user row: no new upload starts, whatever the metadata.
    for metadata in (ok, _metadata(filename="a.jpg", session_id="x1")):
        response = _create(client, token, metadata)
        assert response.status_code == 401
        assert "not active" in response.get_data(as_text=True)


def test_partial_uploads_need_the_uploading_role(client: FlaskClient, world: World) -> None:
    partial = {"Upload-Concat": "partial"}
    assert _create(client, world.tokens["op"], "", **partial).status_code == 201
    response = _create(client, world.tokens["rev"], "", **partial)
    assert response.status_code == 403
    assert "operator role" in response.get_data(as_text=True)


def test_a_finished_upload_answers_with_its_capture(
    app: Flask, client: FlaskClient, world: World
) -> None:
    data = b"%PDF-1.7\n" + os.urandom(1)  # 10 bytes, not a photo: a rejected capture
    created = _create(
        client, world.tokens["op"], _metadata(filename="a.pdf", session_id=str(world.ids["open"]))
    )
    assert created.status_code == 201
    response = client.patch(
        created.headers["Location"],
        data=data,
        headers={
            **TUS,
            **bearer(world.tokens["op"]),
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
        },
    )
    assert response.status_code == 204
    assert response.headers["Tuscam-Capture-Status"] == "rejected"
    assert response.headers["Tuscam-Capture-Reason"].startswith("PDF is not accepted")
    with session_factory(app)() as db:
        capture = db.get(Capture, int(response.headers["Tuscam-Capture-Id"]))
        assert capture is not None
        assert (capture.session_id, capture.bytes) == (world.ids["open"], len(data))
        assert capture.uploaded_by_id is not None and capture.format is None
