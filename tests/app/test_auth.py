"""Login, logout, bearer tokens and roles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.auth import LOGIN_FAILED, Principal, TokenCache, hash_token
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


# -- the bearer-token cache (app.auth.TokenCache) ---------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(app: Flask) -> FakeClock:
    """The app's token cache with a 5 s lifetime on a clock the test moves."""
    fake = FakeClock()
    app.extensions["tuscam.token_cache"] = TokenCache(5.0, clock=fake)
    return fake


def _revoke(app: Flask) -> None:
    with session_factory(app)() as db:
        db.query(ApiToken).one().revoked_at = datetime.now(UTC)
        db.commit()


def test_a_revoked_token_stops_working_within_the_cache_lifetime(
    app: Flask, client: FlaskClient, clock: FakeClock
) -> None:
    add_user(app, "olga")
    token = token_for(app, "olga")
    tus = {"Tus-Resumable": "1.0.0", **bearer(token)}
    unknown_upload = "/files/" + "a" * 32
    assert client.head(unknown_upload, headers=tus).status_code == 404  # authenticated
    assert client.get("/api/assessments", headers=bearer(token)).status_code == 200
    _revoke(app)
    clock.now += 4.9  # documented staleness: a cached token keeps working up to 5 s
    assert client.get("/api/assessments", headers=bearer(token)).status_code == 200
    clock.now += 0.2
    assert client.get("/api/assessments", headers=bearer(token)).status_code == 401
    assert client.head(unknown_upload, headers=tus).status_code == 401


def test_a_deactivated_user_is_refused_by_pages_and_api_at_once_even_when_cached(
    app: Flask, client: FlaskClient, clock: FakeClock
) -> None:
    add_user(app, "olga")
    token = token_for(app, "olga")
    assert client.get("/api/assessments", headers=bearer(token)).status_code == 200
    with session_factory(app)() as db:
        db.query(User).one().active = False
        db.commit()
    # current_user() re-reads the user row; only tus requests use the cached principal.
    assert client.get("/api/assessments", headers=bearer(token)).status_code == 401


def test_a_refusal_is_not_cached(app: Flask, client: FlaskClient, clock: FakeClock) -> None:
    add_user(app, "olga")
    token = token_for(app, "olga")
    wrong = token + "x"
    assert client.get("/api/assessments", headers=bearer(wrong)).status_code == 401
    assert client.get("/api/assessments", headers=bearer(token)).status_code == 200


def test_last_used_at_is_written_at_most_once_a_minute(app: Flask, client: FlaskClient) -> None:
    app.extensions["tuscam.token_cache"] = TokenCache(0)  # every request reads the database
    add_user(app, "olga")
    token = token_for(app, "olga")
    assert client.get("/api/assessments", headers=bearer(token)).status_code == 200
    with session_factory(app)() as db:
        first = db.query(ApiToken).one().last_used_at
    assert first is not None
    assert client.get("/api/assessments", headers=bearer(token)).status_code == 200
    with session_factory(app)() as db:
        row = db.query(ApiToken).one()
        assert row.last_used_at == first
        row.last_used_at = first - timedelta(minutes=2)
        db.commit()
    assert client.get("/api/assessments", headers=bearer(token)).status_code == 200
    with session_factory(app)() as db:
        assert db.query(ApiToken).one().last_used_at > first


def test_token_cache_entries_expire_and_a_zero_lifetime_caches_nothing() -> None:
    clock = FakeClock()
    cache = TokenCache(5.0, clock=clock)
    who = Principal(7, "operator")
    cache.put("h", who)
    assert cache.get("h") == who and cache.get("other") is None
    clock.now += 5
    assert cache.get("h") is None
    off = TokenCache(0, clock=clock)
    off.put("h", who)
    assert off.get("h") is None


def test_a_full_token_cache_starts_over_instead_of_growing() -> None:
    cache = TokenCache(5.0, max_entries=2)
    for key in ("a", "b", "c"):
        cache.put(key, Principal(1, "operator"))
    assert [cache.get(k) is not None for k in ("a", "b", "c")] == [False, False, True]


def test_only_the_principal_of_an_admin_is_admin() -> None:
    assert Principal(1, "admin").is_admin
    assert not Principal(2, "reviewer").is_admin and not Principal(3, "operator").is_admin
