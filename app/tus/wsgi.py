"""The web adapter of the tus server: a WSGI application for /files/ that passes every other
path to the application behind it (the Flask app).

It is plain WSGI rather than a Flask blueprint: a tus request needs none of Flask's
per-request work (bench/README.md measures it). The adapter does the little a tus request
needs: routing, authentication through a callback (before any body byte is read), CORS for
configured origins, the request body (wsgi_body.py) and the response."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from werkzeug.wsgi import get_host

from app.tus import errors
from app.tus.constants import ALL_METHODS, REASONS, REQUEST_HEADERS, RESPONSE_HEADERS
from app.tus.errors import TusError
from app.tus.handler import TusHandler
from app.tus.messages import Headers, TusRequest, TusResponse
from app.tus.wsgi_body import request_body, socket_timeout

log = logging.getLogger("app.tus")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
# authenticate(environ) -> (owner, is_admin), or None (answered 401); it may raise TusError.
Authenticate = Callable[[dict[str, Any]], "tuple[str, bool] | None"]

NO_BODY = (204, 304)
CLOSE = "X-Tus-Close-Connection"  # internal marker, never sent: close after this answer


class AfterResponse:
    """A response body whose close() (called by the server once it is written) runs a step."""

    def __init__(self, chunks: Iterable[bytes], then: Callable[[], None]) -> None:
        self.chunks = chunks
        self.then = then

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.chunks)

    def close(self) -> None:
        self.then()


class TusWsgiApp:
    """Serves `prefix` (the collection) and `prefix/<upload id>`; anything else goes to
    `fallback`. Mount it around the Flask app: app.wsgi_app = TusWsgiApp(..., app.wsgi_app).
    `expose_headers`: the application's own response headers a browser may read (CORS)."""

    def __init__(
        self,
        handler: TusHandler,
        authenticate: Authenticate,
        fallback: WsgiApp,
        *,
        prefix: str = "/files",
        cors_origins: Sequence[str] = (),
        expose_headers: Sequence[str] = (),
    ) -> None:
        self.handler = handler
        self.authenticate = authenticate
        self.fallback = fallback
        self.prefix = prefix.rstrip("/")
        self.allowed_origins = frozenset(cors_origins)
        self.expose_headers = ", ".join((*RESPONSE_HEADERS, *expose_headers))

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if path != self.prefix and not path.startswith(self.prefix + "/"):
            return self.fallback(environ, start_response)
        method = environ["REQUEST_METHOD"]
        try:
            response = self._respond(environ, method, path[len(self.prefix) + 1 :])
        except Exception:  # a bug must still be answered (and logged), as Flask would
            log.exception("tus %s %s failed", method, path)
            response = self.handler.refuse(errors.internal_error(), method)
        return self._send(environ, method, response, start_response)

    def _respond(self, environ: dict[str, Any], method: str, rest: str) -> TusResponse:
        if "/" in rest:
            return self.handler.refuse(errors.upload_not_found(), method)
        headers = wsgi_headers(environ)
        if method == "OPTIONS":  # discovery and CORS preflight: no authentication
            return self.handler.options()
        try:
            who = self.authenticate(environ)
            if who is None:
                raise unauthorized()
        except TusError as exc:
            # Refused before a byte of the body is read: the connection closes after the answer
            # rather than reading what a stranger sends (see _send).
            return self.handler.refuse(exc.with_headers({CLOSE: "1"}), method)
        try:
            body, body_timeout = request_body(environ, headers, self.handler.config)
        except TusError as exc:
            return self.handler.refuse(exc, method)
        with socket_timeout(environ, body_timeout):
            response = self.handler.handle(
                TusRequest(
                    method=method,
                    upload_id=rest or None,
                    headers=headers,
                    body=body,
                    owner=who[0],
                    is_admin=who[1],
                    base_url=self._base_url(environ),
                )
            )
            body.drain()
        return response

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
        headers["X-Content-Type-Options"] = "nosniff"
        close = headers.pop(CLOSE, None) is not None
        self._cors(environ, method, headers)
        body: Iterable[bytes]
        if tus.stream is not None:  # GET: Content-Length set by the handler
            body = tus.stream
        elif tus.status in NO_BODY:
            body = []
        else:
            headers["Content-Length"] = str(len(tus.body))
            body = [] if method == "HEAD" else [tus.body]
        start_response(status_line(tus.status), list(headers.items()))
        if close and self.handler.config.direct_socket and "gunicorn.socket" in environ:
            from app.tus.gunicorn_body import end_connection  # gunicorn only (fenced)

            return AfterResponse(body, lambda: end_connection(environ))
        return body

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
            headers["Access-Control-Allow-Methods"] = ", ".join(ALL_METHODS)
            headers["Access-Control-Allow-Headers"] = ", ".join(REQUEST_HEADERS)
            headers["Access-Control-Max-Age"] = "86400"
        else:
            headers["Access-Control-Expose-Headers"] = self.expose_headers


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
