"""tus Upload-Metadata -> a checked CaptureRequest, and who may upload to which capture session.

Every refusal is a MetadataError carrying the HTTP status, the field and a sentence saying what
was wrong and what is expected; the pre-create hook turns it into the response.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from services.models import CaptureSession, Role, User

MAX_FILENAME_CHARS = 255
MAX_CAMERA_SETTINGS_BYTES = 8 * 1024
MAX_JSON_DEPTH = 32
MAX_ID = 2**31 - 1  # the id columns are 32-bit INTEGER on PostgreSQL

_ID = re.compile(r"[0-9]{1,10}")
_LABEL = re.compile(r"[a-z0-9_-]{1,32}")
_MIME_PART = r"[a-z0-9][a-z0-9!#$&^_.+-]{0,62}"
_MIME = re.compile(rf"{_MIME_PART}/{_MIME_PART}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class MetadataError(ValueError):
    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.field = field
        self.message = message


@dataclass(frozen=True)
class CaptureRequest:
    session_id: int
    assessment_id: int | None
    filename: str
    filetype: str | None
    capture_trigger: str = "manual"
    capture_type: str = "photo"
    camera_settings: dict[str, Any] = field(default_factory=dict)
    sha256: str | None = None


def _shown(value: str, limit: int = 40) -> str:
    text = value if len(value) <= limit else value[:limit] + "..."
    return repr(text)


def _optional(metadata: Mapping[str, str | None], key: str) -> str | None:
    """A bare key (None) and an empty value both mean "not given"."""
    value = metadata.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MetadataError(400, key, f"{key} must be text")
    return value


def _parse_id(metadata: Mapping[str, str | None], key: str, *, required: bool) -> int | None:
    value = _optional(metadata, key)
    if value is None:
        if required:
            raise MetadataError(400, key, f"{key} is required: the id of a capture session")
        return None
    # int() would take " 5", "+5", "5_000" and "٥" (docs/PITFALLS.md): digits only.
    if not _ID.fullmatch(value) or not 0 < int(value) <= MAX_ID:
        raise MetadataError(
            400, key, f"{key} must be a positive integer (digits only), got {_shown(value)}"
        )
    return int(value)


def _parse_label(metadata: Mapping[str, str | None], key: str, default: str) -> str:
    value = _optional(metadata, key)
    if value is None:
        return default
    if not _LABEL.fullmatch(value):
        raise MetadataError(
            400,
            key,
            f"{key} must be 1-32 characters of a-z, 0-9, '_' or '-' (like {default!r}), "
            f"got {_shown(value)}",
        )
    return value


def _parse_filename(metadata: Mapping[str, str | None]) -> str:
    value = _optional(metadata, "filename")
    if value is None:
        raise MetadataError(400, "filename", "filename is required (the name of the file)")
    if len(value) > MAX_FILENAME_CHARS:
        raise MetadataError(
            400, "filename", f"filename is {len(value)} characters; at most 255 are allowed"
        )
    if _CONTROL.search(value):
        raise MetadataError(400, "filename", "filename must not contain control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise MetadataError(400, "filename", "filename must be valid UTF-8 text") from None
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_camera_settings(metadata: Mapping[str, str | None]) -> dict[str, Any]:
    value = _optional(metadata, "camera_settings")
    if value is None:
        return {}
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > MAX_CAMERA_SETTINGS_BYTES:
        raise MetadataError(
            400,
            "camera_settings",
            f"camera_settings is {size} bytes; at most {MAX_CAMERA_SETTINGS_BYTES} are allowed",
        )
    try:
        # NaN/Infinity are not JSON, and PostgreSQL would refuse them later.
        settings = json.loads(value, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise MetadataError(
            400, "camera_settings", f"camera_settings must be a JSON object: {exc}"
        ) from None
    if not isinstance(settings, dict):
        raise MetadataError(
            400,
            "camera_settings",
            f"camera_settings must be a JSON object ({{...}}), not {type(settings).__name__}",
        )
    if not _storable(settings):
        raise MetadataError(
            400,
            "camera_settings",
            "camera_settings holds a value no database stores alike "
            "(NUL, a lone surrogate, a non-finite number, nesting over 32 levels)",
        )
    return settings


def _storable(value: Any, depth: int = 0) -> bool:
    """True when SQLite and PostgreSQL JSON columns both take the value unchanged (and it is
    not nested absurdly deep, which would only make later readers recurse)."""
    if depth > MAX_JSON_DEPTH:
        return False
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        if "\x00" in value:
            return False
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_storable(k) and _storable(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return all(_storable(v, depth + 1) for v in value)
    return True


def parse_capture_metadata(metadata: Mapping[str, str | None]) -> CaptureRequest:
    """Check the tus metadata of a capture upload (pure: no database, no files)."""
    filetype = _optional(metadata, "filetype")
    if filetype is not None:
        filetype = filetype.strip().lower()
        if not _MIME.fullmatch(filetype):
            raise MetadataError(
                400, "filetype", f"filetype must be a MIME type like image/jpeg, got {filetype!r}"
            )
    sha256 = _optional(metadata, "sha256")
    if sha256 is not None:
        sha256 = sha256.lower()
        if not _SHA256.fullmatch(sha256):
            raise MetadataError(400, "sha256", "sha256 must be 64 hexadecimal digits")
    session_id = _parse_id(metadata, "session_id", required=True)
    assert session_id is not None
    return CaptureRequest(
        session_id=session_id,
        assessment_id=_parse_id(metadata, "assessment_id", required=False),
        filename=_parse_filename(metadata),
        filetype=filetype,
        capture_trigger=_parse_label(metadata, "capture_trigger", "manual"),
        capture_type=_parse_label(metadata, "capture_type", "photo"),
        camera_settings=_parse_camera_settings(metadata),
        sha256=sha256,
    )


class Uploader(Protocol):
    """A User, or the few columns of one that deciding an upload needs."""

    @property
    def id(self) -> int: ...
    @property
    def role(self) -> str: ...
    @property
    def active(self) -> bool: ...


class UploadTarget(Protocol):
    """A CaptureSession, or the few columns of one that deciding an upload needs."""

    @property
    def id(self) -> int: ...
    @property
    def assessment_id(self) -> int: ...
    @property
    def operator_id(self) -> int | None: ...
    @property
    def is_open(self) -> bool: ...


@dataclass(frozen=True)
class UploaderRow:
    id: int
    role: str
    active: bool


@dataclass(frozen=True)
class SessionRow:
    id: int
    assessment_id: int
    operator_id: int | None
    is_open: bool


# One statement for the pre-create hook of every upload: the user and the session it names
# (LEFT JOIN: a missing session is None, not a missing user). Built once so SQLAlchemy reuses its
# cache key instead of recomputing it per execution.
_UPLOAD_CHECK = (
    select(
        User.role,
        User.active,
        CaptureSession.id.label("session_id"),
        CaptureSession.assessment_id,
        CaptureSession.operator_id,
        CaptureSession.ended_at,
    )
    .select_from(User)
    .outerjoin(CaptureSession, CaptureSession.id == bindparam("sid"))
    .where(User.id == bindparam("uid"))
)


def load_upload_check(
    db: Session | Connection, user_id: int, session_id: int | None
) -> tuple[UploaderRow | None, SessionRow | None]:
    """The user and the capture session (None when missing; session_id None looks none up), in
    one query and without ORM objects."""
    conn = db.connection() if isinstance(db, Session) else db
    row = conn.execute(_UPLOAD_CHECK, {"uid": user_id, "sid": session_id}).first()
    if row is None:
        return None, None
    user = UploaderRow(user_id, row.role, bool(row.active))
    if row.session_id is None:
        return user, None
    session = SessionRow(row.session_id, row.assessment_id, row.operator_id, row.ended_at is None)
    return user, session


def may_upload(user: Uploader, session: UploadTarget | None = None) -> bool:
    """The one rule of who may upload where: an active admin anywhere; an active operator to the
    sessions assigned to them or to nobody; no one else. Without a session: whether the user may
    upload at all (a partial upload names no session)."""
    if not user.active:
        return False
    if user.role == Role.ADMIN:
        return True
    return user.role == Role.OPERATOR and (
        session is None or session.operator_id in (None, user.id)
    )


def check_capture(user: Uploader, session: UploadTarget | None, req: CaptureRequest) -> None:
    """Raise MetadataError unless `user` may upload `req` to `session` (None: it does not exist).

    Another operator's session answers exactly as a missing one, so session ids cannot be
    probed; a user who may not upload at all learns nothing more (closed or not, which
    assessment).
    """
    missing = MetadataError(404, "session_id", f"session {req.session_id} does not exist")
    if session is None:
        raise missing
    if not may_upload(user, session):
        if not user.active:
            raise MetadataError(403, "session_id", "your account is not active")
        if user.role == Role.OPERATOR:
            raise missing  # assigned to another operator
        raise MetadataError(
            403, "session_id", f"uploading needs the operator role; you are {user.role}"
        )
    if not session.is_open:
        raise MetadataError(409, "session_id", f"session {session.id} is closed")
    if req.assessment_id is not None and req.assessment_id != session.assessment_id:
        raise MetadataError(
            400,
            "assessment_id",
            f"assessment_id {req.assessment_id} does not match session {session.id}, "
            f"which belongs to assessment {session.assessment_id}",
        )
