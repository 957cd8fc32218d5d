"""The web adapter of the tus server: a WSGI application for /files/ that passes every other
path to the application behind it (the Flask app).

It is plain WSGI rather than a Flask blueprint because Flask's per-request work (request
context, session, URL matching, before/after hooks, Response objects) was about a sixth of a
worker's CPU on a photo upload, which is two small requests. The adapter does the little a tus
request needs: routing, authentication through a callback, CORS for configured origins, the
request body (wsgi_body.py) and the response."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Sequence
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from werkzeug.utils import send_file
from werkzeug.wsgi import get_host

from app.tus import errors
from app.tus.errors import TUS_RESUMABLE, TusError, error_response
from app.tus.handler import TusHandler
from app.tus.messages import Headers, TusRequest, TusResponse
from app.tus.wsgi_body import WsgiBody, request_body, socket_timeout

log = logging.getLogger("app.tus")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
# authenticate(environ) -> (owner, is_admin), or None (answered 401); it may raise TusError.
Authenticate = Callable[[dict[str, Any]], "tuple[str, bool] | None"]

METHODS = ["OPTIONS", "POST", "HEAD", "PATCH", "DELETE", "GET"]
ALLOW_HEADERS = (
    "Authorization, Content-Type, Upload-Length, Upload-Offset, Tus-Resumable, Upload-Metadata, "
    "Upload-Defer-Length, Upload-Concat, Upload-Checksum, X-HTTP-Method-Override, X-Requested-With"
)
EXPOSE_HEADERS = (
    "Location, Upload-Offset, Upload-Length, Upload-Metadata, Upload-Expires, Upload-Defer-Length, "
    "Upload-Concat, Tus-Version, Tus-Resumable, Tus-Max-Size, Tus-Extension, "
    "Tus-Checksum-Algorithm, Tuscam-Capture-Id, Tuscam-Capture-Status, Tuscam-Capture-Reason"
)
REASONS = {460: "Checksum Mismatch"}
NO_BODY = (204, 304)


class TusWsgiApp:
    """Serves `prefix` (the collection) and `prefix/<upload id>`; anything else goes to
    `fallback`. Mount it around the Flask app: app.wsgi_app = TusWsgiApp(..., app.wsgi_app)."""

    def __init__(
        self,
        handler: TusHandler,
        authenticate: Authenticate,
        fallback: WsgiApp,
        *,
        prefix: str = "/files",
        cors_origins: Sequence[str] = (),
    ) -> None:
        self.handler = handler
        self.authenticate = authenticate
        self.fallback = fallback
        self.prefix = prefix.rstrip("/")
        self.allowed_origins = frozenset(cors_origins)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if path != self.prefix and not path.startswith(self.prefix + "/"):
            return self.fallback(environ, start_response)
        method = environ["REQUEST_METHOD"]
        try:
            response = self._respond(environ, method, path[len(self.prefix) + 1 :])
        except Exception:  # a bug must still be answered (and logged), as Flask would
            log.exception("tus %s %s failed", method, path)
            response = error_response(errors.internal_error(), method)
        return self._send(environ, method, response, start_response)

    def _respond(self, environ: dict[str, Any], method: str, rest: str) -> TusResponse:
        if "/" in rest:
            return error_response(errors.upload_not_found(), method)
        headers = wsgi_headers(environ)
        if method == "OPTIONS":  # discovery and CORS preflight: no authentication
            return self.handler.options()
        try:
            body, body_timeout = request_body(environ, headers, self.handler)
        except TusError as exc:
            return error_response(exc, method)
        with socket_timeout(environ, body_timeout):
            try:
                response = self._answer(environ, method, rest, headers, body)
            except TusError as exc:  # refused by authentication (the handler answers its own)
                response = error_response(exc, method)
            body.drain()
        return response

    def _answer(
        self, environ: dict[str, Any], method: str, rest: str, headers: Headers, body: WsgiBody
    ) -> TusResponse:
        who = self.authenticate(environ)
        if who is None:
            raise unauthorized()
        request = TusRequest(
            method=method,
            upload_id=rest or None,
            headers=headers,
            body=body,  # type: ignore[arg-type]  # read() is all the core uses
            owner=who[0],
            is_admin=who[1],
            base_url=self._base_url(environ),
        )
        return self.handler.handle(request)

    def _base_url(self, environ: dict[str, Any]) -> str:
        return collection_url(
            environ["wsgi.url_scheme"],
            environ.get("HTTP_HOST"),
            environ.get("SERVER_NAME", ""),
            environ.get("SERVER_PORT", ""),
            environ.get("SCRIPT_NAME", ""),
            self.prefix,
        )

    def _send(
        self,
        environ: dict[str, Any],
        method: str,
        tus: TusResponse,
        start_response: Callable[..., Any],
    ) -> Iterable[bytes]:
        headers = dict(tus.headers)
        if method != "OPTIONS":
            headers.setdefault("Tus-Resumable", TUS_RESUMABLE)  # every response but OPTIONS
        self._cors(environ, method, headers)
        if tus.file_path is not None:
            return self._send_file(environ, tus, headers, start_response)
        if tus.status not in NO_BODY:
            headers["Content-Length"] = str(len(tus.body))
        start_response(status_line(tus.status), list(headers.items()))
        return [] if tus.status in NO_BODY or method == "HEAD" else [tus.body]

    def _send_file(
        self,
        environ: dict[str, Any],
        tus: TusResponse,
        headers: dict[str, str],
        start_response: Callable[..., Any],
    ) -> Iterable[bytes]:
        assert tus.file_path is not None
        try:
            response = send_file(
                tus.file_path,
                environ,
                mimetype="application/octet-stream",
                as_attachment=True,
                download_name=tus.download_name or tus.file_path.name,
            )
        except FileNotFoundError:  # terminated between the check and the read
            gone = error_response(errors.upload_not_found(), "GET")
            return self._send(environ, "GET", gone, start_response)
        for key, value in headers.items():
            if key.lower() != "content-type":
                response.headers[key] = value
        return response(environ, start_response)

    def _cors(self, environ: dict[str, Any], method: str, headers: dict[str, str]) -> None:
        if not self.allowed_origins:
            return
        headers["Vary"] = "Origin"
        origin = environ.get("HTTP_ORIGIN")
        if origin not in self.allowed_origins:
            return
        headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Allow-Credentials"] = "true"
        if method == "OPTIONS" and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ:
            headers["Access-Control-Allow-Methods"] = ", ".join(METHODS)
            headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
            headers["Access-Control-Max-Age"] = "86400"
        else:
            headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS


@functools.lru_cache(maxsize=64)
def collection_url(
    scheme: str, host: str | None, server: str, port: str, script: str, prefix: str
) -> str:
    """The collection's absolute URL (the base of Location), as Flask's url_for would build
    it; the same few hosts come on every request, so it is worked out once for each."""
    environ = {"wsgi.url_scheme": scheme, "SERVER_NAME": server, "SERVER_PORT": port}
    if host is not None:
        environ["HTTP_HOST"] = host
    return f"{scheme}://{get_host(environ)}{quote(script)}{prefix}/"


def unauthorized() -> TusError:
    return TusError(
        401,
        "unauthorized",
        "Log in, or send Authorization: Bearer <token>.",
        {"WWW-Authenticate": "Bearer"},
    )


def wsgi_headers(environ: dict[str, Any]) -> Headers:
    """The request's header fields from a WSGI environ (the server joins repeated fields)."""
    items = {
        key[5:].replace("_", "-"): value for key, value in environ.items() if key[:5] == "HTTP_"
    }
    for key, name in (("CONTENT_LENGTH", "Content-Length"), ("CONTENT_TYPE", "Content-Type")):
        if environ.get(key):
            items[name] = environ[key]
    return Headers(items)


def status_line(status: int) -> str:
    reason = REASONS.get(status)
    if reason is None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
    return f"{status} {reason}"
