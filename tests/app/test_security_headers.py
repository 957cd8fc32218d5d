"""Security headers: a Content-Security-Policy on every HTML page, nosniff and Referrer-Policy on
every response (pages, JSON, static files, tus), and templates without inline script or style."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.db import session_factory
from services.models import Assessment, CaptureSession
from tests.app.helpers import add_user, bearer, login, token_for

TEMPLATES = Path(__file__).resolve().parents[2] / "app" / "templates"
REQUIRED_CSP = (
    "default-src 'self'",
    "script-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
    "form-action 'self'",
)


@pytest.fixture
def session_id(app: Flask) -> int:
    op = add_user(app, "olga")
    add_user(app, "rita", "reviewer")
    with session_factory(app)() as db:
        a = Assessment(title="Bridge", created_by_id=op)
        s = CaptureSession(assessment=a, label="north pier", operator_id=op)
        db.add_all([a, s])
        db.commit()
        return s.id


def _directives(csp: str) -> list[str]:
    return [d.strip() for d in csp.split(";") if d.strip()]


def assert_page_headers(response) -> None:  # noqa: ANN001
    assert response.mimetype == "text/html", response.mimetype
    csp = _directives(response.headers.get("Content-Security-Policy", ""))
    for directive in REQUIRED_CSP:
        assert directive in csp, f"{directive!r} missing from {csp}"
    script = next(d for d in csp if d.startswith("script-src"))
    assert "unsafe-inline" not in script and "unsafe-eval" not in script
    assert not any("unsafe-inline" in d for d in csp)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_every_page_an_operator_and_a_reviewer_open_has_the_policy(
    app: Flask, session_id: int
) -> None:
    anonymous = app.test_client()
    assert_page_headers(anonymous.get("/auth/login"))
    operator = app.test_client()
    login(operator, "olga")
    for path in ("/", f"/sessions/{session_id}/camera", "/no-such-page"):
        assert_page_headers(operator.get(path))
    reviewer = app.test_client()
    login(reviewer, "rita")
    for path in ("/review/", "/review/assessments/1", f"/review/sessions/{session_id}"):
        assert_page_headers(reviewer.get(path))
    assert_page_headers(reviewer.get(f"/sessions/{session_id}/camera"))  # a 403 page


def test_a_failed_login_page_has_the_policy(app: Flask, client: FlaskClient) -> None:
    add_user(app, "olga")
    assert_page_headers(login(client, "olga", "wrong-password"))


@pytest.mark.parametrize(
    "path", ["/healthz", "/api/assessments", "/api/sessions/999", "/static/site.css"]
)
def test_json_and_static_answers_are_nosniff(app: Flask, client: FlaskClient, path: str) -> None:
    add_user(app, "olga")
    response = client.get(path, headers=bearer(token_for(app, "olga")))
    response.close()  # a static file is streamed from an open file
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_an_unauthenticated_api_call_is_nosniff(client: FlaskClient) -> None:
    response = client.get("/api/assessments")
    assert response.status_code == 401
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("method", ["OPTIONS", "HEAD", "POST"])
def test_tus_answers_are_nosniff_and_carry_it_once(
    app: Flask, client: FlaskClient, method: str
) -> None:
    add_user(app, "olga")
    headers = {"Tus-Resumable": "1.0.0", **bearer(token_for(app, "olga"))}
    path = "/files/" if method != "HEAD" else "/files/" + "a" * 32
    response = client.open(path, method=method, headers=headers)
    assert response.headers.getlist("X-Content-Type-Options") == ["nosniff"]


@pytest.mark.parametrize(
    "template", sorted(str(p.relative_to(TEMPLATES)) for p in TEMPLATES.rglob("*.html"))
)
def test_templates_have_no_inline_script_or_style(template: str) -> None:
    text = (TEMPLATES / template).read_text()
    for script in re.findall(r"<script\b[^>]*>", text, re.IGNORECASE):
        assert "src=" in script, f"inline script in {template}: {script}"
    assert not re.search(r"<style\b", text, re.IGNORECASE), f"<style> in {template}"
    assert not re.search(r"\sstyle\s*=", text, re.IGNORECASE), f"style attribute in {template}"
    assert not re.search(r"\son[a-z]+\s*=", text, re.IGNORECASE), f"event handler in {template}"
    assert "javascript:" not in text.lower()
