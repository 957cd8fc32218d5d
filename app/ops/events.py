"""Named log events (upload-created, capture-rejected, lock-timeout, ...): one readable text line,
and under TUSCAM_LOG_FORMAT=json the same record's fields as JSON keys (tuscam_gunicorn.jsonlog)."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("app.events")

EVENTS = (
    "upload-created",
    "upload-progress",
    "upload-finished",
    "upload-terminated",
    "capture-recorded",
    "capture-rejected",
    "hook-failed",
    "lock-timeout",
    "login-failed",
)


def emit(name: str, level: int = logging.INFO, exc_info: bool = False, **fields: Any) -> None:
    """Log event `name` (one of EVENTS) with fields (None values left out). Never pass a
    credential."""
    clean = {k: v for k, v in fields.items() if v is not None}
    if not log.isEnabledFor(level):
        return
    text = " ".join(f"{k}={v}" for k, v in clean.items())
    log.log(level, "%s %s", name, text, extra={"event": name, "fields": clean}, exc_info=exc_info)
