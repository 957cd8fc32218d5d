"""The Flask adapter of the tus server (the only module of app.tus that imports Flask): routes,
authentication, CORS, and the WSGI body handed to the core with a short socket timeout."""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, BinaryIO

from flask import Blueprint, Response, request, send_file, url_for
from gunicorn.http.body import Body as GunicornStream
from gunicorn.http.body import LengthReader as GunicornLengthReader
from gunicorn.http.unreader import SocketUnreader as GunicornSocketUnreader

from app.tus import errors
from app.tus.body import BodyDisconnected, BodyTimeout
from app.tus.errors import TUS_RESUMABLE, TusError, error_response
from app.tus.handler import TusHandler
from app.tus.messages import Headers, TusRequest, TusResponse
from app.tus.protocol import parse_uint

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
DRAIN_BYTES = 16 << 20  # an unread body up to this size is drained after an early answer
DRAIN_SECONDS = 10.0
# gunicorn's read(n) waits until n bytes arrived; when the client goes silent, what it holds
# is never handed over. Small reads bound the received bytes a stalled PATCH cannot store.
READ_STEP = 64 << 10


class WsgiBody:
    """wsgi.input as the core reads it: never past Content-Length; a retryable timeout becomes
    BodyTimeout, any other failure (werkzeug ClientDisconnected, a reset, bad chunk framing)
    BodyDisconnected."""

    def __init__(self, stream: BinaryIO, *, length: int | None, retryable: bool) -> None:
        self.stream = stream
        self.remaining = length  # None: until the server ends the stream (chunked)
        self.retryable = retryable
        self.stalled = False  # a read timed out or failed: the client is slow or gone
        self.ended = length == 0

    def read(self, size: int) -> bytes:
        size = min(size, READ_STEP)
        if self.remaining is not None:
            size = min(size, self.remaining)
        if self.ended or size <= 0:
            return b""
        try:
            data = self.stream.read(size)
        except TimeoutError as exc:  # socket.timeout
            self.stalled = True
            if self.retryable:
                raise BodyTimeout() from exc
            raise BodyDisconnected(f"no data for too long: {exc}") from exc
        except Exception as exc:
            self.stalled = True
            raise BodyDisconnected(f"reading the body failed: {exc!r}") from exc
        if self.remaining is not None:
            self.remaining -= len(data)
        self.ended = not data or self.remaining == 0
        return data

    def drain(self, max_bytes: int = DRAIN_BYTES, seconds: float = DRAIN_SECONDS) -> None:
        """Read and drop what the handler left unread (a 409, 423, 413...). Clients such as
        requests send the whole body before reading the answer; closing the connection on
        unread data (gunicorn drains only 64 KiB) resets it and the answer is lost."""
        if self.stalled or self.ended:
            return
        if self.remaining is not None and self.remaining > max_bytes:
            return  # too much to be worth it: gunicorn closes the connection instead
        deadline = time.monotonic() + seconds
        dropped = 0
        while not self.ended and dropped <= max_bytes and time.monotonic() < deadline:
            try:
                dropped += len(self.read(1 << 16))
            except (BodyTimeout, BodyDisconnected):
                return


