"""Which upload locker the tus server uses (TUSCAM_LOCKER): flock on the data folder for one
machine, PostgreSQL advisory locks (app/tus/pglocker.py) when several nodes share the uploads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import make_url

from app.tus.pglocker import PgLocker

LOCKERS = ("postgres", "file")


def locker_kind(config: Mapping[str, Any]) -> str:
    """TUSCAM_LOCKER if set; else postgres when the uploads are on S3 (every node sees them, so
    the locks must hold across nodes too), file otherwise."""
    chosen = str(config.get("LOCKER") or "").strip().lower()
    if chosen:
        if chosen not in LOCKERS:
            raise ValueError(f"TUSCAM_LOCKER must be 'postgres' or 'file', not {chosen!r}.")
        return chosen
    return "postgres" if str(config.get("STORAGE_URL") or "").startswith("s3://") else "file"


def postgres_locker(config: Mapping[str, Any]) -> PgLocker | None:
    """The PostgreSQL locker when the configuration asks for one (else None: the file locker)."""
    if locker_kind(config) != "postgres":
        return None
    url = str(config["DATABASE_URL"])
    if make_url(url).get_backend_name() != "postgresql":
        raise ValueError(
            "Upload locks across nodes (TUSCAM_LOCKER=postgres, the default with S3 storage) "
            "need PostgreSQL: set TUSCAM_DATABASE_URL=postgresql+psycopg://USER@HOST/DB "
            f"(it is {make_url(url).drivername}://…), or TUSCAM_LOCKER=file on a single machine."
        )
    return PgLocker.from_url(url)
