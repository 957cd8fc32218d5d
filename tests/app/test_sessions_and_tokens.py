"""Sessions end on the server (logout, lifetime, a new password, deactivation), and the admin
commands that list and revoke tokens and lock users out, through the Flask test client."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from app import auth
from app.db import session_factory
from services.models import ApiToken, User
from tests.app.helpers import add_user, bearer, csrf_token, login, token_for
from tests.conftest import make_test_app

TUS = {"Tus-Resumable": "1.0.0"}
UNKNOWN_UPLOAD = "/files/" + "a" * 32


def _cookie(client: FlaskClient) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


def _replay(app: Flask, cookie: str) -> FlaskClient:
    """A fresh browser holding a copy of a session cookie."""
    other = app.test_client()
    other.set_cookie("session", cookie)
    return other


def _signed_in(client: FlaskClient) -> bool:
    """The start page opens (a page), the API answers (JSON) and tus authenticates."""
    page = client.get("/").status_code
    api = client.get("/api/assessments", headers={"Accept": "application/json"}).status_code
    tus = client.head(UNKNOWN_UPLOAD, headers=TUS).status_code
    assert (page, api, tus) in [(200, 200, 404), (302, 401, 401)], (page, api, tus)
    return page == 200


def _logout(client: FlaskClient) -> None:
    assert (
        client.post("/auth/logout", data={"csrf_token": csrf_token(client, "/")}).status_code == 302
    )


def test_a_cookie_replayed_after_logout_is_refused_by_pages_api_and_tus(
    app: Flask, client: FlaskClient
) -> None:
    add_user(app, "olga")
    login(client, "olga")
    stolen = _cookie(client)
    assert _signed_in(_replay(app, stolen))
    _logout(client)
    assert not _signed_in(_replay(app, stolen))
    assert not _signed_in(client)


def test_logout_ends_the_users_other_browser_sessions_too_and_a_new_login_works(
    app: Flask,
) -> None:
    add_user(app, "olga")
    phone, laptop = app.test_client(), app.test_client()
    login(phone, "olga")
    login(laptop, "olga")
    _logout(laptop)
    assert not _signed_in(phone)
    login(phone, "olga")
    assert _signed_in(phone)


def test_a_session_lasts_session_hours_from_login(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_user(app, "olga")
    login(client, "olga")
    start = auth.wall_clock()
    monkeypatch.setattr(auth, "wall_clock", lambda: start + 12 * 3600 - 60)
    assert _signed_in(client)  # activity does not extend it ...
    monkeypatch.setattr(auth, "wall_clock", lambda: start + 12 * 3600 + 1)
    assert not _signed_in(client)  # ... 12 hours after login it is over


def test_session_hours_is_configurable_and_sets_the_cookie_lifetime(
    tmp_path,
    monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
) -> None:
    app = make_test_app(tmp_path, f"sqlite:///{tmp_path / 'h.sqlite3'}", SESSION_HOURS=1)
    add_user(app, "olga")
    client = app.test_client()
    response = login(client, "olga")
    expires = re.search(r"Expires=([^;]+)", response.headers["Set-Cookie"]).group(1)
    lifetime = datetime.strptime(expires, "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=UTC)
    assert timedelta(minutes=55) < lifetime - datetime.now(UTC) <= timedelta(hours=1)
    start = auth.wall_clock()
    monkeypatch.setattr(auth, "wall_clock", lambda: start + 3601)
    assert not _signed_in(client)
    app.extensions["tuscam.engine"].dispose()


def test_the_default_session_lifetime_is_12_hours(app: Flask) -> None:
    assert app.permanent_session_lifetime == timedelta(hours=12)


# --- admin commands ----------------------------------------------------------------------------


def test_list_tokens_shows_no_secret_only_a_prefix_and_dates(
    app: Flask, runner: FlaskCliRunner, client: FlaskClient
) -> None:
    add_user(app, "olga")
    token = token_for(app, "olga")
    client.get("/api/assessments", headers=bearer(token))  # marks it used
    result = runner.invoke(args=["list-tokens", "olga"])
    assert result.exit_code == 0, result.output
    assert token not in result.output and token[8:16] not in result.output
    header, row = result.output.strip().splitlines()[:2]
    assert header.split("\t") == ["id", "name", "prefix", "created", "last used", "revoked"]
    fields = row.split("\t")
    assert fields[2] == token[:8] + "..." and fields[3].endswith("UTC")
    assert fields[4].endswith("UTC") and fields[5] == "-"
    missing = runner.invoke(args=["list-tokens", "nobody"])
    assert missing.exit_code != 0 and "no user 'nobody'" in missing.output


def test_revoke_tokens_revokes_every_token_of_that_user_only(
    app: Flask, runner: FlaskCliRunner, client: FlaskClient
) -> None:
    app.extensions["tuscam.token_cache"] = auth.TokenCache(0)
    add_user(app, "olga")
    add_user(app, "sam")
    olgas = [token_for(app, "olga"), token_for(app, "olga")]
    sams = token_for(app, "sam")
    result = runner.invoke(args=["revoke-tokens", "olga"])
    assert result.exit_code == 0 and "Revoked 2 token(s) of olga" in result.output
    for token in olgas:
        assert client.get("/api/assessments", headers=bearer(token)).status_code == 401
        assert client.head(UNKNOWN_UPLOAD, headers={**TUS, **bearer(token)}).status_code == 401
    assert client.get("/api/assessments", headers=bearer(sams)).status_code == 200
    assert "revoked" in runner.invoke(args=["list-tokens", "olga"]).output.split("\n")[0]
    with session_factory(app)() as db:
        assert all(t.revoked_at for t in db.query(ApiToken).filter_by(user_id=1))


def test_deactivate_logs_out_at_once_and_activate_lets_the_user_back(
    app: Flask, runner: FlaskCliRunner, client: FlaskClient
) -> None:
    add_user(app, "olga")
    login(client, "olga")
    cookie = _cookie(client)
    assert runner.invoke(args=["deactivate", "olga"]).exit_code == 0
    assert not _signed_in(client)
    assert login(client, "olga").status_code == 401
    assert runner.invoke(args=["activate", "olga"]).exit_code == 0
    assert not _signed_in(_replay(app, cookie))  # the old session stays ended
    assert login(client, "olga").status_code == 302 and _signed_in(client)


def test_set_password_reads_stdin_and_ends_the_users_sessions(
    app: Flask, runner: FlaskCliRunner, client: FlaskClient
) -> None:
    add_user(app, "olga")
    login(client, "olga")
    result = runner.invoke(args=["set-password", "olga"], input="new-password-1\n")
    assert result.exit_code == 0, result.output
    assert "new-password-1" not in result.output
    assert not _signed_in(client)
    assert login(client, "olga").status_code == 401  # the old password
    assert login(client, "olga", "new-password-1").status_code == 302
    short = runner.invoke(args=["set-password", "olga"], input="short\n")
    assert short.exit_code != 0 and "at least 8" in short.output
    with session_factory(app)() as db:
        assert auth.check_credentials(db, "olga", "new-password-1") is not None


def test_a_deactivated_users_cached_token_is_refused_by_pages_and_api_at_once(
    app: Flask, runner: FlaskCliRunner, client: FlaskClient
) -> None:
    add_user(app, "olga")
    token = token_for(app, "olga")
    assert client.get("/", headers=bearer(token)).status_code == 200
    assert runner.invoke(args=["deactivate", "olga"]).exit_code == 0
    assert client.get("/", headers=bearer(token)).status_code == 401
    assert client.get("/api/assessments", headers=bearer(token)).status_code == 401
    with session_factory(app)() as db:
        assert db.query(User).one().active is False
