"""The login throttle: failed logins counted per username and per client address over a window,
in the database (table login_failures), so every gunicorn worker and machine shares the count."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from services.models import LoginFailure


@dataclass(frozen=True)
class LoginLimits:
    per_username: int = 10
    per_address: int = 50
    window_seconds: int = 900


def retry_after(
    db: Session, limits: LoginLimits, username: str, address: str, now: datetime
) -> int | None:
    """Seconds until a login for `username` from `address` may be tried again; None: now.

    A key is blocked while it has `limit` failures within the window; it may try again when the
    limit-th newest of them leaves the window."""
    window = timedelta(seconds=limits.window_seconds)
    wait = 0.0
    for column, key, limit in (
        (LoginFailure.username, username, limits.per_username),
        (LoginFailure.address, address, limits.per_address),
    ):
        if limit <= 0:
            continue  # 0 turns this count off
        oldest_that_counts = db.scalar(
            select(LoginFailure.created_at)
            .where(column == key, LoginFailure.created_at > now - window)
            .order_by(LoginFailure.created_at.desc())
            .offset(limit - 1)
            .limit(1)
        )
        if oldest_that_counts is not None:
            wait = max(wait, (oldest_that_counts + window - now).total_seconds())
    return max(1, math.ceil(wait)) if wait > 0 else None


def record_failure(
    db: Session, limits: LoginLimits, username: str, address: str, now: datetime
) -> None:
    """Count one failed login; failures that left the window are deleted on the way."""
    db.execute(
        delete(LoginFailure).where(
            LoginFailure.created_at <= now - timedelta(seconds=limits.window_seconds)
        )
    )
    db.add(LoginFailure(username=username[:80], address=address[:64], created_at=now))
    db.commit()


def reset_username(db: Session, username: str) -> None:
    """A successful login clears its username's count (not its address's)."""
    db.execute(delete(LoginFailure).where(LoginFailure.username == username))
    db.commit()
