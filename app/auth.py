"""Authentication: browser sessions after /auth/login, bearer tokens for scripts, and roles.

Passwords are hashed with Werkzeug's scrypt; API tokens are random and stored as SHA-256 only.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from app.db import db_engine, get_db
from app.errors import ApiError, wants_json
from app.ops import events
from app.throttle import LoginLimits, record_failure, reset_username, retry_after
from services.models import ApiToken, Role, User, utcnow

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__, url_prefix="/auth")
csrf = CSRFProtect()

F = TypeVar("F", bound=Callable[..., Any])
TOKEN_PREFIX = "tcm_"
# Checked against when the username is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = generate_password_hash(secrets.token_hex(16))
LOGIN_FAILED = "Unknown username or wrong password."


def hash_password(password: str) -> str:
    return generate_password_hash(password)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(db: Session, user: User, name: str) -> str:
    """Create a token for user; the plain token is returned once and never stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    prefix = token[: len(TOKEN_PREFIX) + 4]  # 24 of its 256 random bits: enough to tell apart
    db.add(ApiToken(user=user, name=name, token_hash=hash_token(token), prefix=prefix))
    return token


def end_sessions(db: Session, user_id: int) -> None:
    """End every browser session of the user, in every worker: the next request of each sees
    a newer generation than its cookie's (checked in _user_from_session)."""
    db.execute(
        update(User)
        .where(User.id == user_id)
        .values(session_generation=User.session_generation + 1)
    )


def check_credentials(db: Session, username: str, password: str) -> User | None:
    user = db.scalar(select(User).where(User.username == username))
    if user is None or not user.active:
        check_password_hash(_DUMMY_HASH, password)
        return None
    return user if check_password_hash(user.password_hash, password) else None


@dataclass(frozen=True)
class Principal:
    """Who is calling, as far as authorising an upload needs: no ORM object, no lazy loads."""

    id: int
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN


