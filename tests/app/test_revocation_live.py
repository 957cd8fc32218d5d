"""Against a real gunicorn server (2 workers, each with its own token cache): `tuscam
revoke-tokens`, `deactivate` and `set-password` run as commands, and the token or session they
end is refused (401) by the JSON API, the pages and tus within TUSCAM_TOKEN_CACHE_SECONDS."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.app.helpers import CSRF_RE
from tests.support.server import ROOT, LiveServer, start_live_server

CACHE_SECONDS = 2
TUSCAM = Path(sys.executable).parent / "tuscam"
UNKNOWN_UPLOAD = "/files/" + "a" * 32


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    env = {"TUSCAM_TOKEN_CACHE_SECONDS": str(CACHE_SECONDS)}
    with start_live_server(tmp_path_factory.mktemp("revoke"), env=env) as live:
        yield live


def tuscam(server: LiveServer, *args: str, stdin: str = "") -> str:
    done = subprocess.run(
        [str(TUSCAM), *args],
        cwd=ROOT,
        env=server.env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def answers(server: LiveServer, headers: dict[str, str]) -> set[tuple[int, int, int]]:
    """(API, page, tus) statuses, asked 8 times over new connections so both workers answer."""
    seen = set()
    for _ in range(8):
        with requests.Session() as s:
            s.headers.update(headers)
            api = s.get(server.url + "/api/assessments", timeout=30).status_code
            page = s.get(server.url + "/", allow_redirects=False, timeout=30).status_code
            tus = s.head(
                server.url + UNKNOWN_UPLOAD, headers={"Tus-Resumable": "1.0.0"}, timeout=30
            ).status_code
        seen.add((api, page, tus))
    return seen


SIGNED_IN = {(200, 200, 404)}  # 404: an authenticated HEAD of an upload that does not exist
TOKEN_REFUSED = {(401, 401, 401)}
COOKIE_REFUSED = {(401, 302, 401)}  # pages send a browser to the login page


def login_cookie(server: LiveServer, username: str, password: str) -> dict[str, str]:
    with requests.Session() as browser:
        token = CSRF_RE.search(browser.get(server.url + "/auth/login", timeout=30).text)
        r = browser.post(
            server.url + "/auth/login",
            data={"username": username, "password": password, "csrf_token": token.group(1)},  # type: ignore[union-attr]
            allow_redirects=False,
            timeout=30,
        )
        assert r.status_code == 302, r.text
        return {"Cookie": f"session={browser.cookies['session']}"}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_revoked_tokens_are_refused_everywhere_within_the_cache_time(server: LiveServer) -> None:
    name, token = server.new_operator("rv")
    assert answers(server, _bearer(token)) == SIGNED_IN  # now cached in both workers
    assert "Revoked 1 token(s)" in tuscam(server, "revoke-tokens", name)
    time.sleep(CACHE_SECONDS + 0.5)
    assert answers(server, _bearer(token)) == TOKEN_REFUSED
    listed = tuscam(server, "list-tokens", name)
    assert token not in listed and token[:8] in listed


def test_a_deactivated_user_loses_the_cookie_at_once_and_tokens_within_the_cache_time(
    server: LiveServer,
) -> None:
    name, token = server.new_operator("dv")
    password = "pass-" + name
    tuscam(server, "set-password", name, stdin=password + "\n")
    cookie = login_cookie(server, name, password)
    assert answers(server, cookie) == answers(server, _bearer(token)) == SIGNED_IN
    tuscam(server, "deactivate", name)
    assert answers(server, cookie) == COOKIE_REFUSED
    time.sleep(CACHE_SECONDS + 0.5)
    assert answers(server, _bearer(token)) == TOKEN_REFUSED


def test_a_new_password_ends_the_users_browser_sessions(server: LiveServer) -> None:
    name, _token = server.new_operator("pw")
    tuscam(server, "set-password", name, stdin="first-password\n")
    cookie = login_cookie(server, name, "first-password")
    assert answers(server, cookie) == SIGNED_IN
    tuscam(server, "set-password", name, stdin="second-password\n")
    assert answers(server, cookie) == COOKIE_REFUSED
    assert answers(server, login_cookie(server, name, "second-password")) == SIGNED_IN


def test_a_cookie_replayed_after_logout_is_refused(server: LiveServer) -> None:
    name, _token = server.new_operator("lo")
    tuscam(server, "set-password", name, stdin="the-password\n")
    with requests.Session() as browser:
        page = browser.get(server.url + "/auth/login", timeout=30).text
        browser.post(
            server.url + "/auth/login",
            data={
                "username": name,
                "password": "the-password",
                "csrf_token": CSRF_RE.search(page).group(1),  # type: ignore[union-attr]
            },
            timeout=30,
        )
        copy = {"Cookie": f"session={browser.cookies['session']}"}
        assert answers(server, copy) == SIGNED_IN
        start = browser.get(server.url + "/", timeout=30).text
        r = browser.post(
            server.url + "/auth/logout",
            data={"csrf_token": CSRF_RE.search(start).group(1)},  # type: ignore[union-attr]
            allow_redirects=False,
            timeout=30,
        )
        assert r.status_code == 302
    assert answers(server, copy) == COOKIE_REFUSED