class GunicornBody(WsgiBody):
    """gunicorn's wsgi.input for a body with a Content-Length, read straight from the socket
    with recv_into() into the core's own buffer. gunicorn's reader passes every byte through
    its Unreader, LengthReader and Body buffers (several copies in Python: 38 % of a worker's
    CPU on a 1 GiB upload). What gunicorn already received (behind the headers) is taken first
    and anything past this body is given back; gunicorn's LengthReader is kept in step (its
    length is always what is still unread), so keep-alive and its finish_body() drain behave as
    if gunicorn had read the body itself. A socket timeout loses nothing: recv_into() either
    returns bytes or raises, so a stalled client keeps every byte that arrived."""

    def __init__(self, stream: GunicornStream, sock: socket.socket, length: int) -> None:
        super().__init__(stream, length=length, retryable=True)
        self.gunicorn = stream
        self.sock = sock
        unreader = stream.reader.unreader
        buffered = unreader.take_buffered()
        if len(buffered) > length:
            unreader.unread(buffered[length:])  # a pipelined next request is not ours
        self.pending = memoryview(buffered)[:length]

    def readinto(self, buffer: memoryview, /) -> int:
        assert self.remaining is not None
        want = min(len(buffer), self.remaining)
        if self.ended or want <= 0:
            return 0
        if self.pending:
            n = min(want, len(self.pending))
            buffer[:n] = self.pending[:n]
            self.pending = self.pending[n:]
        else:
            try:
                n = self.sock.recv_into(buffer, want)
            except TimeoutError as exc:  # socket.timeout: nothing was received
                self.stalled = True
                raise BodyTimeout() from exc
            except OSError as exc:
                self._fail()
                raise BodyDisconnected(f"reading the body failed: {exc!r}") from exc
        self.remaining -= n
        self.gunicorn.reader.length = self.remaining
        if n == 0:
            self._fail()  # the client closed the connection before Content-Length
        self.ended = n == 0 or self.remaining == 0
        return n

    def read(self, size: int) -> bytes:
        assert self.remaining is not None
        buffer = bytearray(max(0, min(size, self.remaining)))
        n = self.readinto(memoryview(buffer))
        del buffer[n:]
        return bytes(buffer)

    def _fail(self) -> None:
        self.stalled = True
        self.ended = True
        self.gunicorn.failed = True  # where the next request starts is unknown: close


def gunicorn_body(stream: object, sock: object, length: int) -> GunicornBody | None:
    """A GunicornBody if stream is exactly gunicorn's untouched Body over a LengthReader over
    the request socket (gunicorn==27.0.1, tests/tus/test_gunicorn_body.py checks the internals
    this relies on); None for anything else (chunked, the werkzeug server, a test client)."""
    if type(stream) is not GunicornStream or type(sock) is not socket.socket:
        return None
    reader = getattr(stream, "reader", None)
    if type(reader) is not GunicornLengthReader or reader.length != length:
        return None
    unreader = reader.unreader
    if type(unreader) is not GunicornSocketUnreader or unreader.sock is not sock:
        return None
    if stream.failed or stream.buf.tell() or not hasattr(unreader, "take_buffered"):
        return None  # already read from: let gunicorn's own reader go on
    return GunicornBody(stream, sock, length)


def create_tus_blueprint(
    handler: TusHandler,
    authenticate: Callable[[], tuple[str, bool] | None],
    *,
    cors_origins: Sequence[str] = (),
    name: str = "tus",
) -> Blueprint:
    """Routes '/' and '/<upload_id>'; mount with url_prefix='/files'. authenticate() returns
    (owner, is_admin) or None (answered 401). POST is also routed to an upload so that
    X-HTTP-Method-Override works; the handler decides what each URL allows."""
    bp = Blueprint(name, __name__)
    allowed_origins = frozenset(cors_origins)

    def view(upload_id: str | None = None) -> Response:
        headers = Headers(dict(request.headers))
        if request.method == "OPTIONS":  # discovery and CORS preflight: no authentication
            return _to_flask(handler.options())
        try:
            body, body_timeout = _body(request.environ, headers, handler)
        except TusError as exc:
            return _to_flask(error_response(exc, request.method))
        with _socket_timeout(request.environ, body_timeout):
            response = answer(upload_id, headers, body)
            body.drain()
        return _to_flask(response)

    def answer(upload_id: str | None, headers: Headers, body: WsgiBody) -> TusResponse:
        who = authenticate()
        if who is None:
            err = TusError(
                401,
                "unauthorized",
                "Log in, or send Authorization: Bearer <token>.",
                {"WWW-Authenticate": "Bearer"},
            )
            return error_response(err, request.method)
        tus_request = TusRequest(
            method=request.method,
            upload_id=upload_id,
            headers=headers,
            body=body,  # type: ignore[arg-type]  # read() is all the core uses
            owner=who[0],
            is_admin=who[1],
            base_url=url_for(f"{bp.name}.collection", _external=True),
        )
        return handler.handle(tus_request)

    bp.add_url_rule("/", "collection", view, methods=METHODS, provide_automatic_options=False)
    bp.add_url_rule(
        "/<upload_id>", "upload", view, methods=METHODS, provide_automatic_options=False
    )

    @bp.after_request
    def _cors(response: Response) -> Response:
        if request.method != "OPTIONS":
            # Also on errors the application renders (its 403, 500): every response but OPTIONS.
            response.headers.setdefault("Tus-Resumable", TUS_RESUMABLE)
        if not allowed_origins:
            return response
        response.vary.add("Origin")
        origin = request.headers.get("Origin")
        if origin not in allowed_origins:
            return response
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Credentials"] = "true"
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            response.headers["Access-Control-Allow-Methods"] = ", ".join(METHODS)
            response.headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
            response.headers["Access-Control-Max-Age"] = "86400"
        else:
            response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
        return response

    return bp


