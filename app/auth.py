"""Authentication: browser sessions after /auth/login, bearer tokens for scripts, and roles.

Passwords are hashed with Werkzeug's scrypt; API tokens are random and stored as SHA-256 only.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from app.db import get_db
from app.errors import ApiError
from services.models import ApiToken, Role, User, utcnow

bp = Blueprint("auth", __name__, url_prefix="/auth")
csrf = CSRFProtect()

F = TypeVar("F", bound=Callable[..., Any])
TOKEN_PREFIX = "tcm_"
# Checked against when the username is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = generate_password_hash(secrets.token_hex(16))
LOGIN_FAILED = "Unknown username or wrong password."


def hash_password(password: str) -> str:
    return generate_password_hash(password)


def password_stamp(user: User) -> str:
    """A short digest of the password hash kept in the session: a password change logs out."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(db: Session, user: User, name: str) -> str:
    """Create a token for user; the plain token is returned once and never stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    db.add(ApiToken(user=user, name=name, token_hash=hash_token(token)))
    return token


def check_credentials(db: Session, username: str, password: str) -> User | None:
    user = db.scalar(select(User).where(User.username == username))
    if user is None or not user.active:
        check_password_hash(_DUMMY_HASH, password)
        return None
    return user if check_password_hash(user.password_hash, password) else None


def _user_from_bearer(db: Session, header: str) -> User | None:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    row = db.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token.strip())))
    if row is None or row.revoked_at is not None or not row.user.active:
        return None
    now = utcnow()
    # Writing on every request would serialise all uploads on the database; a minute is enough.
    last = row.last_used_at
    if last is None or (last.tzinfo and now - last > timedelta(minutes=1)):
        row.last_used_at = now
        db.commit()
    return row.user


def current_user() -> User | None:
    """The authenticated user of this request (bearer token first, then the session cookie)."""
    if "user" in g:
        return g.user
    db = get_db()
    user = None
    g.auth_via = None
    header = request.headers.get("Authorization", "")
    if header:
        user = _user_from_bearer(db, header)
        g.auth_via = "token" if user else None
    elif session.get("user_id") is not None:
        user = db.get(User, session["user_id"])
        if user is not None and (not user.active or session.get("pw") != password_stamp(user)):
            user = None  # deactivated, or password changed since this login
        g.auth_via = "session" if user else None
    g.user = user
    return user


def wants_json() -> bool:
    path = request.path
    return (
        path.startswith("/api/")
        or path.startswith("/files")
        or "Authorization" in request.headers
        or request.accept_mimetypes.best == "application/json"
    )


def login_required(view: F) -> F:
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if current_user() is None:
            if wants_json():
                raise ApiError(
                    401, "unauthorized", "Log in or send 'Authorization: Bearer <token>'."
                )
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def roles_required(*roles: str) -> Callable[[F], F]:
    """Allow the named roles (admins always pass)."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        @login_required
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            user = current_user()
            assert user is not None
            if not user.has_role(*roles):
                raise ApiError(
                    403,
                    "forbidden",
                    f"This needs the role {' or '.join(roles)}; you are {user.role}.",
                )
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator


def csrf_protect_unless_token() -> None:
    """CSRF applies to cookie-authenticated forms and API calls, not to bearer-token scripts.

    The tus blueprint is exempt (it checks Origin itself); see app/uploads.py.
    """
    if request.method in {"GET", "HEAD", "OPTIONS"}:
        return
    if request.headers.get("Authorization", "").lower().startswith("bearer "):
        return
    if request.blueprint in current_app.config.get("CSRF_EXEMPT_BLUEPRINTS", ()):
        return
    csrf.protect()


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=80)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


def _safe_next(target: str | None) -> str:
    if not target:
        return url_for("pages.index")
    parts = urlsplit(target)
    # Only local paths: an attacker's link must not turn our login into an open redirect.
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("pages.index")
    return target


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    form = LoginForm()
    if form.validate_on_submit():
        db = get_db()
        user = check_credentials(db, form.username.data or "", form.password.data or "")
        if user is None:
            flash(LOGIN_FAILED, "error")
            return render_template("login.html", form=form), 401
        session.clear()
        session["user_id"] = user.id
        session["pw"] = password_stamp(user)
        session.permanent = True
        return redirect(_safe_next(request.args.get("next")))
    status = 400 if request.method == "POST" else 200
    return render_template("login.html", form=form), status


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    session.clear()
    return redirect(url_for("auth.login"))


ROLES = tuple(r.value for r in Role)
