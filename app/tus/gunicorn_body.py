"""Reading a request body straight from gunicorn's socket: a shortcut past gunicorn's own
reader that relies on its internals (gunicorn==27.0.1; tests/tus/test_gunicorn_body.py pins
them). Imported only under gunicorn; TUSCAM_TUS_DIRECT_SOCKET=0 turns it off."""

from __future__ import annotations

import socket

from gunicorn.http.body import Body as GunicornStream
from gunicorn.http.body import LengthReader as GunicornLengthReader
from gunicorn.http.unreader import SocketUnreader as GunicornSocketUnreader

from app.tus.body import BodyDisconnected, BodyTimeout
from app.tus.wsgi_body import WsgiBody


class GunicornBody(WsgiBody):
    """gunicorn's wsgi.input for a body with a Content-Length, read straight from the socket
    with recv_into() into the core's own buffer, instead of through gunicorn's Unreader,
    LengthReader and Body buffers (copies in Python; bench/README.md). What gunicorn already
    received (behind the headers) is taken first and anything past this body is given back;
    gunicorn's LengthReader is kept in step (its length is always what is still unread), so
    keep-alive and its finish_body() drain behave as if gunicorn had read the body itself. A
    socket timeout loses nothing: recv_into() either returns bytes or raises, so a stalled
    client keeps every byte that arrived."""

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
    the request socket; None for anything else (chunked, another server, a test client)."""
    if not isinstance(stream, GunicornStream) or type(stream) is not GunicornStream:
        return None
    if not isinstance(sock, socket.socket) or type(sock) is not socket.socket:
        return None
    reader = getattr(stream, "reader", None)
    if reader is None or type(reader) is not GunicornLengthReader or reader.length != length:
        return None
    unreader = reader.unreader
    if type(unreader) is not GunicornSocketUnreader or unreader.sock is not sock:
        return None
    if stream.failed or stream.buf.tell() or not hasattr(unreader, "take_buffered"):
        return None  # already read from: let gunicorn's own reader go on
    return GunicornBody(stream, sock, length)


def end_connection(environ: dict[str, object]) -> None:
    """After a refusal, close the connection instead of reading what the client still sends:
    gunicorn must not parse a next request from this connection (its Body.failed), and the
    client learns at once (FIN after the answer). Called when the answer has been written."""
    stream = environ.get("wsgi.input")
    if isinstance(stream, GunicornStream):
        stream.failed = True
    sock = environ.get("gunicorn.socket")
    if isinstance(sock, socket.socket):
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # already gone
