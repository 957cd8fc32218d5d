"""GET /readyz: 200 while the database answers and the storage takes files, else 503 with a JSON
reason; against a real PostgreSQL server that is stopped and started again."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from tests.support.postgres import start_postgres
from tests.support.server import start_live_server


def wait_status(url: str, status: int, timeout: float = 30) -> requests.Response:
    deadline = time.monotonic() + timeout
    while True:
        r = requests.get(url, timeout=10)
        if r.status_code == status or time.monotonic() > deadline:
            return r
        time.sleep(0.2)


@pytest.mark.postgres
def test_readyz_follows_the_postgresql_server(tmp_path: Path) -> None:
    try:
        pg = start_postgres()
    except Exception as exc:  # noqa: BLE001
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL is not available here: {exc}")
    try:
        database_url = pg.create_database("readyz")
        with start_live_server(tmp_path / "server", database_url=database_url) as live:
            r = requests.get(live.url + "/readyz", timeout=10)
            assert r.status_code == 200 and r.json() == {"status": "ok"}
            pg.pause()
            r = wait_status(live.url + "/readyz", 503)
            assert r.status_code == 503
            body = r.json()
            assert body["status"] == "unavailable" and body["error"] == "not-ready"
            assert "database did not answer" in body["reason"]
            assert set(body["checks"]) == {"database"}
            assert "127.0.0.1" not in r.text and "tuscam@" not in r.text  # no connection URL
            assert requests.get(live.url + "/healthz", timeout=10).json() == {"status": "ok"}
            pg.resume()
            r = wait_status(live.url + "/readyz", 200)
            assert r.status_code == 200 and r.json() == {"status": "ok"}
    finally:
        pg.stop()


def test_readyz_is_503_when_the_storage_is_not_writable(client: FlaskClient, app: Flask) -> None:
    assert client.get("/readyz").status_code == 200
    uploads = Path(app.config["DATA_DIR"]) / "uploads"
    uploads.rename(uploads.with_name("uploads-moved"))
    uploads.write_text("a file where the folder should be")
    r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json["checks"] == {"storage": r.json["reason"]}
    assert "uploads/ is not writable" in r.json["reason"]


def test_healthz_and_readyz_need_no_login(client: FlaskClient) -> None:
    assert client.get("/healthz").json == {"status": "ok"}
    assert client.get("/readyz").json == {"status": "ok"}
