"""The request body as the tus core reads it from a WSGI server: WsgiBody for any server,
GunicornBody reading straight from gunicorn's socket, and the socket timeout while a body is
read (see wsgi.py, the adapter that uses them)."""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

from gunicorn.http.body import Body as GunicornStream
from gunicorn.http.body import LengthReader as GunicornLengthReader
from gunicorn.http.unreader import SocketUnreader as GunicornSocketUnreader

from app.tus import errors
from app.tus.body import BodyDisconnected, BodyTimeout
from app.tus.errors import TusError
from app.tus.handler import TusHandler
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


def request_body(
    environ: dict[str, Any], headers: Headers, handler: TusHandler
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
