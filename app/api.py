"""JSON API: assessments, capture sessions, captures, and the capture made from a tus upload.

Errors are JSON {"error", "message"}; unknown or invisible ids are 404, wrong roles 403.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.access import (
    assessments_query,
    can_see_assessment,
    can_see_session,
    require_visible_capture,
    require_visible_session,
    sees_everything,
)
from app.auth import login_required, require_user, roles_required
from app.db import get_db
from app.errors import ApiError
from app.params import CAPTURE_FILTERS, MAX_PER_PAGE, int_arg
from app.serialize import assessment_json, capture_json, session_json
from services.camera.metadata import may_upload
from services.models import (
    Assessment,
    Capture,
    CaptureSession,
    ReviewStatus,
    Role,
    User,
    utcnow,
)

bp = Blueprint("api", __name__, url_prefix="/api")


def _json_body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ApiError(
            400, "bad-request", "Send a JSON object with Content-Type: application/json."
        )
    return data


def _text(data: dict[str, Any], key: str, *, max_len: int, required: bool) -> str:
    value = data.get(key, "" if not required else None)
    if value is None:
        raise ApiError(400, "bad-request", f"'{key}' is required.")
    if not isinstance(value, str):
        raise ApiError(400, "bad-request", f"'{key}' must be a string.")
    value = value.strip()
    if required and not value:
        raise ApiError(400, "bad-request", f"'{key}' must not be empty.")
    if len(value) > max_len:
        raise ApiError(400, "bad-request", f"'{key}' is longer than {max_len} characters.")
    return value


def _session_or_404(session_id: int) -> CaptureSession:
    return require_visible_session(
        require_user(), get_db().get(CaptureSession, session_id), session_id
    )


@bp.get("/assessments")
@login_required
def list_assessments() -> Any:
    db = get_db()
    assessments = db.scalars(assessments_query(require_user())).all()
    return {"assessments": [assessment_json(a) for a in assessments]}


@bp.post("/assessments")
@roles_required(Role.OPERATOR, Role.ADMIN)
def create_assessment() -> Any:
    data = _json_body()
    assessment = Assessment(
        title=_text(data, "title", max_len=200, required=True),
        description=_text(data, "description", max_len=5000, required=False),
        created_by_id=require_user().id,
    )
    db = get_db()
    db.add(assessment)
    db.commit()
    return assessment_json(assessment, sessions=[]), 201


@bp.get("/assessments/<int:assessment_id>")
@login_required
def get_assessment(assessment_id: int) -> Any:
    user = require_user()
    assessment = get_db().get(Assessment, assessment_id)
    if assessment is None or not can_see_assessment(user, assessment):
        raise ApiError(404, "not-found", f"There is no assessment {assessment_id}.")
    sessions = [s for s in assessment.sessions if can_see_session(user, s)]
    return assessment_json(assessment, sessions=sessions)


def _operator_id(db: Session, value: Any) -> int | None:
    operator = (
        db.get(User, value) if isinstance(value, int) and not isinstance(value, bool) else None
    )
    if value is not None and (operator is None or operator.role != Role.OPERATOR):
        raise ApiError(400, "bad-request", "'operator_id' must name an operator (or be null).")
    return value


@bp.post("/assessments/<int:assessment_id>/sessions")
@roles_required(Role.OPERATOR, Role.ADMIN)
def create_session(assessment_id: int) -> Any:
    user = require_user()
    db = get_db()
    assessment = db.get(Assessment, assessment_id)
    if assessment is None or not can_see_assessment(user, assessment):
        raise ApiError(404, "not-found", f"There is no assessment {assessment_id}.")
    data = _json_body()
    operator_id = user.id
    if "operator_id" in data and user.role == Role.ADMIN:
        operator_id = _operator_id(db, data["operator_id"])
    session = CaptureSession(
        assessment=assessment,
        label=_text(data, "label", max_len=200, required=True),
        operator_id=operator_id,
    )
    db.add(session)
    db.commit()
    return session_json(session), 201


@bp.get("/sessions/<int:session_id>")
@login_required
def get_session(session_id: int) -> Any:
    session = _session_or_404(session_id)
    # Whether the caller may upload here now (scripts check before sending anything).
    return {**session_json(session), "may_upload": may_upload(require_user(), session)}


SESSION_FIELDS = ("ended", "label", "operator_id")


@bp.patch("/sessions/<int:session_id>")
@roles_required(Role.OPERATOR, Role.ADMIN)
def update_session(session_id: int) -> Any:
    """Admins close, reopen, rename and reassign; an operator may only close a session assigned
    to them. Everything is checked before anything changes: a refusal leaves the session as it
    was."""
    user = require_user()
    session = _session_or_404(session_id)
    data = _json_body()
    unknown = set(data) - set(SESSION_FIELDS)
    if unknown:
        raise ApiError(400, "bad-request", f"Unknown field(s): {', '.join(sorted(unknown))}.")
    if "ended" in data and not isinstance(data["ended"], bool):
        raise ApiError(400, "bad-request", "'ended' must be true or false.")
    if not user.is_admin:
        if set(data) - {"ended"} or data.get("ended", True) is not True:
            raise ApiError(
                403,
                "forbidden",
                "Only an admin may reopen, rename or reassign a capture session; "
                'an operator may close their own with {"ended": true}.',
            )
        if session.operator_id != user.id:
            raise ApiError(
                403,
                "forbidden",
                f"Capture session {session_id} is not assigned to you: only its operator "
                "or an admin may close it.",
            )
    label = _text(data, "label", max_len=200, required=True) if "label" in data else None
    db = get_db()
    operator_id = _operator_id(db, data["operator_id"]) if "operator_id" in data else None
    if "ended" in data and data["ended"] == session.is_open:
        session.ended_at = utcnow() if data["ended"] else None
    if label is not None:
        session.label = label
    if "operator_id" in data:
        session.operator_id = operator_id
    db.commit()
    return session_json(session)


@bp.get("/sessions/<int:session_id>/captures")
@login_required
def list_captures(session_id: int) -> Any:
    session = _session_or_404(session_id)
    page = int_arg(request.args, "page", 1, hi=10**6) or 1
    per_page = int_arg(request.args, "per_page", 50, hi=MAX_PER_PAGE) or 50
    query = select(Capture).where(Capture.session_id == session.id)
    for arg, column in CAPTURE_FILTERS.items():
        if value := request.args.get(arg):
            query = query.where(column == value)
    db = get_db()
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    order = (
        Capture.created_at.asc()
        if request.args.get("order") == "asc"
        else Capture.created_at.desc()
    )
    rows = db.scalars(
        query.order_by(order, Capture.id.desc()).limit(per_page).offset((page - 1) * per_page)
    ).all()
    return {
        "session": session_json(session),
        "captures": [capture_json(c) for c in rows],
        "page": page,
        "per_page": per_page,
        "total": total,
    }


@bp.get("/captures/<int:capture_id>")
@login_required
def get_capture(capture_id: int) -> Any:
    return capture_json(
        require_visible_capture(require_user(), get_db().get(Capture, capture_id), capture_id)
    )


@bp.patch("/captures/<int:capture_id>")
@roles_required(Role.REVIEWER, Role.ADMIN)
def review_capture(capture_id: int) -> Any:
    user = require_user()
    capture = require_visible_capture(user, get_db().get(Capture, capture_id), capture_id)
    data = _json_body()
    allowed = {s.value for s in ReviewStatus}
    if "review_status" in data:
        if data["review_status"] not in allowed:
            raise ApiError(
                400, "bad-request", f"'review_status' must be one of {', '.join(sorted(allowed))}."
            )
        capture.review_status = data["review_status"]
        capture.reviewed_by_id = user.id
        capture.reviewed_at = utcnow()
    if "reviewer_note" in data:
        capture.reviewer_note = _text(data, "reviewer_note", max_len=5000, required=False)
    unknown = set(data) - {"review_status", "reviewer_note"}
    if unknown:
        raise ApiError(400, "bad-request", f"Unknown field(s): {', '.join(sorted(unknown))}.")
    get_db().commit()
    return capture_json(capture)


@bp.get("/uploads/<upload_id>")
@login_required
def upload_status(upload_id: str) -> Any:
    """The capture a finished tus upload became, for a client that missed the final response."""
    user = require_user()
    db = get_db()
    capture = db.scalar(select(Capture).where(Capture.upload_id == upload_id))
    if capture is None or not (sees_everything(user) or capture.uploaded_by_id == user.id):
        raise ApiError(404, "not-found", f"No capture was recorded for upload {upload_id} (yet).")
    return {
        "upload_id": upload_id,
        "capture_id": capture.id,
        "status": capture.status,
        "reason": capture.reject_reason,
        "duplicate_of": capture.duplicate_of_id,
    }
