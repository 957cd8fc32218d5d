"""The camera page without a browser: who may open it, what it hands to the JavaScript, and how
the Vite manifest becomes script and stylesheet URLs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.assets import AssetsNotBuilt, entry_assets, load_manifest
from app.db import session_factory
from services.models import Assessment, CaptureSession, User, utcnow
from tests.app.helpers import add_user, csrf_token

ENTRY = "frontend/camera.js"
MANIFEST = {
    ENTRY: {
        "file": "assets/camera-abc123.js",
        "src": ENTRY,
        "isEntry": True,
        "css": ["assets/camera-def456.css"],
        "imports": ["_shared.js"],
    },
    "_shared.js": {"file": "assets/shared-777.js", "css": ["assets/shared-888.css"]},
    "frontend/logout.js": {"file": "assets/logout-111.js", "isEntry": True},
    "frontend/sw.js": {"file": "assets/sw-222.js", "isEntry": True},
}


@pytest.fixture
def app_with_manifest(tmp_path: Path, app: Flask) -> Flask:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(MANIFEST))
    app.config["VITE_MANIFEST"] = str(path)
    return app


def login(client: FlaskClient, username: str, password: str = "correct-horse") -> None:
    token = csrf_token(client)
    r = client.post(
        "/auth/login", data={"username": username, "password": password, "csrf_token": token}
    )
    assert r.status_code == 302, r.get_data(as_text=True)


def new_session(app: Flask, *, operator: str | None = None, closed: bool = False) -> int:
    with session_factory(app)() as db:
        assessment = Assessment(title="Bridge 7")
        owner = None
        if operator:
            owner = db.query(User).filter_by(username=operator).one()
        session = CaptureSession(
            assessment=assessment,
            label="north pier",
            operator=owner,
            ended_at=utcnow() if closed else None,
        )
        db.add_all([assessment, session])
        db.commit()
        return session.id


def test_the_entry_gives_its_script_its_css_and_the_css_of_its_imports() -> None:
    assets = entry_assets(MANIFEST, ENTRY)
    assert assets.js == "/static/dist/assets/camera-abc123.js"
    assert assets.css == [
        "/static/dist/assets/camera-def456.css",
        "/static/dist/assets/shared-888.css",
    ]
    assert assets.preload == ["/static/dist/assets/shared-777.js"]


def test_an_unknown_entry_names_the_entries_that_exist() -> None:
    with pytest.raises(AssetsNotBuilt, match="frontend/camera.js"):
        entry_assets(MANIFEST, "frontend/other.js")


def test_a_missing_manifest_says_to_run_the_build(tmp_path: Path) -> None:
    with pytest.raises(AssetsNotBuilt, match="npm run build"):
        load_manifest(tmp_path / "nothing.json")


def test_the_camera_page_needs_a_login(client: FlaskClient) -> None:
    r = client.get("/sessions/1/camera")
    assert r.status_code == 302
    assert "/auth/login" in r.headers["Location"]


def test_an_operator_gets_the_page_with_the_session_data_and_the_built_assets(
    app_with_manifest: Flask, client: FlaskClient
) -> None:
    add_user(app_with_manifest, "olga", "operator")
    session_id = new_session(app_with_manifest)
    login(client, "olga")

    r = client.get(f"/sessions/{session_id}/camera")

    html = r.get_data(as_text=True)
    assert r.status_code == 200
    root = re.search(r'<section id="camera-app"[^>]*>', html, re.S).group(0)
    assert f'data-session-id="{session_id}"' in root
    assert re.search(r'data-assessment-id="\d+"', root)
    assert 'data-session-open="true"' in root
    assert re.search(r'data-csrf-token="[^"]{20,}"', root)
    assert 'data-trigger="manual"' in root
    user_id = re.search(r'data-user-id="(\d+)"', root).group(1)  # the store is per user
    assert "north pier" in html
    # The logout form names the same user for the logout check, a module built by Vite.
    assert re.search(rf'<form class="logout"[^>]*data-user-id="{user_id}"', html)
    assert '<script type="module" src="/static/dist/assets/logout-111.js">' in html
    assert "style=" not in html and "<script>" not in html  # nothing inline (CSP)
    assert '<script type="module" src="/static/dist/assets/camera-abc123.js">' in html
    assert 'href="/static/dist/assets/camera-def456.css"' in html
    assert 'role="status"' in html  # the offline banner


def test_a_closed_session_shows_a_notice_and_no_camera(
    app_with_manifest: Flask, client: FlaskClient
) -> None:
    add_user(app_with_manifest, "olga", "operator")
    session_id = new_session(app_with_manifest, closed=True)
    login(client, "olga")

    html = client.get(f"/sessions/{session_id}/camera").get_data(as_text=True)

    assert 'data-session-open="false"' in html
    assert "closed" in html
    assert "camera-abc123.js" not in html


@pytest.mark.parametrize(("role", "status"), [("operator", 200), ("admin", 200), ("reviewer", 403)])
def test_operators_and_admins_may_open_the_camera_but_reviewers_may_not(
    app_with_manifest: Flask, client: FlaskClient, role: str, status: int
) -> None:
    add_user(app_with_manifest, "someone", role)
    session_id = new_session(app_with_manifest)
    login(client, "someone")
    assert client.get(f"/sessions/{session_id}/camera").status_code == status


def test_an_unknown_session_or_another_operators_session_is_404(
    app_with_manifest: Flask, client: FlaskClient
) -> None:
    add_user(app_with_manifest, "olga", "operator")
    add_user(app_with_manifest, "other", "operator")
    theirs = new_session(app_with_manifest, operator="other")
    login(client, "olga")
    assert client.get("/sessions/999999/camera").status_code == 404
    assert client.get(f"/sessions/{theirs}/camera").status_code == 404


def test_without_a_built_frontend_the_log_says_how_to_build_it(
    tmp_path: Path, app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    app.config["VITE_MANIFEST"] = str(tmp_path / "missing.json")
    add_user(app, "olga", "operator")
    session_id = new_session(app)
    login(client, "olga")

    assert client.get(f"/sessions/{session_id}/camera").status_code == 500
    assert "npm run build" in caplog.text


def test_the_service_worker_is_served_at_the_root_and_checked_on_every_visit(
    app_with_manifest: Flask, client: FlaskClient, tmp_path: Path
) -> None:
    static = tmp_path / "static"
    (static / "dist" / "assets").mkdir(parents=True)
    (static / "dist" / "assets" / "sw-222.js").write_text("self.addEventListener('fetch', f)\n")
    app_with_manifest.static_folder = str(static)

    # No login: the worker itself holds nothing private.
    with client.get("/camera-sw.js") as r:
        assert r.status_code == 200
        assert r.mimetype == "text/javascript"
        assert r.headers["Cache-Control"] == "no-cache"
        assert "addEventListener('fetch'" in r.get_data(as_text=True)


def test_without_a_built_worker_the_answer_is_a_404_that_says_how_to_build_it(
    tmp_path: Path, app: Flask, client: FlaskClient
) -> None:
    app.config["VITE_MANIFEST"] = str(tmp_path / "missing.json")
    r = client.get("/camera-sw.js")
    assert r.status_code == 404
    assert "npm run build" in r.get_data(as_text=True)


def test_pages_render_without_a_built_frontend_only_the_camera_needs_it(
    tmp_path: Path, app: Flask, client: FlaskClient
) -> None:
    # The logout check is an enhancement: without the build, the form still logs out.
    app.config["VITE_MANIFEST"] = str(tmp_path / "missing.json")
    add_user(app, "olga", "operator")
    login(client, "olga")
    r = client.get("/")
    assert r.status_code == 200
    assert 'class="logout"' in r.get_data(as_text=True)
