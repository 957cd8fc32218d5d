"""The start page: the assessments and capture sessions the user may see, with where to go next."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from app.access import assessments_query, can_see_session, can_upload_to
from app.auth import current_user, login_required
from app.db import get_db

bp = Blueprint("pages", __name__)


@bp.get("/", endpoint="index")
@login_required
def index() -> Any:
    user = current_user()
    assert user is not None
    assessments = get_db().scalars(assessments_query(user)).all()
    rows = [
        (a, [(s, can_upload_to(user, s)) for s in a.sessions if can_see_session(user, s)])
        for a in assessments
    ]
    return render_template("index.html", rows=rows, user=user)
