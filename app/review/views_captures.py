"""A session's gallery (keyset pages, filters, counts), the poll review.js makes for captures
that arrive while the session is live, and one capture's page with its review form."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from app.access import require_visible_capture, require_visible_session
from app.auth import login_required, require_user, roles_required
from app.db import get_db
from app.params import int_arg
from app.review import bp
from app.review.forms import DECISIONS, ReviewForm
from app.review.queries import (
    GalleryView,
    gallery_page,
    neighbours,
    newest_id,
    next_pending,
    session_summary,
)
from services.models import Capture, CaptureSession, ReviewStatus, Role, utcnow

POLL_LIMIT = 50
# A poll looks for ids above the last one seen among captures created at most this long before
# it: ids and created_at can disagree by the time between a row's creation and its commit, and
# the bound keeps each poll an index range scan instead of a scan of the whole session.
POLL_WINDOW = timedelta(minutes=10)


# --- /review/sessions/<id>: the gallery -----------------------------------------------------


def _visible_session(session_id: int) -> CaptureSession:
    session = get_db().scalar(
        select(CaptureSession)
        .where(CaptureSession.id == session_id)
        .options(joinedload(CaptureSession.assessment), joinedload(CaptureSession.operator))
    )
    return require_visible_session(require_user(), session, session_id)


@bp.get("/sessions/<int:session_id>", endpoint="session")
@login_required
def session_gallery(session_id: int) -> Any:
    session = _visible_session(session_id)
    view = GalleryView.from_args(request.args)
    db = get_db()
    page = gallery_page(db, session.id, view)
    summary = session_summary(db, session.id)
    live = session.is_open and page.is_first and view.order == "desc"
    return render_template(
        "review/session.html",
        session=session,
        assessment=session.assessment,
        view=view,
        page=page,
        summary=summary,
        live=live,
        last_id=newest_id(db, session.id),
        matching=summary.count(**view.filters),
        can_review=require_user().has_role(Role.REVIEWER),
    )


@bp.get("/sessions/<int:session_id>/since", endpoint="since")
@login_required
def captures_since(session_id: int) -> Any:
    """Captures with an id above after_id that match the gallery's filters, newest first, as
    ready-made cards (escaped by Jinja) for review.js to prepend while a session is live.

    last_id is the highest id seen in the session, matching or not, so the next poll starts
    after it; a bounded number of statements, each an index range scan."""
    session = _visible_session(session_id)
    after_id = int_arg(request.args, "after_id", 0, lo=0) or 0
    view = GalleryView.from_args(request.args)
    db = get_db()
    window = [Capture.session_id == session.id]
    seen_at = db.scalar(
        select(Capture.created_at).where(Capture.id == after_id, Capture.session_id == session.id)
    )
    if seen_at is not None:
        window.append(Capture.created_at >= seen_at - POLL_WINDOW)
    top = db.scalar(select(func.max(Capture.id)).where(*window)) or 0
    rows = list(
        db.scalars(
            select(Capture)
            .where(*window, Capture.id > after_id, Capture.id <= top, *view.conditions())
            .order_by(Capture.id.asc())
            .limit(POLL_LIMIT + 1)
        )
    )
    more = len(rows) > POLL_LIMIT
    rows = rows[:POLL_LIMIT]
    last_id = rows[-1].id if more else max(top, after_id)
    return {
        "last_id": last_id,
        "count": len(rows),
        "more": more,
        "html": render_template("review/_cards.html", captures=rows[::-1]),
        "open": session.is_open,
    }


# --- /review/captures/<id> -------------------------------------------------------------------


def _load_capture(capture_id: int) -> Capture:
    capture = get_db().scalar(
        select(Capture)
        .where(Capture.id == capture_id)
        .options(
            joinedload(Capture.session).joinedload(CaptureSession.assessment),
            joinedload(Capture.uploaded_by),
            joinedload(Capture.reviewed_by),
        )
    )
    return require_visible_capture(require_user(), capture, capture_id)


def _render_capture(capture: Capture, form: ReviewForm | None = None, status: int = 200) -> Any:
    db = get_db()
    prev_id, next_id = neighbours(db, capture)
    if form is None:
        form = ReviewForm(formdata=None, note=capture.reviewer_note)
    upload_time = (
        capture.created_at - capture.upload_started_at if capture.upload_started_at else None
    )
    return render_template(
        "review/capture.html",
        capture=capture,
        session=capture.session,
        assessment=capture.session.assessment,
        prev_id=prev_id,
        next_id=next_id,
        upload_time=upload_time,
        form=form,
        can_review=require_user().has_role(Role.REVIEWER),
    ), status


@bp.get("/captures/<int:capture_id>", endpoint="capture")
@login_required
def capture_page(capture_id: int) -> Any:
    return _render_capture(_load_capture(capture_id))


@bp.post("/captures/<int:capture_id>/review", endpoint="review_capture")
@roles_required(Role.REVIEWER, Role.ADMIN)
def review_capture(capture_id: int) -> Any:
    user = require_user()
    capture = _load_capture(capture_id)
    form = ReviewForm()
    if not form.validate():
        return _render_capture(capture, form, 400)
    decision = DECISIONS[form.decision.data or ""]
    capture.review_status = decision.value
    capture.reviewer_note = (form.note.data or "").strip()
    capture.reviewed_by_id = user.id
    capture.reviewed_at = utcnow()
    db = get_db()
    db.commit()
    verb = {"approved": "Approved", "rejected": "Rejected", "pending": "Reset to pending"}
    message = f"{verb[decision.value]} capture {capture.id}."
    if decision == ReviewStatus.PENDING:
        flash(message, "success")
        return redirect(url_for("review.capture", capture_id=capture.id), 303)
    next_id = next_pending(db, capture)
    if next_id is None:
        flash(f"{message} Nothing left to review in this session.", "success")
        return redirect(url_for("review.capture", capture_id=capture.id), 303)
    flash(f"{message} Showing the next capture to review.", "success")
    return redirect(url_for("review.capture", capture_id=next_id), 303)
