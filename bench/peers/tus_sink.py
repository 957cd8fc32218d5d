"""A tus sink: a bare WSGI app that answers tus and throws every byte away.

It does the least work a tus server can (no storage, no locks, no state), so its numbers
under gunicorn are the loopback limit of the protocol's requests. HEAD is not supported
(nothing is kept); the load generator checks the Upload-Offset of the last response instead.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse

BLOCK = 1 << 20
TUS = [("Tus-Resumable", "1.0.0")]


def _drain(environ: dict[str, Any]) -> int:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    stream = environ["wsgi.input"]
    read = 0
    while read < length:
        block = stream.read(min(BLOCK, length - read))
        if not block:
            break
        read += len(block)
    return read


def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    method = environ.get("HTTP_X_HTTP_METHOD_OVERRIDE") or environ["REQUEST_METHOD"]
    path = environ.get("PATH_INFO", "")
    if method == "OPTIONS":
        headers = [("Tus-Version", "1.0.0"), ("Tus-Extension", "creation,creation-with-upload")]
        start_response("204 No Content", TUS + headers)
        return [b""]
    if method == "POST" and path.rstrip("/") == "/files":
        offset = _drain(environ)
        location = f"/files/{uuid.uuid4().hex}"
        headers = [("Location", location), ("Upload-Offset", str(offset))]
        start_response("201 Created", TUS + headers + [("Content-Length", "0")])
        return [b""]
    if method == "PATCH" and path.startswith("/files/"):
        offset = int(environ.get("HTTP_UPLOAD_OFFSET") or 0) + _drain(environ)
        start_response("204 No Content", TUS + [("Upload-Offset", str(offset))])
        return [b""]
    start_response("404 Not Found", TUS + [("Content-Length", "0")])
    return [b""]
