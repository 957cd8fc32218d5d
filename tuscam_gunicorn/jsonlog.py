"""TUSCAM_LOG_FORMAT=json: every line the server writes (gunicorn's own, the access log, the
app's log and its named events) as one JSON object; the app's records reach gunicorn's handlers.

Named events come from app.ops.events: a record with `event` and `fields` attributes. Any text
that looks like a credential (a bearer token, password=...) is masked before it is written."""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode

from gunicorn.glogging import Logger

_MASK = "[redacted]"
_BEARER = re.compile(r"(?i)\b(bearer|basic)(\s+)[^\s\"',;]+")
_SECRET_PAIR = re.compile(
    r"(?i)\b([\w-]*(?:password|passwd|token|secret|api[_-]?key|csrf)[\w-]*)(\"?\s*[=:]\s*\"?)"
    r"[^\s\"&,;]+"
)
_SECRET_NAME = re.compile(r"(?i)password|passwd|token|secret|api[_-]?key|csrf|auth")


def scrub(text: str) -> str:
    """Mask what looks like a credential: a line must never carry a token or a password."""
    return _SECRET_PAIR.sub(rf"\1\2{_MASK}", _BEARER.sub(rf"\1\2{_MASK}", text))


def scrub_query(query: str) -> str:
    """A query string with the values of credential-like parameters masked."""
    if not query:
        return ""
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(k, _MASK if _SECRET_NAME.search(k) else v) for k, v in pairs], safe="/")


def _time(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, event, logger, pid, then the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        event = getattr(record, "event", None)
        doc: dict[str, Any] = {
            "time": _time(record.created),
            "level": record.levelname.lower(),
            "event": event or "log",
            "logger": record.name,
            "pid": record.process,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                doc.setdefault(key, scrub(value) if isinstance(value, str) else value)
        if event is None:
            doc["message"] = scrub(record.getMessage())
        if record.exc_info:
            doc["exception"] = scrub(self.formatException(record.exc_info))
        return json.dumps(doc, default=str)


class JsonLogger(Logger):
    """gunicorn's Logger with JSON lines for its error log and an access log of named fields."""

    def setup(self, cfg) -> None:  # noqa: ANN001 - gunicorn's Config
        super().setup(cfg)
        formatter = JsonFormatter()
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(formatter)

    def access(self, resp, req, environ, request_time) -> None:  # noqa: ANN001 - gunicorn's
        if not self.access_log_enabled:
            return
        status = resp.status
        if isinstance(status, str):
            status = status.split(None, 1)[0]
        try:
            status = int(status)
        except (TypeError, ValueError):
            status = None
        fields = {
            "method": environ.get("REQUEST_METHOD"),
            "path": environ.get("PATH_INFO"),
            "query": scrub_query(environ.get("QUERY_STRING", "")) or None,
            "status": status,
            "bytes": getattr(resp, "sent", None),  # response body sent
            "request_bytes": _length(environ.get("CONTENT_LENGTH")),
            "duration_ms": round(request_time.total_seconds() * 1000, 3),
            "remote": environ.get("REMOTE_ADDR"),
            "user": environ.get("tuscam.user"),
            "user_agent": environ.get("HTTP_USER_AGENT"),
            "referer": environ.get("HTTP_REFERER"),
        }
        fields = {k: v for k, v in fields.items() if v is not None}
        try:
            self.access_log.info("request", extra={"event": "http-request", "fields": fields})
        except Exception:
            self.exception("access log failed")


def _length(value: str | None) -> int | None:
    return int(value) if value and value.isascii() and value.isdigit() else None


def route_app_logs(glogger: Logger) -> None:
    """Send the app's log records (the root logger) to gunicorn's error handlers, in their
    format, at gunicorn's level. Called in each worker after fork; a repeated call replaces."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_gunicorn", False):
            root.removeHandler(handler)
    for handler in glogger.error_log.handlers:
        root.addHandler(handler)
    root.setLevel(glogger.error_log.level)
    # Alembic announces each of its plugins at INFO when the app loads: not news to anyone.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, glogger.error_log.level))
    logging.captureWarnings(True)
