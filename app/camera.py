"""The camera page of a capture session: Uppy (Webcam + Dashboard + tus) built from frontend/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, current_app, render_template, send_file

from app.access import require_visible_session
from app.assets import MANIFEST, AssetsNotBuilt, entry_assets, load_manifest
from app.auth import require_user, roles_required
from app.db import get_db
from app.errors import ApiError
from services.camera.metadata import may_upload
from services.models import CaptureSession, Role

bp = Blueprint("camera", __name__)

CAMERA_ENTRY = "frontend/camera.js"
WORKER_ENTRY = "frontend/sw.js"


@bp.get("/camera-sw.js", endpoint="camera_worker")
def camera_worker() -> Any:
    """The camera page's service worker, at the root so that its scope covers /sessions/.

    Its code is the hashed file of the Vite build; this URL stays the same across builds, and
    `no-cache` makes the browser check it on every visit (a new build takes over at once).
    """
    try:
        manifest = load_manifest(Path(current_app.config.get("VITE_MANIFEST", MANIFEST)))
        script = entry_assets(manifest, WORKER_ENTRY).js
    except AssetsNotBuilt as exc:
        raise ApiError(404, "not-built", str(exc)) from None
    path = Path(current_app.static_folder or "") / script.removeprefix("/static/")
    response = send_file(path, mimetype="text/javascript", max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/sessions/<int:session_id>/camera", endpoint="camera_page")
@roles_required(Role.OPERATOR.value)  # admins always pass
def camera_page(session_id: int) -> Any:
    user = require_user()
    session = require_visible_session(user, get_db().get(CaptureSession, session_id), session_id)
    if not may_upload(user, session):
        raise ApiError(403, "forbidden", f"You may not upload to capture session {session_id}.")
    return render_template(
        "camera.html",
        session=session,
        user_id=user.id,
        session_id=session.id,
        assessment_id=session.assessment_id,
        session_label=session.label,
        assessment_title=session.assessment.title,
        is_open=session.is_open,
        entry=CAMERA_ENTRY,
    )
