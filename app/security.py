"""Response headers every answer carries (nosniff, Referrer-Policy; a CSP on HTML pages) and the
body-size limit of the non-tus routes. A WSGI wrapper, so tus responses get the headers too."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, request
from werkzeug.exceptions import RequestEntityTooLarge

# blob:/data: images and blob: media: Uppy's Webcam preview and the Dashboard's thumbnails are
# object URLs of the captured photo; worker-src: the camera page's service worker. No inline
# script or style anywhere: scripts and stylesheets are files under /static/.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "img-src 'self' blob: data:",
        "media-src 'self' blob:",
        "worker-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    )
)
ALWAYS = (("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "same-origin"))
MAX_BODY_BYTES = 1024 * 1024  # JSON and forms; tus bodies have limits of their own

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class SecurityHeaders:
    """Adds the headers of ALWAYS to every response and the CSP to HTML ones, keeping any the
    application set itself (a stored capture is served with a stricter, sandboxing policy)."""

    def __init__(self, app: WsgiApp, csp: str = CONTENT_SECURITY_POLICY) -> None:
        self.app = app
        self.csp = csp

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            present = {name.lower(): value for name, value in headers}
            for name, value in ALWAYS:
                if name.lower() not in present:
                    headers.append((name, value))
            html = present.get("content-type", "").startswith("text/html")
            if html and "content-security-policy" not in present:
                headers.append(("Content-Security-Policy", self.csp))
            return start_response(status, headers, exc_info)

        return self.app(environ, start)


_TOO_LARGE = "tuscam.body_too_large"


class ChunkedBodyLimit:
    """A body without Content-Length (chunked) is read here, at most MAX_BODY_BYTES + 1 bytes,
    and handed on with its length; a longer one is marked for a 413 and not read further.
    Werkzeug alone would silently cut such a body at MAX_CONTENT_LENGTH and parse the rest."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if not environ.get("CONTENT_LENGTH") and environ.get("wsgi.input_terminated"):
            stream = environ["wsgi.input"]
            data = bytearray()
            while len(data) <= MAX_BODY_BYTES:
                block = stream.read(min(65536, MAX_BODY_BYTES + 1 - len(data)))
                if not block:
                    break
                data += block
            if len(data) > MAX_BODY_BYTES:
                environ[_TOO_LARGE] = True
                data = bytearray()
            environ["wsgi.input"] = io.BytesIO(bytes(data))
            environ["CONTENT_LENGTH"] = str(len(data))
        return self.app(environ, start_response)


def refuse_large_bodies() -> None:
    """First before_request hook: a declared body over the limit is refused before anything
    reads it (gunicorn then drains at most 64 KiB and closes the connection)."""
    length = request.content_length
    if request.environ.get(_TOO_LARGE) or (length is not None and length > MAX_BODY_BYTES):
        shown = f"{length} bytes" if length else "over the limit"
        raise RequestEntityTooLarge(
            f"The request body is {shown}; at most {MAX_BODY_BYTES} bytes are accepted here. "
            "Photos go through the tus server at /files/."
        )


def init_app(app: Flask) -> None:
    """Before the tus server is mounted: the body limit applies to Flask's routes only."""
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.before_request_funcs.setdefault(None, []).insert(0, refuse_large_bodies)
    app.wsgi_app = ChunkedBodyLimit(app.wsgi_app)  # type: ignore[method-assign]