def _body(environ: dict[str, Any], headers: Headers, handler: TusHandler) -> tuple[WsgiBody, float]:
    """The body stream for the core and the socket timeout to read it with.

    Under gunicorn the request socket gets a timeout of body_poll_interval while a body with a
    Content-Length is read: a silent client surfaces as BodyTimeout between reads, so the core
    can notice a release request or the idle limit (GunicornBody loses no byte to a timeout;
    gunicorn's length reader keeps them too). A chunked body cannot be resumed after a timeout
    (gunicorn's chunk parser dies with the exception): there the timeout is body_idle_timeout
    and ends the body. gunicorn sends `100 Continue` itself before the application runs."""
    stream = environ["wsgi.input"]
    length = headers.get("Content-Length")
    if length:
        try:
            size = parse_uint("Content-Length", length)
        except TusError:
            size = 0  # the core refuses the request; there is nothing to drain safely
        fast = gunicorn_body(stream, environ.get("gunicorn.socket"), size) if size else None
        body = fast or WsgiBody(stream, length=size, retryable=True)
        return body, handler.config.body_poll_interval
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        # Without wsgi.input_terminated the stream has no end we can see: reading it would
        # store nothing or hang (PITFALLS). gunicorn and werkzeug's server both set it.
        if not environ.get("wsgi.input_terminated"):
            raise errors.length_required()
        return WsgiBody(stream, length=None, retryable=False), handler.config.body_idle_timeout
    # No Content-Length and not chunked: no body (RFC 9112 section 6.3).
    return WsgiBody(io.BytesIO(b""), length=0, retryable=False), 0.0


@contextmanager
def _socket_timeout(environ: dict[str, Any], seconds: float) -> Iterator[None]:
    sock = environ.get("gunicorn.socket")
    if not seconds or not isinstance(sock, socket.socket):
        yield
        return
    previous = sock.gettimeout()
    sock.settimeout(seconds)
    try:
        yield
    finally:
        try:
            sock.settimeout(previous)
        except OSError:  # the connection is already gone
            pass


def _to_flask(tus: TusResponse) -> Response:
    if tus.file_path is not None:
        try:
            response = send_file(
                tus.file_path,
                mimetype="application/octet-stream",
                as_attachment=True,
                download_name=tus.download_name or tus.file_path.name,
            )
        except FileNotFoundError:  # terminated between the check and the read
            return _to_flask(error_response(errors.upload_not_found(), "GET"))
        for key, value in tus.headers.items():
            if key.lower() != "content-type":
                response.headers[key] = value
        return response
    response = Response(tus.body, status=tus.status, headers=tus.headers)
    if "Content-Type" not in tus.headers:
        del response.headers["Content-Type"]  # no body, no type
    if tus.status in REASONS:
        response.status = f"{tus.status} {REASONS[tus.status]}"
    return response
