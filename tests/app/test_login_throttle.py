"""The login throttle: 10 failures for one username within the window answer 429 with
Retry-After and compute no password hash; a client address has a higher limit across usernames;
the count lives in the database, so every gunicorn worker shares it (live server)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete
from sqlalchemy.orm import Session

from app import auth
from app.cli import upgrade_database
from app.db import make_engine
from app.throttle import LoginLimits, retry_after
from services.models import LoginFailure, utcnow
from tests.app.helpers import CSRF_RE, add_user, login
from tests.conftest import make_test_app
from tests.support.server import start_live_server


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every password hash the login computes (a spy on the real function)."""
    calls: list[str] = []
    real = auth.check_password_hash

    def spy(pwhash: str, password: str) -> bool:
        calls.append(pwhash)
        return real(pwhash, password)

    monkeypatch.setattr(auth, "check_password_hash", spy)
    return calls


def _fail(client: FlaskClient, times: int, username: str = "olga") -> list[int]:
    return [login(client, username, f"wrong-{i}").status_code for i in range(times)]


def test_ten_failures_block_the_username_with_429_and_retry_after_without_hashing(
    app: Flask, client: FlaskClient, hashes: list[str]
) -> None:
    add_user(app, "olga")
    assert _fail(client, 10) == [401] * 10
    assert len(hashes) == 10
    blocked = login(client, "olga")  # even the right password
    assert blocked.status_code == 429
    retry = int(blocked.headers["Retry-After"])
    assert 14 * 60 < retry <= 15 * 60
    assert "Too many failed logins" in blocked.get_data(as_text=True)
    assert len(hashes) == 10  # no hash computed while blocked
    assert client.get("/").status_code == 302


def test_the_throttle_works_on_sqlite_and_postgresql(any_db_app: Flask) -> None:
    add_user(any_db_app, "olga")
    client = any_db_app.test_client()
    assert _fail(client, 10) == [401] * 10
    assert login(client, "olga").status_code == 429


def test_the_block_ends_when_the_failures_leave_the_window(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_user(app, "olga")
    _fail(client, 10)
    later = utcnow() + timedelta(minutes=15, seconds=1)
    monkeypatch.setattr(auth, "utcnow", lambda: later)
    assert login(client, "olga").status_code == 302


def test_a_successful_login_resets_the_username_count(app: Flask, client: FlaskClient) -> None:
    add_user(app, "olga")
    _fail(client, 9)
    assert login(client, "olga").status_code == 302
    assert _fail(app.test_client(), 9) == [401] * 9  # nine more are allowed again
    assert login(app.test_client(), "olga", "wrong").status_code == 401
    assert login(app.test_client(), "olga").status_code == 429


def test_other_usernames_are_not_blocked_by_one_users_failures(
    app: Flask, client: FlaskClient
) -> None:
    add_user(app, "olga")
    add_user(app, "sam")
    _fail(client, 10, "olga")
    assert login(client, "sam").status_code == 302


def test_one_address_guessing_many_usernames_is_blocked_at_its_own_limit(
    tmp_path: Path, hashes: list[str]
) -> None:
    app = make_test_app(
        tmp_path, f"sqlite:///{tmp_path / 'a.sqlite3'}", LOGIN_MAX_FAILURES_PER_ADDRESS=12
    )
    add_user(app, "olga")
    client = app.test_client()
    statuses = [login(client, f"user{i}", "guess").status_code for i in range(12)]
    assert statuses == [401] * 12
    blocked = login(client, "olga")
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0
    assert len(hashes) == 12
    app.extensions["tuscam.engine"].dispose()


def test_a_failed_login_is_logged_without_the_password(
    app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    add_user(app, "olga")
    with caplog.at_level(logging.WARNING):
        login(client, "olga", "hunter2-secret")
    messages = [r.getMessage() for r in caplog.records]
    assert any("login-failed username=olga" in m for m in messages), messages
    assert not any("hunter2-secret" in m for m in messages)


def _live_login(base: str, username: str, password: str) -> requests.Response:
    """One login as a new browser would make it: a new connection, so the next may reach
    another worker."""
    with requests.Session() as browser:
        page = browser.get(base + "/auth/login", timeout=30)
        token = CSRF_RE.search(page.text).group(1)  # type: ignore[union-attr]
        return browser.post(
            base + "/auth/login",
            data={"username": username, "password": password, "csrf_token": token},
            allow_redirects=False,
            timeout=30,
        )


def test_the_count_is_shared_by_every_gunicorn_worker(tmp_path: Path) -> None:
    with start_live_server(tmp_path / "server", workers=3, threads=2) as server:
        password = server.create_user("olga")
        statuses = [_live_login(server.url, "olga", "wrong").status_code for _ in range(10)]
        assert statuses == [401] * 10
        assert len(server.worker_pids()) == 3
        blocked = _live_login(server.url, "olga", password)
        assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0
        assert _live_login(server.url, "olga", password).status_code == 429


# --- the rule itself, for any history of failures ----------------------------------------------


@pytest.fixture(scope="module")
def throttle_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    url = f"sqlite:///{tmp_path_factory.mktemp('throttle') / 't.sqlite3'}"
    upgrade_database(url)
    engine = make_engine(url)
    with Session(engine) as db:
        yield db
    engine.dispose()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    ages=st.lists(st.integers(min_value=0, max_value=2000), max_size=25),
    limit=st.integers(min_value=1, max_value=6),
    window=st.integers(min_value=30, max_value=900),
)
def test_blocked_exactly_while_limit_failures_are_in_the_window(
    throttle_db: Session, ages: list[int], limit: int, window: int
) -> None:
    db = throttle_db
    db.execute(delete(LoginFailure))
    now = utcnow()
    for age in ages:  # seconds ago; the address differs so only the username counts
        db.add(
            LoginFailure(
                username="olga", address=f"a{age}", created_at=now - timedelta(seconds=age)
            )
        )
    db.commit()
    limits = LoginLimits(per_username=limit, per_address=0, window_seconds=window)
    wait = retry_after(db, limits, "olga", "elsewhere", now)
    recent = sorted(a for a in ages if a < window)  # newest first
    if len(recent) < limit:
        assert wait is None
        return
    # Allowed again once the limit-th newest failure leaves the window.
    expected = window - recent[limit - 1]
    assert wait == max(1, expected)
    later = now + timedelta(seconds=wait)
    assert retry_after(db, limits, "olga", "elsewhere", later) is None
