"""Reviewer pages: assessments with counts, a session's capture gallery, one capture with its
camera settings, EXIF and upload facts, and the approve / reject form.

Server-rendered with Jinja; static/review.js adds keyboard shortcuts and polls for captures that
arrive during a live session. Every page issues a bounded number of queries whatever its size.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import (
    Blueprint,
    Flask,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_wtf import FlaskForm
from sqlalchemy import case, func, select, tuple_
from sqlalchemy.orm import Session, joinedload
from wtforms import SelectField, StringField, TextAreaField
from wtforms.validators import AnyOf, DataRequired, Length

from app.access import (
    assessments_query,
    can_see_session,
    require_visible_capture,
    require_visible_session,
    sees_everything,
    session_filter,
)
from app.auth import current_user, login_required, roles_required
from app.db import get_db
from app.errors import ApiError
from services.models import (
    Assessment,
    Capture,
    CaptureSession,
    CaptureStatus,
    ReviewStatus,
    Role,
    User,
    utcnow,
)

bp = Blueprint("review", __name__, url_prefix="/review")

ASSESSMENTS_PER_PAGE = 50
PER_PAGE = 60
MAX_PER_PAGE = 200
# The session summary (facets and totals) counts at most this many of the newest captures, so a
# gallery page's work is bounded however large a session grows; beyond it counts read "N+".
SUMMARY_CAP = 20_000
POLL_LIMIT = 50
# A poll looks for ids above the last one seen among captures created at most this long before
# it: ids and created_at can disagree by the time between a row's creation and its commit, and
# the bound keeps each poll an index range scan instead of a scan of the whole session.
POLL_WINDOW = timedelta(minutes=10)
GALLERY_FILTERS = {
    "trigger": Capture.capture_trigger,
    "type": Capture.capture_type,
    "status": Capture.status,
    "review_status": Capture.review_status,
}
DECISIONS = {
    "approve": ReviewStatus.APPROVED,
    "reject": ReviewStatus.REJECTED,
    "reset": ReviewStatus.PENDING,
}
# The EXIF facts the capture service records (services/camera/imaging.py read_exif), in a
# photographer's order with readable labels; any other key is listed after them as it is.
EXIF_LABELS = {
    "make": "Camera make",
    "model": "Camera model",
    "datetime_original": "Taken (camera clock)",
    "offset_time_original": "Camera time zone",
    "orientation": "Orientation",
    "gps": "GPS position",
}
ORIENTATIONS = {
    1: "upright",
    2: "mirrored",
    3: "rotated 180°",
    4: "mirrored, rotated 180°",
    5: "mirrored, rotated 90° counter-clockwise",
    6: "rotated 90° clockwise",
    7: "mirrored, rotated 90° clockwise",
    8: "rotated 90° counter-clockwise",
}
MAX_VALUE_CHARS = 500


# --- forms ----------------------------------------------------------------------------------


class AssessmentForm(FlaskForm):
    title = StringField("Title", validators=[DataRequired(), Length(max=200)])
    description = TextAreaField("Description", validators=[Length(max=5000)])


class SessionForm(FlaskForm):
    label = StringField("Label", validators=[DataRequired(), Length(max=200)])
    # Admins choose who operates the session; for operators the field is absent and ignored.
    operator_id = SelectField("Operator", choices=[], default="")


class ReviewForm(FlaskForm):
    decision = StringField(validators=[AnyOf(list(DECISIONS))])
    note = TextAreaField("Note", validators=[Length(max=5000)])


# --- helpers ---------------------------------------------------------------------------------


def _user() -> User:
    user = current_user()
    assert user is not None  # login_required ran
    return user


def _int_arg(name: str, default: int | None, *, lo: int = 1, hi: int = 10**12) -> int | None:
    raw = request.args.get(name, "")
    if raw == "":
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 13) or not lo <= int(raw) <= hi:
        raise ApiError(400, "bad-request", f"Query parameter '{name}' must be a number {lo}-{hi}.")
    return int(raw)


def fmt_time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


def fmt_bytes(size: int | None) -> str:
    if size is None:
        return "—"
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size:,} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size:,} bytes"  # pragma: no cover - the loop always returns


def fmt_duration(delta: timedelta | None) -> str:
    if delta is None:
        return "—"
    seconds = delta.total_seconds()
    if seconds < 0:
        return "—"
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s"


def fmt_value(value: Any) -> str:
    """Any JSON value as plain text for a table cell (the template escapes it)."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool) or value is None:
        text = json.dumps(value)
    elif isinstance(value, int | float):
        text = str(value)
    else:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "…"


