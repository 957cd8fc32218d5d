"""The start page: the assessments and capture sessions the user may see, with where to go next."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from app.access import assessments_query, can_see_session
from app.auth import login_required, require_user
from app.db import get_db
from services.camera.metadata import may_upload

bp = Blueprint("pages", __name__)


@bp.get("/", endpoint="index")
@login_required
def index() -> Any:
    user = require_user()
    assessments = get_db().scalars(assessments_query(user)).all()
    rows = [
        (a, [(s, may_upload(user, s)) for s in a.sessions if can_see_session(user, s)])
        for a in assessments
    ]
    return render_template("index.html", rows=rows, user=user)
