"""The stored capture files: originals (as attachments) and thumbnails, for whoever may see
the capture."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, current_app, send_file

from app.access import require_visible_capture
from app.auth import current_user, login_required
from app.db import get_db
from app.errors import ApiError
from app.uploads import capture_store
from services.camera.imaging import MIME_TYPES
from services.models import Capture

files_bp = Blueprint("capture_files", __name__)
# Served files are never interpreted by the browser as anything else, nor run.
FILE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}


def _capture_file(capture_id: int, which: str) -> tuple[Capture, Path]:
    user = current_user()
    assert user is not None
    capture = require_visible_capture(user, get_db().get(Capture, capture_id), capture_id)
    relative = capture.original_path if which == "original" else capture.thumbnail_path
    if not relative:
        raise ApiError(404, "not-found", f"Capture {capture_id} has no {which}.")
    return capture, capture_store(current_app).path(relative)


@files_bp.get("/captures/<int:capture_id>/original")
@login_required
def original(capture_id: int) -> Any:
    capture, path = _capture_file(capture_id, "original")
    mimetype = MIME_TYPES.get(capture.format or "", "application/octet-stream")
    response = send_file(
        path, mimetype=mimetype, as_attachment=True, download_name=capture.filename
    )
    response.headers.update(FILE_HEADERS)
    return response


@files_bp.get("/captures/<int:capture_id>/thumbnail")
@login_required
def thumbnail(capture_id: int) -> Any:
    _capture, path = _capture_file(capture_id, "thumbnail")
    response = send_file(path, mimetype="image/jpeg", max_age=86400, conditional=True)
    response.cache_control.private = True
    response.headers.update(FILE_HEADERS)
    return response
