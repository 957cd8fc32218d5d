"""Login, logout, bearer tokens and roles."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.auth import LOGIN_FAILED, hash_token
from app.db import session_factory
from services.models import ApiToken, User
from tests.app.helpers import add_user, bearer, csrf_token, login, token_for


def test_login_page_renders_with_a_csrf_token(client: FlaskClient) -> None:
    assert csrf_token(client)


def test_login_with_the_right_password_opens_the_start_page(
    app: Flask, client: FlaskClient
) -> None:
    add_user(app, "olga")
    response = login(client, "olga")
    assert response.status_code == 302
    assert client.get("/").status_code == 200


@pytest.mark.parametrize(
    "username,password", [("olga", "wrong-password"), ("nobody", "correct-horse")]
)
def test_wrong_username_or_password_give_the_same_message(
    app: Flask, client: FlaskClient, username: str, password: str
) -> None:
    add_user(app, "olga")
    response = login(client, username, password)
    assert response.status_code == 401
    assert LOGIN_FAILED in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_login_without_csrf_token_is_refused(app: Flask, client: FlaskClient) -> None:
    add_user(app, "olga")
    response = client.post("/auth/login", data={"username": "olga", "password": "correct-horse"})
    assert response.status_code == 400
    assert client.get("/").status_code == 302


def test_login_never_redirects_off_site(app: Flask, client: FlaskClient) -> None:
    add_user(app, "olga")
    token = csrf_token(client)
    response = client.post(
        "/auth/login?next=//evil.example/x",
        data={"username": "olga", "password": "correct-horse", "csrf_token": token},
    )
    assert response.headers["Location"] == "/"


def test_logout_ends_the_session(app: Flask, client: FlaskClient) -> None:
    add_user(app, "olga")
    login(client, "olga")
    token = csrf_token(client, "/")
    assert client.post("/auth/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/").status_code == 302


def test_pages_redirect_anonymous_users_to_login(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/auth/login")


def test_api_without_credentials_is_401_json(client: FlaskClient) -> None:
    response = client.get("/api/assessments")
    assert response.status_code == 401
    assert response.json["error"] == "unauthorized"


def test_bearer_token_authenticates_and_is_stored_hashed(app: Flask, client: FlaskClient) -> None:
    add_user(app, "olga")
    token = token_for(app, "olga")
    assert client.get("/api/assessments", headers=bearer(token)).status_code == 200
    with session_factory(app)() as db:
        row = db.query(ApiToken).one()
        assert row.token_hash == hash_token(token) and token not in row.token_hash
        assert row.last_used_at is not None


def test_revoked_token_is_refused(app: Flask, client: FlaskClient) -> None:
    add_user(app, "olga")
    token = token_for(app, "olga")
    with session_factory(app)() as db:
        db.query(ApiToken).one().revoked_at = datetime.now(UTC)
        db.commit()
    assert client.get("/api/assessments", headers=bearer(token)).status_code == 401


@pytest.mark.parametrize("header", ["Bearer nonsense", "Bearer ", "Basic b2xnYTpw", "tcm_x"])
def test_bad_authorization_headers_are_401(client: FlaskClient, header: str) -> None:
    assert client.get("/api/assessments", headers={"Authorization": header}).status_code == 401


def test_deactivated_user_loses_token_and_session(app: Flask, client: FlaskClient) -> None:
    add_user(app, "olga")
    token = token_for(app, "olga")
    login(client, "olga")
    with session_factory(app)() as db:
        db.query(User).one().active = False
        db.commit()
    assert client.get("/api/assessments", headers=bearer(token)).status_code == 401
    assert client.get("/").status_code == 302


@pytest.mark.parametrize("role,status", [("operator", 201), ("admin", 201), ("reviewer", 403)])
def test_creating_an_assessment_depends_on_role(
    app: Flask, client: FlaskClient, role: str, status: int
) -> None:
    add_user(app, "u", role)
    response = client.post(
        "/api/assessments", json={"title": "Site visit"}, headers=bearer(token_for(app, "u"))
    )
    assert response.status_code == status
    if status == 403:
        assert "role" in response.json["message"]


def test_cookie_authenticated_api_write_needs_csrf(app: Flask, client: FlaskClient) -> None:
    add_user(app, "olga")
    login(client, "olga")
    assert client.post("/api/assessments", json={"title": "x"}).status_code == 400
    token = csrf_token(client, "/")
    response = client.post("/api/assessments", json={"title": "x"}, headers={"X-CSRFToken": token})
    assert response.status_code == 201
