"""The reviewer pages' reads: counts per assessment and session, the gallery's keyset pages and
summary, a capture's neighbours. Functions of a Session and plain data, no Flask globals."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select, tuple_
from sqlalchemy.orm import Session

from app.access import sees_everything, session_filter
from app.errors import ApiError
from app.params import CAPTURE_FILTERS, MAX_PER_PAGE, int_arg
from services.models import Assessment, Capture, CaptureSession, CaptureStatus, ReviewStatus, User

PER_PAGE = 60
# The session summary (facets and totals) counts at most this many of the newest captures, so a
# gallery page's work is bounded however large a session grows; beyond it counts read "N+".
SUMMARY_CAP = 20_000


# --- counts on the assessment pages -----------------------------------------------------------


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


# --- the session gallery ----------------------------------------------------------------------


@dataclass(frozen=True)
class GalleryView:
    """What the gallery's GET parameters ask for."""

    filters: dict[str, str]
    order: str = "desc"
    per_page: int = PER_PAGE
    after: int | None = None  # the last capture of the previous page (going forward)
    before: int | None = None  # the first capture of the next page (going back)

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> GalleryView:
        filters = {}
        for name in CAPTURE_FILTERS:
            value = args.get(name, "").strip()
            if value:
                filters[name] = value[:64]
        order = args.get("order", "desc")
        if order not in ("asc", "desc"):
            raise ApiError(400, "bad-request", "Query parameter 'order' must be asc or desc.")
        per_page = int_arg(args, "per_page", PER_PAGE, hi=MAX_PER_PAGE) or PER_PAGE
        return cls(
            filters, order, per_page, int_arg(args, "after", None), int_arg(args, "before", None)
        )

    def conditions(self) -> list[Any]:
        return [CAPTURE_FILTERS[name] == value for name, value in self.filters.items()]

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
        index = {name: i for i, name in enumerate(CAPTURE_FILTERS)}
        return sum(g[4] for g in self.groups if all(g[index[k]] == v for k, v in filters.items()))

    def values(self, name: str) -> list[str]:
        i = list(CAPTURE_FILTERS).index(name)
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
    cols = list(CAPTURE_FILTERS.values())
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


def newest_id(db: Session, session_id: int) -> int:
    """The id of the session's newest capture (whatever the filters): where polls start."""
    newest = db.scalar(
        select(Capture.id)
        .where(Capture.session_id == session_id)
        .order_by(Capture.created_at.desc(), Capture.id.desc())
        .limit(1)
    )
    return newest or 0


# --- one capture ------------------------------------------------------------------------------


def neighbours(db: Session, capture: Capture) -> tuple[int | None, int | None]:
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


def next_pending(db: Session, capture: Capture) -> int | None:
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
