"""The real server: gunicorn with gunicorn.conf.py, logged into over HTTP."""

from __future__ import annotations

import re

import requests

from tests.support.server import LiveServer


def test_login_over_real_http_with_gunicorn(live_server: LiveServer) -> None:
    password = live_server.create_user("http-olga", "operator")
    http = requests.Session()
    page = http.get(live_server.url + "/auth/login", timeout=10)
    assert page.status_code == 200
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text).group(1)
    response = http.post(
        live_server.url + "/auth/login",
        data={"username": "http-olga", "password": password, "csrf_token": token},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302
    start = http.get(live_server.url + "/", timeout=10)
    assert start.status_code == 200 and "http-olga" in start.text
    assert len(live_server.worker_pids()) == 2
    assert "gthread" in live_server.log() or live_server.proc.poll() is None
