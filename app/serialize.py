"""Model -> JSON dictionaries, shared by the API and the pages' live updates."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import url_for

from services.models import Assessment, Capture, CaptureSession


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def session_json(session: CaptureSession) -> dict[str, Any]:
    return {
        "id": session.id,
        "assessment_id": session.assessment_id,
        "label": session.label,
        "operator_id": session.operator_id,
        "started_at": _iso(session.started_at),
        "ended_at": _iso(session.ended_at),
        "open": session.is_open,
    }


def assessment_json(
    assessment: Assessment, *, sessions: list[CaptureSession] | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": assessment.id,
        "title": assessment.title,
        "description": assessment.description,
        "created_by_id": assessment.created_by_id,
        "created_at": _iso(assessment.created_at),
    }
    if sessions is not None:
        data["sessions"] = [session_json(s) for s in sessions]
    return data


def capture_json(capture: Capture) -> dict[str, Any]:
    return {
        "id": capture.id,
        "session_id": capture.session_id,
        "upload_id": capture.upload_id,
        "filename": capture.filename,
        "declared_type": capture.declared_type,
        "capture_trigger": capture.capture_trigger,
        "capture_type": capture.capture_type,
        "camera_settings": capture.camera_settings,
        "metadata": capture.metadata_extra,
        "sha256": capture.sha256,
        "bytes": capture.bytes,
        "width": capture.width,
        "height": capture.height,
        "format": capture.format,
        "exif": capture.exif,
        "taken_at": _iso(capture.taken_at),
        "status": capture.status,
        "reject_reason": capture.reject_reason,
        "duplicate_of": capture.duplicate_of_id,
        "review_status": capture.review_status,
        "reviewer_note": capture.reviewer_note,
        "reviewed_by_id": capture.reviewed_by_id,
        "reviewed_at": _iso(capture.reviewed_at),
        "uploaded_by_id": capture.uploaded_by_id,
        "upload_started_at": _iso(capture.upload_started_at),
        "created_at": _iso(capture.created_at),
        "original_url": url_for("capture_files.original", capture_id=capture.id),
        "thumbnail_url": (
            url_for("capture_files.thumbnail", capture_id=capture.id)
            if capture.thumbnail_path
            else None
        ),
    }
