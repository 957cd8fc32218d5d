"""The reviewer's start page (assessments with their counts, and a form for a new one) and an
assessment's page (its sessions with their counts, and a form for a new session)."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from app.access import assessments_query, can_see_session, sees_everything
from app.auth import login_required, require_user, roles_required
from app.db import get_db
from app.errors import ApiError
from app.params import int_arg
from app.review import bp
from app.review.forms import AssessmentForm, SessionForm
from app.review.queries import assessment_counts, session_counts
from services.models import Assessment, CaptureSession, Role, User

ASSESSMENTS_PER_PAGE = 50


# --- /review/: assessments ---------------------------------------------------------------


def _render_index(form: AssessmentForm, status: int = 200) -> Any:
    user = require_user()
    db = get_db()
    page = int_arg(request.args, "page", 1, hi=10**6) or 1
    rows = db.scalars(
        assessments_query(user)
        .limit(ASSESSMENTS_PER_PAGE + 1)
        .offset((page - 1) * ASSESSMENTS_PER_PAGE)
    ).all()
    has_more = len(rows) > ASSESSMENTS_PER_PAGE
    assessments = list(rows[:ASSESSMENTS_PER_PAGE])
    counts = assessment_counts(db, user, assessments)
    return render_template(
        "review/index.html",
        rows=[(a, counts[a.id]) for a in assessments],
        page=page,
        has_more=has_more,
        user=user,
        form=form,
        can_create=user.has_role(Role.OPERATOR),
    ), status


@bp.get("/", endpoint="index")
@login_required
def index() -> Any:
    return _render_index(AssessmentForm(formdata=None))


@bp.post("/assessments", endpoint="create_assessment")
@roles_required(Role.OPERATOR, Role.ADMIN)
def create_assessment() -> Any:
    form = AssessmentForm()
    if not form.validate():
        return _render_index(form, 400)
    assessment = Assessment(
        title=(form.title.data or "").strip(),
        description=(form.description.data or "").strip(),
        created_by_id=require_user().id,
    )
    db = get_db()
    db.add(assessment)
    db.commit()
    flash(f"Assessment “{assessment.title}” created.", "success")
    return redirect(url_for("review.assessment", assessment_id=assessment.id), 303)


# --- /review/assessments/<id>: sessions -----------------------------------------------------


def _visible_assessment(
    db: Session, user: User, assessment_id: int
) -> tuple[Assessment, list[CaptureSession]]:
    assessment = db.get(Assessment, assessment_id)
    sessions: list[CaptureSession] = []
    if assessment is not None:
        sessions = list(
            db.scalars(
                select(CaptureSession)
                .where(CaptureSession.assessment_id == assessment.id)
                .options(joinedload(CaptureSession.operator))
                .order_by(CaptureSession.id)
            )
        )
        sessions = [s for s in sessions if can_see_session(user, s)]
    if assessment is None or not (
        sees_everything(user) or assessment.created_by_id == user.id or sessions
    ):
        raise ApiError(404, "not-found", f"There is no assessment {assessment_id}.")
    return assessment, sessions


def _session_form(db: Session, user: User, formdata: Any = None) -> SessionForm:
    form = SessionForm(formdata=formdata) if formdata is not None else SessionForm(formdata=None)
    if user.role == Role.ADMIN:
        operators = db.scalars(
            select(User)
            .where(User.role == Role.OPERATOR.value, User.active)
            .order_by(User.username)
        )
        form.operator_id.choices = [("", "Any operator")] + [
            (str(u.id), u.username) for u in operators
        ]
    else:
        form.operator_id.choices = [("", "Me")]
    return form


def _render_assessment(assessment_id: int, form: SessionForm | None, status: int = 200) -> Any:
    user = require_user()
    db = get_db()
    assessment, sessions = _visible_assessment(db, user, assessment_id)
    can_create = user.has_role(Role.OPERATOR)
    if form is None and can_create:
        form = _session_form(db, user)
    return render_template(
        "review/assessment.html",
        assessment=assessment,
        sessions=sessions,
        counts=session_counts(db, [s.id for s in sessions]),
        form=form,
        can_create=can_create,
        user=user,
    ), status


@bp.get("/assessments/<int:assessment_id>", endpoint="assessment")
@login_required
def assessment_page(assessment_id: int) -> Any:
    return _render_assessment(assessment_id, None)


@bp.post("/assessments/<int:assessment_id>/sessions", endpoint="create_session")
@roles_required(Role.OPERATOR, Role.ADMIN)
def create_session(assessment_id: int) -> Any:
    user = require_user()
    db = get_db()
    assessment, _sessions = _visible_assessment(db, user, assessment_id)
    form = _session_form(db, user, request.form)
    if not form.validate():
        return _render_assessment(assessment_id, form, 400)
    operator_id: int | None = user.id
    if user.role == Role.ADMIN:
        operator_id = int(form.operator_id.data) if form.operator_id.data else None
    session = CaptureSession(
        assessment=assessment, label=(form.label.data or "").strip(), operator_id=operator_id
    )
    db.add(session)
    db.commit()
    flash(f"Session “{session.label}” created.", "success")
    return redirect(url_for("review.session", session_id=session.id), 303)
