"""The request body as the tus core reads it from a WSGI server (WsgiBody), the choice of
reader for a request, and the socket timeout while a body is read (wsgi.py uses them).
Under gunicorn a body may instead be read straight from the socket: gunicorn_body.py."""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

from app.tus import errors
from app.tus.body import BodyDisconnected, BodyTimeout
from app.tus.config import TusConfig
from app.tus.errors import TusError
from app.tus.messages import Headers
from app.tus.protocol import parse_uint

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


def request_body(
    environ: dict[str, Any], headers: Headers, config: TusConfig
) -> tuple[WsgiBody, float]:
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
        fast = None
        if size and config.direct_socket and "gunicorn.socket" in environ:
            # Imported here: gunicorn is a dependency of this reader only (and its off switch).
            from app.tus.gunicorn_body import gunicorn_body

            fast = gunicorn_body(stream, environ["gunicorn.socket"], size)
        body = fast or WsgiBody(stream, length=size, retryable=True)
        return body, config.body_poll_interval
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        # Without wsgi.input_terminated the stream has no end we can see: reading it would
        # store nothing or hang (PITFALLS). gunicorn and werkzeug's server both set it.
        if not environ.get("wsgi.input_terminated"):
            raise errors.length_required()
        return WsgiBody(stream, length=None, retryable=False), config.body_idle_timeout
    # No Content-Length and not chunked: no body (RFC 9112 section 6.3).
    return WsgiBody(io.BytesIO(b""), length=0, retryable=False), 0.0


@contextmanager
def socket_timeout(environ: dict[str, Any], seconds: float) -> Iterator[None]:
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
