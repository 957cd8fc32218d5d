"""The stored capture files: originals (as attachments) and thumbnails, for whoever may see
the capture. On S3 they are streamed through the app (not redirected to a presigned URL): the
object store need not be reachable from browsers, and every download is authorized here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, send_file

from app.access import require_visible_capture
from app.auth import login_required, require_user
from app.db import get_db
from app.errors import ApiError
from app.uploads import capture_store
from services.camera.imaging import MIME_TYPES
from services.camera.s3_capture_store import (
    CaptureStoreUnavailable,
    S3CaptureStore,
    StoredObject,
)
from services.models import Capture

files_bp = Blueprint("capture_files", __name__)
# Served files are never interpreted by the browser as anything else, nor run.
FILE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}


def _capture_file(capture_id: int, which: str) -> tuple[Capture, Path | StoredObject]:
    capture = require_visible_capture(require_user(), get_db().get(Capture, capture_id), capture_id)
    relative = capture.original_path if which == "original" else capture.thumbnail_path
    if not relative:
        raise ApiError(404, "not-found", f"Capture {capture_id} has no {which}.")
    store = capture_store(current_app)
    if not isinstance(store, S3CaptureStore):
        return capture, store.path(relative)
    try:
        return capture, store.open(relative)
    except FileNotFoundError:
        raise ApiError(
            404, "not-found", f"The {which} of capture {capture_id} is missing."
        ) from None
    except CaptureStoreUnavailable as exc:
        raise ApiError(503, "storage-unavailable", f"{exc}; try again shortly.") from None


def _send(source: Path | StoredObject, **options: Any) -> Response:
    if isinstance(source, Path):
        return send_file(source, **options)
    # A stream of the object's blocks; its ETag and date make conditional requests work.
    response = send_file(
        _ObjectReader(source), etag=source.etag, last_modified=source.last_modified, **options
    )
    response.content_length = source.size
    return response


class _ObjectReader:
    """The file-like object send_file streams: the S3 body, read in blocks, closed at the end."""

    def __init__(self, stored: StoredObject) -> None:
        self.stored = stored

    def read(self, size: int = -1) -> bytes:
        return self.stored.body.read(None if size < 0 else size)

    def close(self) -> None:
        self.stored.body.close()


@files_bp.get("/captures/<int:capture_id>/original")
@login_required
def original(capture_id: int) -> Any:
    capture, path = _capture_file(capture_id, "original")
    mimetype = MIME_TYPES.get(capture.format or "", "application/octet-stream")
    response = _send(path, mimetype=mimetype, as_attachment=True, download_name=capture.filename)
    response.headers.update(FILE_HEADERS)
    return response


@files_bp.get("/captures/<int:capture_id>/thumbnail")
@login_required
def thumbnail(capture_id: int) -> Any:
    _capture, path = _capture_file(capture_id, "thumbnail")
    response = _send(path, mimetype="image/jpeg", max_age=86400, conditional=True)
    response.cache_control.private = True
    response.headers.update(FILE_HEADERS)
    return response
