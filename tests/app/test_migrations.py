"""The migrated schema is exactly the models' schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from app.cli import upgrade_database
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
