"""Pooled PostgreSQL connections are checked only after sitting idle (app/db.py
ping_when_idle): one that died meanwhile is replaced before anyone uses it."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from app.db import ping_when_idle, server_engine
from app.tus.pglocker import conninfo_from_url
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.postgres
APP_NAME = "tuscam-pool-test"


@pytest.fixture(scope="module")
def url(postgres: PostgresServer) -> str:
    return postgres.create_database("pool")


def terminate_pooled(url: str) -> int:
    with psycopg.connect(conninfo_from_url(url), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND datname = current_database()",
            (APP_NAME,),
        ).fetchall()
    return len(rows)


def use(engine: object) -> int:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return int(conn.execute(text("SELECT 1")).scalar_one())


def test_a_connection_that_died_while_idle_is_replaced_before_use(url: str) -> None:
    engine = create_engine(url, connect_args={"application_name": APP_NAME}, pool_size=1)
    ping_when_idle(engine, idle=0)
    try:
        assert use(engine) == 1
        assert terminate_pooled(url) == 1
        assert use(engine) == 1  # pinged, found dead, replaced: no error reaches the caller
    finally:
        engine.dispose()


def test_without_the_ping_the_dead_connection_reaches_the_caller(url: str) -> None:
    """The same steps without ping_when_idle: the test above would fail on a plain pool."""
    engine = create_engine(url, connect_args={"application_name": APP_NAME}, pool_size=1)
    try:
        assert use(engine) == 1
        assert terminate_pooled(url) == 1
        with pytest.raises(OperationalError):
            use(engine)
    finally:
        engine.dispose()


def test_a_busy_pool_is_not_pinged(url: str) -> None:
    """Within the idle time no ping is sent: a dead connection then fails its one request
    (and SQLAlchemy renews the pool), which is the price of no round trip per checkout."""
    engine = server_engine(url, pool_size=1)
    pings: list[int] = []
    original = engine.dialect.do_ping

    def counting_ping(dbapi_conn: object) -> bool:
        pings.append(1)
        return original(dbapi_conn)  # type: ignore[arg-type]

    engine.dialect.do_ping = counting_ping  # type: ignore[method-assign]
    try:
        for _ in range(20):
            assert use(engine) == 1
        assert pings == []
    finally:
        engine.dispose()