def settings_rows(data: Any) -> list[tuple[str, str]]:
    """A JSON object as sorted (key, text) rows; anything else as one row."""
    if not data:
        return []
    if not isinstance(data, dict):
        return [("value", fmt_value(data))]
    return [(str(k), fmt_value(v)) for k, v in sorted(data.items(), key=lambda kv: str(kv[0]))]


def exif_rows(exif: Any) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(the recorded facts under readable labels, any other keys as they are)."""
    if not isinstance(exif, dict):
        return [], settings_rows(exif)
    summary = []
    for key, label in EXIF_LABELS.items():
        if key not in exif:
            continue
        value = exif[key]
        if key == "orientation" and value in ORIENTATIONS:
            text = f"{value} ({ORIENTATIONS[value]}; the preview is upright)"
        elif key == "gps":
            text = "recorded (kept in the original only)" if value else "none"
        else:
            text = fmt_value(value)
        summary.append((label, text))
    rest = settings_rows({k: v for k, v in exif.items() if k not in EXIF_LABELS})
    return summary, rest


@bp.context_processor
def _helpers() -> dict[str, Any]:
    return {
        "fmt_time": fmt_time,
        "fmt_bytes": fmt_bytes,
        "fmt_duration": fmt_duration,
        "settings_rows": settings_rows,
        "exif_rows": exif_rows,
        "ReviewStatus": ReviewStatus,
        "CaptureStatus": CaptureStatus,
    }


# --- /review/: assessments ---------------------------------------------------------------


@dataclass
class Counts:
    sessions: int = 0
    captures: int = 0
    pending: int = 0
    last_activity: datetime | None = None

    def touch(self, when: datetime | None) -> None:
        if when is not None and (self.last_activity is None or when > self.last_activity):
            self.last_activity = when


def _pending_sum() -> Any:
    return func.coalesce(
        func.sum(case((Capture.review_status == ReviewStatus.PENDING.value, 1), else_=0)), 0
    )


def assessment_counts(db: Session, user: User, assessments: list[Assessment]) -> dict[int, Counts]:
    """Sessions, captures, pending reviews and last activity per assessment: two grouped queries
    over the given assessments only, counting the sessions the user may see."""
    counts = {a.id: Counts() for a in assessments}
    for a in assessments:
        counts[a.id].touch(a.created_at)
    if not counts:
        return counts
    ids = list(counts)
    visible = [] if sees_everything(user) else [session_filter(user)]
    sessions = db.execute(
        select(CaptureSession.assessment_id, func.count(), func.max(CaptureSession.started_at))
        .where(CaptureSession.assessment_id.in_(ids), *visible)
        .group_by(CaptureSession.assessment_id)
    )
    for assessment_id, n, last in sessions:
        counts[assessment_id].sessions = n
        counts[assessment_id].touch(last)
    captures = db.execute(
        select(
            CaptureSession.assessment_id,
            func.count(Capture.id),
            _pending_sum(),
            func.max(Capture.created_at),
        )
        .join(Capture, Capture.session_id == CaptureSession.id)
        .where(CaptureSession.assessment_id.in_(ids), *visible)
        .group_by(CaptureSession.assessment_id)
    )
    for assessment_id, n, pending, last in captures:
        counts[assessment_id].captures = n
        counts[assessment_id].pending = int(pending)
        counts[assessment_id].touch(last)
    return counts


def _render_index(form: AssessmentForm, status: int = 200) -> Any:
    user = _user()
    db = get_db()
    page = _int_arg("page", 1, hi=10**6) or 1
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
        created_by_id=_user().id,
    )
    db = get_db()
    db.add(assessment)
    db.commit()
    flash(f"Assessment “{assessment.title}” created.", "success")
    return redirect(url_for("review.assessment", assessment_id=assessment.id), 303)


# --- /review/assessments/<id>: sessions -----------------------------------------------------


@dataclass
class SessionCounts:
    captures: int = 0
    pending: int = 0
    problems: int = 0  # rejected or duplicate uploads
    last_capture: datetime | None = None


def session_counts(db: Session, session_ids: list[int]) -> dict[int, SessionCounts]:
    counts = {sid: SessionCounts() for sid in session_ids}
    if not session_ids:
        return counts
    problems = func.coalesce(
        func.sum(case((Capture.status != CaptureStatus.ACCEPTED.value, 1), else_=0)), 0
    )
    rows = db.execute(
        select(
            Capture.session_id,
            func.count(),
            _pending_sum(),
            problems,
            func.max(Capture.created_at),
        )
        .where(Capture.session_id.in_(session_ids))
        .group_by(Capture.session_id)
    )
    for sid, n, pending, bad, last in rows:
        counts[sid] = SessionCounts(n, int(pending), int(bad), last)
    return counts


def _visible_assessment(db: Session, user: User, assessment_id: int):  # noqa: ANN202
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
    user = _user()
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
    user = _user()
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


# --- /review/sessions/<id>: the gallery -----------------------------------------------------


@dataclass(frozen=True)
class GalleryView:
    """What the gallery's GET parameters ask for."""

    filters: dict[str, str]
    order: str = "desc"
    per_page: int = PER_PAGE
    after: int | None = None  # the last capture of the previous page (going forward)
    before: int | None = None  # the first capture of the next page (going back)

    @classmethod
    def from_args(cls) -> GalleryView:
        filters = {}
        for name in GALLERY_FILTERS:
            value = request.args.get(name, "").strip()
            if value:
                filters[name] = value[:64]
        order = request.args.get("order", "desc")
        if order not in ("asc", "desc"):
            raise ApiError(400, "bad-request", "Query parameter 'order' must be asc or desc.")
        per_page = _int_arg("per_page", PER_PAGE, hi=MAX_PER_PAGE) or PER_PAGE
        return cls(filters, order, per_page, _int_arg("after", None), _int_arg("before", None))

    def conditions(self) -> list[Any]:
        return [GALLERY_FILTERS[name] == value for name, value in self.filters.items()]

    def args(self, **changes: Any) -> dict[str, Any]:
        """GET parameters for a link from this view (cursor dropped unless given)."""
        args: dict[str, Any] = {**self.filters, "order": self.order}
        if self.per_page != PER_PAGE:
            args["per_page"] = self.per_page
        args.update(changes)
        return {k: v for k, v in args.items() if v not in (None, "")}


