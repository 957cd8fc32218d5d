"""GET /metrics (admin bearer token or TUSCAM_METRICS_TOKEN) and GET /readyz (database answers,
storage writable; 503 with a JSON reason otherwise)."""

from __future__ import annotations

import hmac
import os
import tempfile
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from app.auth import principal_from_bearer
from app.db import db_engine
from app.ops import metrics
from app.tus.s3store import S3Store
from app.tus.storage import StorageUnavailable
from app.uploads import storage

bp = Blueprint("ops", __name__)


def _unauthorized(message: str) -> Response:
    response = jsonify({"error": "unauthorized", "message": message})
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Bearer realm="tuscam metrics"'
    return response


@bp.get("/metrics")
def metrics_view() -> Response:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return _unauthorized(
            "Metrics need Authorization: Bearer with TUSCAM_METRICS_TOKEN or an admin's token."
        )
    expected = str(current_app.config.get("METRICS_TOKEN") or "")
    allowed = bool(expected) and hmac.compare_digest(token.encode(), expected.encode())
    if not allowed:
        principal = principal_from_bearer(current_app, header)
        allowed = principal is not None and principal.is_admin
    if not allowed:
        return _unauthorized(
            "This token may not read metrics: use TUSCAM_METRICS_TOKEN or an admin's token."
        )
    checks = readiness_problems()
    readiness = {"database": "database" not in checks, "storage": "storage" not in checks}
    body = metrics.exposition(readiness)
    return Response(body, content_type=CONTENT_TYPE_LATEST)


@bp.get("/readyz")
def readyz() -> Any:
    """Ready to serve: the database answers and the storage takes a file. Both are cheap."""
    failures = readiness_problems()
    if failures:
        reason = "; ".join(failures.values())
        body = {"status": "unavailable", "error": "not-ready", "message": f"Not ready: {reason}."}
        return {**body, "reason": reason, "checks": failures}, 503
    return {"status": "ok"}


def readiness_problems() -> dict[str, str]:
    """check name -> what is wrong, for the checks that fail (none: ready)."""
    failures = {}
    try:
        with db_engine(current_app).connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means not ready; the class says which
        failures["database"] = f"the database did not answer ({type(exc).__name__})"
    spec = storage(current_app)
    if spec.spec.kind == "s3":
        problem = s3_problem(spec.tus_store)
    else:
        problem = storage_problem(Path(current_app.config["DATA_DIR"]))
    if problem:
        failures["storage"] = problem
    return failures


def s3_problem(store: S3Store) -> str | None:
    """None when the bucket takes and gives back a tiny object."""
    try:
        store.probe()
    except StorageUnavailable as exc:
        return str(exc)
    return None


def storage_problem(data_dir: Path) -> str | None:
    """None when a file can be created, written and removed in every storage folder."""
    for folder in (data_dir / "uploads", data_dir / "captures"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=".readyz-", dir=folder)
            try:
                os.write(fd, b"ok")
            finally:
                os.close(fd)
                os.unlink(name)
        except OSError as exc:
            return f"the storage folder {folder.name}/ is not writable ({exc.strerror})"
    return None
