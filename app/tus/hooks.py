"""What the application can plug into the tus server: a pre-create check that may refuse,
and notifications on progress, completion (exactly once) and termination."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from app.tus.storage import FinishedData


@dataclass(frozen=True)
class UploadInfo:
    """A read-only view of an upload, as hooks see it."""

    id: str
    owner: str
    length: int | None
    offset: int
    metadata: dict[str, str | None]  # decoded values (utf-8, errors="replace"); None: bare key
    metadata_header: str  # raw Upload-Metadata as received
    created_at: datetime
    expires_at: datetime | None
    is_partial: bool
    is_final: bool


class HookRefused(Exception):
    """Raised by pre_create: the upload is refused with this status and message, nothing stored."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class CreateContext:
    owner: str
    is_admin: bool
    length: int | None
    deferred: bool
    metadata: dict[str, str | None]
    is_partial: bool
    is_final: bool


@dataclass
class Hooks:
    pre_create: Callable[[CreateContext], None] | None = None  # may raise HookRefused
    post_receive: Callable[[UploadInfo], None] | None = None  # throttled progress (~1/s)
    # Called exactly once per completed non-partial upload, under the upload's lock, after the
    # data is durable; the returned headers are stored and repeated on later responses.
    finish: Callable[[UploadInfo, FinishedData], Mapping[str, str]] | None = None
    post_terminate: Callable[[UploadInfo], None] | None = None
