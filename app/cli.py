"""Admin commands: `tuscam init-db`, users (`create-user`, `list-users`, `set-password`,
`deactivate`, `activate`), tokens (`create-token`, `list-tokens`, `revoke-tokens`), `cleanup`,
`reprocess`. `tuscam` is the Flask CLI of this app (console script in pyproject.toml)."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import click
from alembic import command
from alembic.config import Config
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.auth import ROLES, end_sessions, hash_password, new_token
from app.db import create_private_sqlite, session_factory
from services.models import ApiToken, Capture, Role, User, utcnow

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade_database(database_url: str) -> None:
    create_private_sqlite(database_url)
    command.upgrade(alembic_config(database_url), "head")


def _read_password(prompt: bool) -> str:
    if sys.stdin.isatty() and prompt:
        return click.prompt("Password", hide_input=True, confirmation_prompt=True)
    password = sys.stdin.readline().rstrip("\n")
    if not password:
        raise click.ClickException("Give the password on standard input (one line).")
    return password


def _new_password() -> str:
    password = _read_password(prompt=True)
    if len(password) < 8:
        raise click.ClickException("The password must have at least 8 characters.")
    return password


@click.command("init-db")
@with_appcontext
def init_db() -> None:
    """Create or upgrade the database schema (Alembic migrations)."""
    upgrade_database(current_app.config["DATABASE_URL"])
    click.echo("Database is at the latest schema.")


@click.command("create-user")
@with_appcontext
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), default=Role.OPERATOR.value, show_default=True)
def create_user(username: str, role: str) -> None:
    """Create a user; the password is read from a prompt or standard input, never an argument."""
    if not 1 <= len(username) <= 80 or not username.isprintable() or " " in username:
        raise click.ClickException("A username is 1-80 printable characters without spaces.")
    password = _new_password()
    with session_factory(current_app)() as db:
        if db.scalar(select(User).where(User.username == username)):
            raise click.ClickException(f"User {username!r} exists already.")
        db.add(User(username=username, role=role, password_hash=hash_password(password)))
        db.commit()
    click.echo(f"Created {role} {username}.")


@click.command("create-token")
@with_appcontext
@click.argument("username")
@click.option("--name", default="cli", show_default=True, help="What the token is for.")
def create_token(username: str, name: str) -> None:
    """Create an API token; it is printed once, alone on the last line."""
    with session_factory(current_app)() as db:
        user = db.scalar(select(User).where(User.username == username))
        if user is None:
            raise click.ClickException(f"There is no user {username!r}.")
        token = new_token(db, user, name)
        db.commit()
    click.echo(f"Token {name!r} for {username} (shown once; store it now):", err=True)
    click.echo(token)


def _user(db: Session, username: str) -> User:
    user = db.scalar(select(User).where(User.username == username))
    if user is None:
        raise click.ClickException(f"There is no user {username!r} (see tuscam list-users).")
    return user


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "-"


def _token_cache_note() -> str:
    seconds = current_app.config["TOKEN_CACHE_SECONDS"]
    return f"running servers refuse them within {seconds} s (TUSCAM_TOKEN_CACHE_SECONDS)"


@click.command("list-tokens")
@with_appcontext
@click.argument("username")
def list_tokens(username: str) -> None:
    """List a user's API tokens: id, name, first characters, created, last used, revoked.
    The tokens themselves are never stored, so never shown."""
    with session_factory(current_app)() as db:
        user = _user(db, username)
        tokens = db.scalars(
            select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)
        ).all()
        click.echo("id\tname\tprefix\tcreated\tlast used\trevoked")
        for t in tokens:
            prefix = f"{t.prefix}..." if t.prefix else "-"
            fields = (t.id, t.name, prefix, _when(t.created_at), _when(t.last_used_at))
            click.echo("\t".join(map(str, fields)) + "\t" + _when(t.revoked_at))
        if not tokens:
            click.echo(f"{username} has no tokens.", err=True)


@click.command("revoke-tokens")
@with_appcontext
@click.argument("username")
def revoke_tokens(username: str) -> None:
    """Revoke every API token of a user."""
    with session_factory(current_app)() as db:
        user = _user(db, username)
        revoked = db.execute(
            update(ApiToken)
            .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        ).rowcount
        db.commit()
    click.echo(f"Revoked {revoked} token(s) of {username}; {_token_cache_note()}.")


@click.command("deactivate")
@with_appcontext
@click.argument("username")
def deactivate(username: str) -> None:
    """Lock a user out: browser sessions end at once, tokens stop working (`activate` undoes)."""
    with session_factory(current_app)() as db:
        user = _user(db, username)
        user.active = False
        end_sessions(db, user.id)
        db.commit()
    click.echo(f"Deactivated {username}: logged out everywhere; tokens are {_token_cache_note()}.")


@click.command("activate")
@with_appcontext
@click.argument("username")
def activate(username: str) -> None:
    """Let a deactivated user log in again (tokens that were not revoked work again too)."""
    with session_factory(current_app)() as db:
        _user(db, username).active = True
        db.commit()
    click.echo(f"Activated {username}.")


@click.command("set-password")
@with_appcontext
@click.argument("username")
def set_password(username: str) -> None:
    """Set a user's password (from a prompt or standard input); ends their browser sessions."""
    with session_factory(current_app)() as db:
        user = _user(db, username)
        password = _new_password()
        user.password_hash = hash_password(password)
        end_sessions(db, user.id)
        db.commit()
    click.echo(f"Changed the password of {username}; their browser sessions have ended.")


