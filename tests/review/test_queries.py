"""No N+1: every review page issues the same, small number of SQL statements whatever its size.

Statements are counted on the app's engine (app.extensions["tuscam.engine"])."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, event
from sqlalchemy.engine.interfaces import DBAPICursor, ExecutionContext

from tests.review.conftest import Factory

MAX_STATEMENTS = 8


@contextmanager
def statements(app: Flask) -> Iterator[list[str]]:
    engine = app.extensions["tuscam.engine"]
    seen: list[str] = []

    def record(
        conn: Connection,
        cursor: DBAPICursor,
        statement: str,
        params: Any,
        context: ExecutionContext | None,
        executemany: bool,
    ) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def count(app: Flask, client: FlaskClient, path: str) -> list[str]:
    client.get(path)  # warm-up: the same statements, minus any first-request effects
    with statements(app) as seen:
        response = client.get(path)
    assert response.status_code == 200, path
    return seen


@pytest.fixture
def small_and_large(make: Factory) -> dict[str, int]:
    """One assessment with a session of 5 captures, another with 4 sessions and 500 captures."""
    small_a = make.assessment("small")
    small = make.session(small_a, "small")
    small_ids = make.captures(small, 5)
    large_a = make.assessment("large")
    large = make.session(large_a, "large", None)
    large_ids = make.captures(large, 500, capture_trigger="timer")
    for i in range(3):
        make.captures(make.session(large_a, f"extra {i}", "op2"), 3)
    return {
        "small": small,
        "large": large,
        "small_a": small_a,
        "large_a": large_a,
        "small_c": small_ids[2],
        "large_c": large_ids[250],
    }


@pytest.mark.parametrize("who", ["rev", "op"])
def test_a_gallery_of_500_issues_the_statements_of_a_gallery_of_5(
    app: Flask,
    as_user: Callable[[str], FlaskClient],
    small_and_large: dict[str, int],
    who: str,
) -> None:
    client = as_user(who)
    small = count(app, client, f"/review/sessions/{small_and_large['small']}?per_page=200")
    large = count(app, client, f"/review/sessions/{small_and_large['large']}?per_page=200")
    assert len(large) == len(small) <= MAX_STATEMENTS, large
    # A later page adds one statement (the cursor's position), also whatever the size.
    page = client.get(f"/review/sessions/{small_and_large['large']}?per_page=200")
    assert 'rel="next"' in page.get_data(as_text=True)
    later = count(
        app, client, f"/review/sessions/{small_and_large['large']}?per_page=200&after=300"
    )
    assert len(later) == len(large) + 1


def test_the_other_review_pages_do_not_grow_with_their_data(
    app: Flask, as_user: Callable[[str], FlaskClient], small_and_large: dict[str, int]
) -> None:
    client = as_user("rev")
    s, lg = small_and_large, small_and_large
    pairs = [
        (f"/review/assessments/{s['small_a']}", f"/review/assessments/{lg['large_a']}"),
        (f"/review/captures/{s['small_c']}", f"/review/captures/{lg['large_c']}"),
        (
            f"/review/sessions/{s['small']}/since?after_id=0",
            f"/review/sessions/{lg['large']}/since?after_id=0",
        ),
    ]
    for small_path, large_path in pairs:
        small = count(app, client, small_path)
        large = count(app, client, large_path)
        assert len(large) == len(small) <= MAX_STATEMENTS, large_path


def test_the_start_page_counts_with_grouped_queries(
    app: Flask, as_user: Callable[[str], FlaskClient], make: Factory
) -> None:
    client = as_user("rev")
    make.captures(make.session(make.assessment("first")), 2)
    few = count(app, client, "/review/")
    for i in range(30):
        make.captures(make.session(make.assessment(f"more {i}")), 2)
    many = count(app, client, "/review/")
    assert len(many) == len(few) <= MAX_STATEMENTS, many