class TokenCache:
    """Bearer token (by its hash) -> Principal for `ttl` seconds, in one worker process.

    Looking every tus request up in the database cost a quarter of the CPU of a photo upload
    (POST and PATCH both authenticate). The price is staleness: revoking a token, deactivating
    a user or changing a role reaches token-authenticated tus requests within `ttl` seconds (each
    worker has its own cache). New uploads are refused at once all the same -- the pre-create
    hook reads the user row -- and so are pages and the JSON API (current_user re-reads the user).
    Refusals are never cached, so a token works the moment it is created. ttl <= 0 disables it.
    """

    def __init__(
        self,
        ttl: float,
        *,
        max_entries: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        # Plain dict operations are atomic under the GIL: the worker's threads share it unlocked.
        self._entries: dict[str, tuple[float, Principal]] = {}

    def get(self, token_hash: str) -> Principal | None:
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        expires, principal = entry
        if self.clock() >= expires:
            self._entries.pop(token_hash, None)
            return None
        return principal

    def put(self, token_hash: str, principal: Principal) -> None:
        if self.ttl <= 0:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()  # only valid tokens get here: a full cache is rare, a miss cheap
        self._entries[token_hash] = (self.clock() + self.ttl, principal)


TOKEN_CACHE_SECONDS = 5.0
# Built once: a statement object reused with bind parameters keeps its cache key, which
# SQLAlchemy otherwise recomputes on every execution (most of the cost of a one-row query).
_TOKEN_LOOKUP = (
    select(ApiToken.id.label("token_id"), ApiToken.last_used_at, User.id, User.role)
    .join_from(ApiToken, User, ApiToken.user_id == User.id)
    .where(
        ApiToken.token_hash == bindparam("token_hash"),
        ApiToken.revoked_at.is_(None),
        User.active,
    )
)
_TOKEN_USED = (
    update(ApiToken)
    .where(ApiToken.id == bindparam("token_id"))
    .values(last_used_at=bindparam("used_at"))
)


def token_cache(app: Flask) -> TokenCache:
    """This app's cache (config TOKEN_CACHE_SECONDS, default 5; 0 turns caching off)."""
    cache = app.extensions.get("tuscam.token_cache")
    if cache is None:
        ttl = float(app.config.get("TOKEN_CACHE_SECONDS", TOKEN_CACHE_SECONDS))
        cache = app.extensions.setdefault("tuscam.token_cache", TokenCache(ttl))
    return cache


def principal_from_bearer(app: Flask, header: str) -> Principal | None:
    """The principal of an `Authorization: Bearer <token>` header; None if it names no active
    token. Needs no request context (the tus adapter calls it straight from WSGI)."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    token_hash = hash_token(token.strip())
    cache = token_cache(app)
    principal = cache.get(token_hash)
    if principal is not None:
        return principal
    # Core on a plain connection: one joined row, no ORM objects, no Session.
    with db_engine(app).connect() as conn:
        row = conn.execute(_TOKEN_LOOKUP, {"token_hash": token_hash}).first()
        if row is None:
            return None  # unknown, revoked, or its user is deactivated
        now = utcnow()
        # Writing on every request would serialise all uploads on the database; a minute is
        # enough.
        if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
            conn.execute(_TOKEN_USED, {"token_id": row.token_id, "used_at": now})
            conn.commit()
    principal = Principal(row.id, row.role)
    cache.put(token_hash, principal)
    return principal


def wall_clock() -> float:
    """Seconds since the epoch; tests move it to age a session."""
    return time.time()


def _user_from_session(db: Session) -> User | None:
    """The user of the session cookie while that session is valid: the user is active, nothing
    ended the session since (logout, a new password, deactivation: session_generation) and it
    is younger than SESSION_HOURS. Checked on every request, the tus server's included."""
    user = db.get(User, session["user_id"])
    if user is None or not user.active or session.get("gen") != user.session_generation:
        return None
    opened = session.get("t")
    max_age = float(current_app.config["SESSION_HOURS"]) * 3600
    if not isinstance(opened, int | float) or not 0 <= wall_clock() - opened < max_age:
        return None
    return user


def current_principal() -> Principal | None:
    """Who is calling (bearer token first, then the session cookie), without loading the User
    row for a token: what the tus server needs on every request."""
    if "principal" in g:
        return g.principal
    principal = None
    header = request.headers.get("Authorization", "")
    if header:
        principal = principal_from_bearer(current_app._get_current_object(), header)  # type: ignore[attr-defined]
    elif session.get("user_id") is not None:
        user = _user_from_session(get_db())
        g.user = user
        if user is not None:
            principal = Principal(user.id, user.role)
    g.principal = principal
    return principal


def current_user() -> User | None:
    """The authenticated user of this request (bearer token first, then the session cookie)."""
    if "user" in g:
        return g.user
    principal = current_principal()
    if "user" in g:  # the session cookie path has loaded it already
        return g.user
    user = None
    if principal is not None:
        user = get_db().get(User, principal.id)
        if user is not None and not user.active:
            user = None  # deactivated while its token was cached: pages and the API see it now
    g.user = user
    return user


UNAUTHORIZED = "Log in or send 'Authorization: Bearer <token>'."


def require_user() -> User:
    """The authenticated user of this request, or 401 (behind login_required there always is
    one)."""
    user = current_user()
    if user is None:
        raise ApiError(401, "unauthorized", UNAUTHORIZED)
    return user


def login_required(view: F) -> F:
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if current_user() is None:
            if wants_json():
                raise ApiError(401, "unauthorized", UNAUTHORIZED)
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def roles_required(*roles: str) -> Callable[[F], F]:
    """Allow the named roles (admins always pass)."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        @login_required
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            user = require_user()
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

    The tus server does not pass through here (it checks Origin itself); see app/uploads.py.
    """
    if request.method in {"GET", "HEAD", "OPTIONS"}:
        return
    if request.headers.get("Authorization", "").lower().startswith("bearer "):
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


def login_limits(app: Flask) -> LoginLimits:
    return LoginLimits(
        per_username=int(app.config["LOGIN_MAX_FAILURES"]),
        per_address=int(app.config["LOGIN_MAX_FAILURES_PER_ADDRESS"]),
        window_seconds=int(app.config["LOGIN_THROTTLE_SECONDS"]),
    )


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    form = LoginForm()
    if form.validate_on_submit():
        db = get_db()
        username = form.username.data or ""
        address = request.remote_addr or ""
        limits = login_limits(current_app)
        now = utcnow()
        # Before any password hash is computed: a blocked guesser costs one indexed query.
        wait = retry_after(db, limits, username, address, now)
        if wait is not None:
            log.warning("login throttled for username %r from %s", username, address)
            flash(f"Too many failed logins: try again in {_minutes(wait)}.", "error")
            response = make_response(render_template("login.html", form=form), 429)
            response.headers["Retry-After"] = str(wait)
            return response
        user = check_credentials(db, username, form.password.data or "")
        if user is None:
            # The name as typed (capped), never the password.
            events.emit(
                "login-failed", logging.WARNING, username=username[:80], remote=address, status=401
            )
            record_failure(db, limits, username, address, now)
            flash(LOGIN_FAILED, "error")
            return render_template("login.html", form=form), 401
        reset_username(db, username)
        session.clear()
        session["user_id"] = user.id
        session["gen"] = user.session_generation
        session["t"] = int(wall_clock())
        session.permanent = True  # the cookie lives PERMANENT_SESSION_LIFETIME (SESSION_HOURS)
        return redirect(_safe_next(request.args.get("next")))
    status = 400 if request.method == "POST" else 200
    return render_template("login.html", form=form), status


def _minutes(seconds: int) -> str:
    minutes = math.ceil(seconds / 60)
    return "a minute" if minutes == 1 else f"{minutes} minutes"


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    """Ends the session on the server, not only in this browser: a copy of the cookie replayed
    later is refused. Every other browser session of the user ends with it (one generation per
    user)."""
    user_id = session.get("user_id")
    if user_id is not None and current_user() is not None:
        db = get_db()
        end_sessions(db, user_id)
        db.commit()
    session.clear()
    return redirect(url_for("auth.login"))


ROLES = tuple(r.value for r in Role)
