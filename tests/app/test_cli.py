"""The admin commands, through Flask's CLI runner."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select

from app.auth import check_credentials, hash_token
from app.db import session_factory
from services.models import ApiToken, User


def test_create_user_reads_the_password_from_stdin(app: Flask, runner: FlaskCliRunner) -> None:
    result = runner.invoke(
        args=["create-user", "rita", "--role", "reviewer"], input="s3cret-pass\n"
    )
    assert result.exit_code == 0, result.output
    with session_factory(app)() as db:
        user = check_credentials(db, "rita", "s3cret-pass")
        assert user is not None and user.role == "reviewer"
        assert "s3cret-pass" not in user.password_hash


def test_create_user_refuses_duplicates_short_passwords_and_bad_roles(
    runner: FlaskCliRunner,
) -> None:
    assert runner.invoke(args=["create-user", "rita"], input="s3cret-pass\n").exit_code == 0
    again = runner.invoke(args=["create-user", "rita"], input="s3cret-pass\n")
    assert again.exit_code != 0 and "exists already" in again.output
    short = runner.invoke(args=["create-user", "sam"], input="short\n")
    assert short.exit_code != 0 and "at least 8" in short.output
    assert (
        runner.invoke(
            args=["create-user", "tom", "--role", "king"], input="s3cret-pass\n"
        ).exit_code
        != 0
    )


def test_create_token_prints_it_alone_on_the_last_line(app: Flask, runner: FlaskCliRunner) -> None:
    runner.invoke(args=["create-user", "olga"], input="s3cret-pass\n")
    result = runner.invoke(args=["create-token", "olga"])
    assert result.exit_code == 0
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("tcm_") and " " not in token
    with session_factory(app)() as db:
        assert db.scalar(select(ApiToken.token_hash)) == hash_token(token)


def test_create_token_for_unknown_user_fails(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["create-token", "ghost"])
    assert result.exit_code != 0 and "no user 'ghost'" in result.output


def test_list_users(runner: FlaskCliRunner) -> None:
    runner.invoke(args=["create-user", "olga", "--role", "admin"], input="s3cret-pass\n")
    result = runner.invoke(args=["list-users"])
    assert "olga\tadmin\tactive" in result.output


def test_ensure_admin_creates_one_admin_with_a_random_password(
    app: Flask, runner: FlaskCliRunner
) -> None:
    first = runner.invoke(args=["ensure-admin"])
    password = first.output.split("password: ")[1].split()[0]
    with session_factory(app)() as db:
        assert check_credentials(db, "admin", password) is not None
    second = runner.invoke(args=["ensure-admin"])
    assert "exists" in second.output
    with session_factory(app)() as db:
        assert len(db.scalars(select(User)).all()) == 1
