"""The migrated schema is exactly the models' schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from app.cli import alembic_config, upgrade_database
from app.db import create_private_sqlite
from app.tus.s3schema import metadata as tus_metadata
from services.models import Base


def test_migrations_build_the_schema_of_the_models(database_url: str) -> None:
    upgrade_database(database_url)
    engine = create_engine(database_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn)
        diff = compare_metadata(context, [Base.metadata, tus_metadata])
        tables = set(inspect(conn).get_table_names())
    engine.dispose()
    assert diff == []
    assert {"users", "api_tokens", "assessments", "capture_sessions", "captures"} <= tables
    assert {"tus_uploads", "tus_upload_parts"} <= tables


def test_migrations_are_idempotent(database_url: str) -> None:
    upgrade_database(database_url)
    upgrade_database(database_url)


def test_an_s3_upload_in_progress_goes_on_after_its_highest_recorded_part(
    database_url: str,
) -> None:
    """Migration 0005 reserves part numbers in the row: an upload with parts already recorded
    must hand out numbers after them, never one of theirs again."""
    create_private_sqlite(database_url)
    command.upgrade(alembic_config(database_url), "0004")
    engine = create_engine(database_url)
    row = {"owner": "o", "created_at": datetime(2026, 12, 3, tzinfo=UTC), "record": "{}"}
    with engine.begin() as conn:
        for upload_id in ("a" * 32, "b" * 32):
            conn.execute(
                text(
                    "INSERT INTO tus_uploads (id, owner, created_at, record, upload_offset,"
                    " tail_size, stored, finished, handed_over)"
                    " VALUES (:id, :owner, :created_at, :record, 0, 0, false, false, false)"
                ),
                {"id": upload_id, **row},
            )
        for number in (1, 2, 5):
            conn.execute(
                text("INSERT INTO tus_upload_parts VALUES (:id, :number, 5242880, 'e')"),
                {"id": "a" * 32, "number": number},
            )
    upgrade_database(database_url)
    with engine.connect() as conn:
        reserved = dict(conn.execute(text("SELECT id, next_part FROM tus_uploads")).all())
    engine.dispose()
    assert reserved == {"a" * 32: 5, "b" * 32: 0}
