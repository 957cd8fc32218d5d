"""Reviewer pages: assessments with counts, a session's capture gallery, one capture with its
camera settings, EXIF and upload facts, and the approve / reject form.

Server-rendered with Jinja; frontend/review.js (a Vite entry) adds keyboard shortcuts and polls
for captures that arrive during a live session. Every page issues a bounded number of queries
whatever its size.
This module holds the blueprint and what all its views share; the routes are in views_*.py.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask

from app.review.formatting import exif_rows, fmt_bytes, fmt_duration, fmt_time, settings_rows
from app.review.queries import GalleryView, gallery_page, session_summary
from services.models import CaptureStatus, ReviewStatus

bp = Blueprint("review", __name__, url_prefix="/review")


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


# Imported last, for their side effect: the views register their routes on `bp` (above).
from app.review import views_assessments, views_captures  # noqa: E402, F401


def init_app(app: Flask) -> None:
    if "review" not in app.blueprints:
        app.register_blueprint(bp)


__all__ = ["GalleryView", "bp", "gallery_page", "init_app", "session_summary"]
