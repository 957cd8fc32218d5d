"""Small helpers for multi-step flows through the Flask test client."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from app.auth import hash_password, new_token
from app.db import session_factory
from services.models import User

CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_token(client: FlaskClient, path: str = "/auth/login") -> str:
    html = client.get(path).get_data(as_text=True)
    match = CSRF_RE.search(html)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def add_user(
    app: Flask, username: str, role: str = "operator", password: str = "correct-horse"
) -> int:
    with session_factory(app)() as db:
        user = User(username=username, role=role, password_hash=hash_password(password))
        db.add(user)
        db.commit()
        return user.id


def token_for(app: Flask, username: str) -> str:
    with session_factory(app)() as db:
        user = db.scalars(select(User).where(User.username == username)).one()
        token = new_token(db, user, "test")
        db.commit()
        return token


def login(client: FlaskClient, username: str, password: str = "correct-horse") -> TestResponse:
    return client.post(
        "/auth/login",
        data={"username": username, "password": password, "csrf_token": csrf_token(client)},
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
