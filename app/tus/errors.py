"""The one catalogue of tus errors: each carries its status, a stable code and a message a
person can act on; error_response() is the only place an error becomes a response."""

from __future__ import annotations

import json

from app.tus.body import DISCONNECTED, IDLE, RELEASED
from app.tus.constants import TUS_RESUMABLE
from app.tus.messages import TusResponse


class TusError(Exception):
    """An error answered to the client: status, machine-readable code, human message."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def __repr__(self) -> str:
        return f"TusError({self.status}, {self.code!r}, {self.message!r})"

    def with_headers(self, headers: dict[str, str]) -> TusError:
        return TusError(self.status, self.code, self.message, {**self.headers, **headers})


def error_response(error: TusError, method: str) -> TusResponse:
    """Render an error: JSON body, except on HEAD (a HEAD response has no body). Tus-Resumable
    is added by TusHandler.respond, the one place every response passes."""
    headers = dict(error.headers)
    body = b""
    if method != "HEAD":
        body = json.dumps({"error": error.code, "message": error.message}).encode()
        headers["Content-Type"] = "application/json"
    return TusResponse(error.status, headers, body)


# --- protocol and headers -------------------------------------------------------------------


def unsupported_version(received: str | None) -> TusError:
    what = (
        f"Tus-Resumable {received!r} is not supported" if received else "Tus-Resumable is missing"
    )
    return TusError(
        412,
        "unsupported-version",
        f"{what}: this server speaks tus {TUS_RESUMABLE}; send Tus-Resumable: {TUS_RESUMABLE}.",
        {"Tus-Version": TUS_RESUMABLE},
    )


def method_not_allowed(method: str, allowed: str) -> TusError:
    return TusError(
        405,
        "method-not-allowed",
        f"{method} is not allowed here; use {allowed}.",
        {"Allow": allowed},
    )


def invalid_header(name: str, value: str, expected: str) -> TusError:
    shown = value if len(value) <= 80 else value[:80] + "..."
    return TusError(400, "invalid-header", f"{name} {shown!r} is invalid: expected {expected}.")


def missing_header(name: str, why: str) -> TusError:
    return TusError(400, "missing-header", f"{name} is required {why}.")


def conflicting_headers(message: str) -> TusError:
    return TusError(400, "conflicting-headers", message)


def invalid_metadata(problem: str) -> TusError:
    return TusError(
        400,
        "invalid-metadata",
        f"Upload-Metadata is malformed: {problem}. Expected comma-separated 'key base64value' "
        "pairs with unique keys without spaces or commas.",
    )


def unsupported_media_type(received: str | None) -> TusError:
    return TusError(
        415,
        "unsupported-media-type",
        f"PATCH needs Content-Type: application/offset+octet-stream, not {received or 'none'}.",
    )


def length_required() -> TusError:
    return TusError(
        411, "length-required", "Send Content-Length (or a chunked body the server can end)."
    )


# --- uploads ---------------------------------------------------------------------------------


def upload_not_found() -> TusError:
    return TusError(404, "not-found", "No such upload: create a new one with POST.")


def upload_gone(reason: str) -> TusError:
    if reason == "retired":
        return TusError(
            410,
            "gone",
            "This upload was finished and its copy removed; the capture it became keeps the "
            "bytes (GET /api/uploads/<id> tells which).",
        )
    what = "expired" if reason == "expired" else "was terminated"
    return TusError(410, "gone", f"This upload {what}; create a new one with POST.")


def offset_mismatch(sent: int, stored: int) -> TusError:
    return TusError(
        409,
        "offset-mismatch",
        f"Upload-Offset {sent} does not match the stored offset {stored}: "
        f"send HEAD and resume from {stored}.",
    )


def too_large(what: str, size: int, limit: int) -> TusError:
    return TusError(413, "too-large", f"{what} of {size} bytes is over the limit of {limit} bytes.")


def body_over_limit(sent: int, allowed: int) -> TusError:
    return TusError(
        413,
        "too-large",
        f"The body of {sent} bytes goes past the upload's length: only {allowed} more bytes "
        "fit; nothing was stored.",
    )


def body_over_length(stored: int) -> TusError:
    return TusError(
        413,
        "too-large",
        f"The body goes past Upload-Length; the upload holds its first {stored} bytes, the rest "
        "was refused.",
    )


def length_change(current: int | None, sent: int, offset: int) -> TusError:
    if current is not None:
        msg = f"Upload-Length is already {current} and cannot become {sent}."
    else:
        msg = f"Upload-Length {sent} is below the {offset} bytes already stored."
    return TusError(400, "invalid-length", msg)


def patch_on_final() -> TusError:
    return TusError(
        403,
        "final-upload",
        "A final concatenation cannot be patched; its data comes from its parts.",
    )


def checksum_mismatch(algorithm: str, offset: int) -> TusError:
    return TusError(
        460,
        "checksum-mismatch",
        f"The {algorithm} checksum of the body does not match Upload-Checksum; the chunk was "
        f"discarded: resend it from offset {offset}.",
    )


def unknown_checksum_algorithm(name: str, supported: str) -> TusError:
    return TusError(
        400,
        "unsupported-checksum",
        f"Checksum algorithm {name!r} is not supported; use {supported}.",
    )


def too_many_unfinished(limit: int) -> TusError:
    return TusError(
        429,
        "too-many-uploads",
        f"You have {limit} unfinished uploads, the most allowed: finish or delete one first.",
    )


def too_many_bytes(held: int, more: int, limit: int) -> TusError:
    return TusError(
        429,
        "too-many-bytes",
        f"Your uploads hold {held} bytes; {more} more would pass the limit of {limit} bytes: "
        "finish, or delete uploads you no longer need, and retry later.",
        {"Retry-After": "60"},
    )


def hook_refused(status: int, message: str) -> TusError:
    code = {401: "unauthorized", 403: "forbidden", 404: "not-found", 409: "conflict"}
    return TusError(status, code.get(status, "refused"), message)


def invalid_concat(problem: str, status: int = 400) -> TusError:
    return TusError(status, "invalid-concat", f"Upload-Concat is not usable: {problem}.")


# --- interrupted or contended requests -------------------------------------------------------


def locked(waited: float) -> TusError:
    # 423 rather than 500/503: tus-js-client retries 423 (asking HEAD first); see locking.py.
    return TusError(
        423,
        "locked",
        f"Another request is still writing this upload (waited {waited:.0f} s): "
        "retry in a moment, after HEAD.",
        {"Retry-After": "1"},
    )


def body_stopped(reason: str, stored: int, idle_timeout: float) -> TusError:
    """Why a body ended before its end (body.py's reasons); the bytes that came are kept."""
    if reason == DISCONNECTED:
        return body_incomplete(stored)
    if reason == IDLE:
        return body_idle(idle_timeout, stored)
    if reason == RELEASED:
        return released(stored)
    return body_over_length(stored)


def storage_unavailable() -> TusError:
    return TusError(
        503,
        "storage-unavailable",
        "The upload store cannot be reached right now; nothing already acknowledged is lost: "
        "retry in a moment, after HEAD.",
        {"Retry-After": "5"},
    )


def body_incomplete(stored: int) -> TusError:
    return TusError(
        400,
        "body-incomplete",
        f"The request body ended early; the upload now holds {stored} bytes: "
        f"send HEAD and resume from {stored}.",
    )


def body_idle(seconds: float, stored: int) -> TusError:
    return TusError(
        408,
        "body-timeout",
        f"No data arrived for {seconds:.0f} s; the upload holds {stored} bytes: "
        f"resume from {stored}.",
    )


def released(stored: int) -> TusError:
    return TusError(
        409,
        "superseded",
        f"A newer request for this upload took over while this one was silent; the upload holds "
        f"{stored} bytes: send HEAD and resume from {stored}.",
    )


def finish_failed() -> TusError:
    return TusError(
        500,
        "finish-failed",
        "All bytes are stored but processing the finished upload failed; "
        "send HEAD later to retry it.",
    )


def internal_error() -> TusError:
    return TusError(500, "internal-error", "Something went wrong on the server; it was logged.")


def hook_failed(name: str) -> TusError:
    return TusError(500, "hook-failed", f"The server's {name} check failed; try again later.")