@dataclass
class GalleryPage:
    captures: list[Capture]
    has_prev: bool
    has_next: bool
    is_first: bool


def _key() -> Any:
    return tuple_(Capture.created_at, Capture.id)


def gallery_page(db: Session, session_id: int, view: GalleryView) -> GalleryPage:
    """One page by keyset on (created_at, id): index ix_captures_session_created serves both the
    filter and the order, so page 200 costs what page 1 costs."""
    query = select(Capture).where(Capture.session_id == session_id, *view.conditions())
    cursor_id = view.before if view.before is not None else view.after
    backwards = view.before is not None
    if cursor_id is not None:
        cursor = db.execute(
            select(Capture.created_at, Capture.id).where(
                Capture.id == cursor_id, Capture.session_id == session_id
            )
        ).first()
        if cursor is None:
            raise ApiError(400, "bad-request", f"Capture {cursor_id} is not in this session.")
        # Forward in a newest-first view means older captures, and the other way round.
        toward_older = (view.order == "desc") != backwards
        query = query.where(_key() < tuple(cursor) if toward_older else _key() > tuple(cursor))
    ascending = (view.order == "asc") != backwards
    order = (
        (Capture.created_at.asc(), Capture.id.asc())
        if ascending
        else (Capture.created_at.desc(), Capture.id.desc())
    )
    rows = list(db.scalars(query.order_by(*order).limit(view.per_page + 1)))
    more = len(rows) > view.per_page
    rows = rows[: view.per_page]
    if backwards:
        rows.reverse()
        return GalleryPage(rows, has_prev=more, has_next=True, is_first=not more)
    return GalleryPage(
        rows, has_prev=cursor_id is not None, has_next=more, is_first=cursor_id is None
    )


@dataclass
class Summary:
    """Counts over the newest `cap` captures of a session (plus one, to know there are more),
    from one grouped query: (trigger, type, status, review_status, count) rows."""

    groups: list[tuple[str, str, str, str, int]] = field(default_factory=list)
    cap: int = SUMMARY_CAP

    @property
    def total(self) -> int:
        return sum(g[4] for g in self.groups)

    @property
    def capped(self) -> bool:
        return self.total > self.cap

    def count(self, **filters: str) -> int:
        index = {name: i for i, name in enumerate(GALLERY_FILTERS)}
        return sum(g[4] for g in self.groups if all(g[index[k]] == v for k, v in filters.items()))

    def values(self, name: str) -> list[str]:
        i = list(GALLERY_FILTERS).index(name)
        return sorted({g[i] for g in self.groups})

    def label(self, n: int) -> str:
        """A count for display: a lower bound ("10,000+") once the cap was reached."""
        if not self.capped or not n:
            return f"{n:,}"
        return f"{min(n, self.cap):,}+"