@click.command("list-users")
@with_appcontext
def list_users() -> None:
    """List users with their role and whether they are active."""
    with session_factory(current_app)() as db:
        for user in db.scalars(select(User).order_by(User.username)):
            state = "active" if user.active else "inactive"
            click.echo(f"{user.username}\t{user.role}\t{state}")


@click.command("cleanup")
@with_appcontext
def cleanup() -> None:
    """Remove expired uploads and unused partials (TUSCAM_UPLOAD_EXPIRY; on S3 their multipart
    uploads are aborted), and the tus copies of finished uploads after TUSCAM_TUS_RETAIN_SECONDS
    (their captures keep the bytes); on S3, report and remove strays (multipart uploads and
    tails no upload points to, older than an hour)."""
    from app.tus.maintenance import cleanup as tus_cleanup

    handler = current_app.extensions["tuscam.tus"]
    strays = handler.store.strays() if hasattr(handler.store, "strays") else []  # S3 only
    for stray in strays:
        click.echo(
            f"Stray {stray.kind} {stray.key} (since {stray.since:%Y-%m-%d %H:%M}): removing."
        )
    done = tus_cleanup(handler)
    click.echo(f"Removed {done.expired} expired upload(s).")
    click.echo(f"Removed the tus copies of {done.retired} finished upload(s) (retired).")
    click.echo(f"Forgot {done.swept} old tombstone(s) and stray file(s).")


@click.command("reprocess")
@with_appcontext
@click.option("--session", "session_id", type=int, help="Only the captures of this session.")
def reprocess(session_id: int | None) -> None:
    """Re-run validation and thumbnails from the stored originals."""
    from app.uploads import capture_store
    from services.camera.capture_service import CameraCaptureService

    with session_factory(current_app)() as db:
        query = select(Capture.id).order_by(Capture.id)
        if session_id is not None:
            query = query.where(Capture.session_id == session_id)
        ids = list(db.scalars(query))
        service = CameraCaptureService(
            db,
            capture_store(current_app),
            max_pixels=current_app.config["MAX_IMAGE_PIXELS"],
            max_image_bytes=current_app.config["MAX_IMAGE_BYTES"],
        )
        counts: dict[str, int] = {}
        with click.progressbar(ids, label="Reprocessing", file=sys.stderr) as bar:
            for capture_id in bar:
                result = service.reprocess(capture_id)
                counts[result.status] = counts.get(result.status, 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "nothing"
    click.echo(f"Reprocessed {len(ids)} capture(s): {summary}.")


@click.command("ensure-admin")
@with_appcontext
def ensure_admin() -> None:
    """Create a first admin with a random password if there is no admin yet (used by make run)."""
    import secrets

    with session_factory(current_app)() as db:
        if db.scalar(select(User).where(User.role == Role.ADMIN)):
            click.echo("An admin account exists; log in with it (tuscam list-users).")
            return
        password = secrets.token_urlsafe(12)
        db.add(User(username="admin", role=Role.ADMIN.value, password_hash=hash_password(password)))
        db.commit()
    click.echo("Created the first admin account. Log in at /auth/login with")
    click.echo("  username: admin")
    click.echo(f"  password: {password}")
    click.echo("(shown once; change it with 'tuscam set-password admin')")


def init_app(app: Flask) -> None:
    for cmd in (
        init_db,
        create_user,
        create_token,
        list_users,
        list_tokens,
        revoke_tokens,
        deactivate,
        activate,
        set_password,
        cleanup,
        reprocess,
        ensure_admin,
    ):
        app.cli.add_command(cmd)


def _create() -> Flask:
    from app import create_app

    return create_app()


def main() -> None:
    FlaskGroup(create_app=_create, add_default_commands=True)(prog_name="tuscam")
