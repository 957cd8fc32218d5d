"""Who may see what: the visibility rules shared by the JSON API and the pages.

Reviewers and admins see everything; operators see the sessions assigned to them (or to nobody)
and the assessments those sessions or they themselves belong to.
"""

from __future__ import annotations

from sqlalchemy import Select, exists, or_, select

from app.errors import ApiError
from services.models import Assessment, Capture, CaptureSession, Role, User


def sees_everything(user: User) -> bool:
    return user.role in (Role.ADMIN, Role.REVIEWER)


def session_filter(user: User):  # noqa: ANN201 - a SQLAlchemy expression
    return or_(CaptureSession.operator_id == user.id, CaptureSession.operator_id.is_(None))


def assessments_query(user: User) -> Select[tuple[Assessment]]:
    query = select(Assessment).order_by(Assessment.id.desc())
    if sees_everything(user):
        return query
    has_session = exists().where(
        CaptureSession.assessment_id == Assessment.id, session_filter(user)
    )
    return query.where(or_(Assessment.created_by_id == user.id, has_session))


def can_see_session(user: User, session: CaptureSession) -> bool:
    return sees_everything(user) or session.operator_id in (None, user.id)


def can_see_assessment(user: User, assessment: Assessment) -> bool:
    if sees_everything(user) or assessment.created_by_id == user.id:
        return True
    return any(can_see_session(user, s) for s in assessment.sessions)


def require_visible_session(user: User, session: CaptureSession | None, session_id: int):
    # Someone else's session answers 404 like a missing one: ids are not to be probed.
    if session is None or not can_see_session(user, session):
        raise ApiError(404, "not-found", f"There is no capture session {session_id}.")
    return session


def require_visible_capture(user: User, capture: Capture | None, capture_id: int) -> Capture:
    if capture is None or not can_see_session(user, capture.session):
        raise ApiError(404, "not-found", f"There is no capture {capture_id}.")
    return capture