def session_summary(db: Session, session_id: int) -> Summary:
    """First a bounded count on the covering index (about a millisecond at 10,000 captures),
    then the grouped counts: over the whole session when it is within the cap, else over its
    newest `cap` captures (plus one, so the page can say "N+")."""
    cap = SUMMARY_CAP
    in_session = Capture.session_id == session_id
    cols = list(GALLERY_FILTERS.values())
    bounded = select(Capture.id).where(in_session).limit(cap + 1).subquery()
    size = db.scalar(select(func.count()).select_from(bounded)) or 0
    if size <= cap:
        query = select(*cols, func.count()).where(in_session).group_by(*cols)
    else:
        newest = (
            select(*cols).where(in_session).order_by(Capture.created_at.desc()).limit(cap + 1)
        ).subquery()
        query = select(*newest.c, func.count()).group_by(*newest.c)
    return Summary([tuple(r) for r in db.execute(query)], cap)  # type: ignore[misc]


def _visible_session(session_id: int) -> CaptureSession:
    session = get_db().scalar(
        select(CaptureSession)
        .where(CaptureSession.id == session_id)
        .options(joinedload(CaptureSession.assessment), joinedload(CaptureSession.operator))
    )
    return require_visible_session(_user(), session, session_id)


@bp.get("/sessions/<int:session_id>", endpoint="session")
@login_required
def session_gallery(session_id: int) -> Any:
    session = _visible_session(session_id)
    view = GalleryView.from_args()
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
        last_id=_newest_id(db, session.id),
        matching=summary.count(**view.filters),
        can_review=_user().has_role(Role.REVIEWER),
    )


def _newest_id(db: Session, session_id: int) -> int:
    """The id of the session's newest capture (whatever the filters): where polls start."""
    newest = db.scalar(
        select(Capture.id)
        .where(Capture.session_id == session_id)
        .order_by(Capture.created_at.desc(), Capture.id.desc())
        .limit(1)
    )
    return newest or 0


@bp.get("/sessions/<int:session_id>/since", endpoint="since")
@login_required
def captures_since(session_id: int) -> Any:
    """Captures with an id above after_id that match the gallery's filters, newest first, as
    ready-made cards (escaped by Jinja) for review.js to prepend while a session is live.

    last_id is the highest id seen in the session, matching or not, so the next poll starts
    after it; a bounded number of statements, each an index range scan."""
    session = _visible_session(session_id)
    after_id = _int_arg("after_id", 0, lo=0) or 0
    view = GalleryView.from_args()
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


def _neighbours(db: Session, capture: Capture) -> tuple[int | None, int | None]:
    """The captures just before and after this one in the session, by capture time."""
    here = tuple_(Capture.created_at, Capture.id)
    key = (capture.created_at, capture.id)
    base = select(Capture.id).where(Capture.session_id == capture.session_id)
    prev_id = db.scalar(
        base.where(here < key).order_by(Capture.created_at.desc(), Capture.id.desc()).limit(1)
    )
    next_id = db.scalar(
        base.where(here > key).order_by(Capture.created_at.asc(), Capture.id.asc()).limit(1)
    )
    return prev_id, next_id


def _next_pending(db: Session, capture: Capture) -> int | None:
    """The next capture still to review after this one, wrapping to the session's start."""
    base = (
        select(Capture.id)
        .where(
            Capture.session_id == capture.session_id,
            Capture.review_status == ReviewStatus.PENDING.value,
            Capture.id != capture.id,
        )
        .limit(1)
    )
    key = (capture.created_at, capture.id)
    later = db.scalar(base.where(_key() > key).order_by(Capture.created_at.asc(), Capture.id.asc()))
    if later is not None:
        return later
    return db.scalar(base.order_by(Capture.created_at.asc(), Capture.id.asc()))


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
    return require_visible_capture(_user(), capture, capture_id)


def _render_capture(capture: Capture, form: ReviewForm | None = None, status: int = 200) -> Any:
    db = get_db()
    prev_id, next_id = _neighbours(db, capture)
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
        can_review=_user().has_role(Role.REVIEWER),
    ), status


@bp.get("/captures/<int:capture_id>", endpoint="capture")
@login_required
def capture_page(capture_id: int) -> Any:
    return _render_capture(_load_capture(capture_id))


@bp.post("/captures/<int:capture_id>/review", endpoint="review_capture")
@roles_required(Role.REVIEWER, Role.ADMIN)
def review_capture(capture_id: int) -> Any:
    user = _user()
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
    next_id = _next_pending(db, capture)
    if next_id is None:
        flash(f"{message} Nothing left to review in this session.", "success")
        return redirect(url_for("review.capture", capture_id=capture.id), 303)
    flash(f"{message} Showing the next capture to review.", "success")
    return redirect(url_for("review.capture", capture_id=next_id), 303)


def init_app(app: Flask) -> None:
    if "review" not in app.blueprints:
        app.register_blueprint(bp)


__all__ = ["GalleryView", "bp", "gallery_page", "init_app", "session_summary"]
