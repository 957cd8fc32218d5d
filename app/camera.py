"""The camera page of a capture session: Uppy (Webcam + Dashboard + tus) built from frontend/."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from app.access import require_visible_session
from app.auth import require_user, roles_required
from app.db import get_db
from app.errors import ApiError
from services.camera.metadata import may_upload
from services.models import CaptureSession, Role

bp = Blueprint("camera", __name__)

CAMERA_ENTRY = "frontend/camera.js"


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
        session_id=session.id,
        assessment_id=session.assessment_id,
        session_label=session.label,
        assessment_title=session.assessment.title,
        is_open=session.is_open,
        entry=CAMERA_ENTRY,
    )
