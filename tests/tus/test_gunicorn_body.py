"""GunicornBody: a request body of known length read straight from gunicorn's socket. These
tests build gunicorn's own Body, LengthReader and SocketUnreader over a socket pair, so they
fail when a gunicorn upgrade changes the internals the fast path relies on."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator

import pytest
from gunicorn.http.body import Body, ChunkedReader, LengthReader
from gunicorn.http.unreader import SocketUnreader

from app.tus.body import BodyTimeout
from app.tus.gunicorn_body import GunicornBody, gunicorn_body

NEXT_REQUEST = b"HEAD /files/x HTTP/1.1\r\nHost: h\r\n\r\n"


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    server.settimeout(2)
    yield server, client
    server.close()
    client.close()


def gunicorn_input(server: socket.socket, length: int, already: bytes = b"") -> Body:
    """wsgi.input as gunicorn 27 builds it: what followed the headers sits in the unreader."""
    unreader = SocketUnreader(server)
    if already:
        unreader.unread(already)
    return Body(LengthReader(unreader, length))


def read_all(body: GunicornBody, block: int = 7) -> bytes:
    buffer = bytearray(block)
    out = bytearray()
    while n := body.readinto(memoryview(buffer)):
        out += buffer[:n]
    return bytes(out)


def test_gunicorn_still_has_the_internals_the_fast_path_uses(pair) -> None:  # noqa: ANN001
    server, _client = pair
    stream = gunicorn_input(server, 10)
    assert isinstance(gunicorn_body(stream, server, 10), GunicornBody), (
        "gunicorn's Body/LengthReader/SocketUnreader changed: check GunicornBody against it"
    )
    assert stream.reader.unreader.sock is server
    assert hasattr(stream.reader.unreader, "take_buffered")
    assert stream.failed is False and stream.buf.tell() == 0


def test_buffered_bytes_come_first_and_a_pipelined_request_is_given_back(pair) -> None:  # noqa: ANN001
    server, client = pair
    data = bytes(range(256)) * 40
    stream = gunicorn_input(server, len(data), already=data[:100])
    body = gunicorn_body(stream, server, len(data))
    assert body is not None
    client.sendall(data[100:] + NEXT_REQUEST)
    assert read_all(body) == data
    assert body.readinto(memoryview(bytearray(10))) == 0  # never past Content-Length
    assert stream.reader.length == 0 and stream.read(1024) == b""  # gunicorn sees it consumed
    assert stream.reader.unreader.read() == NEXT_REQUEST  # keep-alive: the next request is whole


def test_bytes_behind_the_headers_past_the_body_stay_with_gunicorn(pair) -> None:  # noqa: ANN001
    server, _client = pair
    stream = gunicorn_input(server, 5, already=b"hello" + NEXT_REQUEST)
    body = gunicorn_body(stream, server, 5)
    assert body is not None and read_all(body) == b"hello"
    assert stream.reader.unreader.read() == NEXT_REQUEST


def test_a_timeout_loses_no_byte_and_the_read_can_go_on(pair) -> None:  # noqa: ANN001
    server, client = pair
    server.settimeout(0.05)
    stream = gunicorn_input(server, 20)
    body = gunicorn_body(stream, server, 20)
    assert body is not None
    client.sendall(b"0123456789")
    buffer = memoryview(bytearray(64))
    assert body.readinto(buffer) == 10 and bytes(buffer[:10]) == b"0123456789"
    assert stream.reader.length == 10  # gunicorn knows what is still unread
    with pytest.raises(BodyTimeout):
        body.readinto(buffer)
    client.sendall(b"abcdefghij")
    assert body.readinto(buffer) == 10 and bytes(buffer[:10]) == b"abcdefghij"
    assert stream.failed is False


def test_a_client_closing_early_ends_the_body_and_the_connection(pair) -> None:  # noqa: ANN001
    server, client = pair
    stream = gunicorn_input(server, 100)
    body = gunicorn_body(stream, server, 100)
    assert body is not None
    client.sendall(b"12345")
    client.close()
    assert read_all(body) == b"12345"
    assert body.ended and stream.failed  # gunicorn closes instead of parsing a next request


def test_read_is_bounded_like_the_generic_body(pair) -> None:  # noqa: ANN001
    server, client = pair
    stream = gunicorn_input(server, 6)
    body = gunicorn_body(stream, server, 6)
    assert body is not None
    client.sendall(b"abcdefgh")
    assert body.read(4) == b"abcd" and body.read(100) == b"ef" and body.read(100) == b""


def test_anything_but_an_untouched_gunicorn_length_body_falls_back(pair) -> None:  # noqa: ANN001
    server, client = pair
    assert gunicorn_body(io.BytesIO(b"abc"), server, 3) is None  # werkzeug, test client
    chunked = Body(ChunkedReader(None, SocketUnreader(server)))
    assert gunicorn_body(chunked, server, 3) is None
    other, peer = socket.socketpair()
    try:
        assert gunicorn_body(gunicorn_input(server, 3), other, 3) is None  # not its socket
    finally:
        other.close()
        peer.close()
    assert gunicorn_body(gunicorn_input(server, 3), server, 4) is None  # length disagrees
    started = gunicorn_input(server, 10)
    client.sendall(b"0123456789")
    assert started.read(2) == b"01"  # the application already read through gunicorn
    assert gunicorn_body(started, server, 10) is None
