"""Network failures in plain words (uploader.errors), from real failing connections on
127.0.0.1: refused, reset, closed, silent, not TLS; and what is not the network's fault."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable, Iterator

import pytest
import requests
import urllib3.exceptions

from uploader.errors import network_cause, server_message, tls_problem


@contextlib.contextmanager
def listener(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A TCP server on 127.0.0.1 that calls `handle` with each accepted connection."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    stop = threading.Event()
    conns: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conns.append(conn)
            handle(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()
    for conn in conns:
        conn.close()


def read_request(conn: socket.socket) -> None:
    conn.settimeout(2)
    with contextlib.suppress(OSError):
        conn.recv(65536)


def reset(conn: socket.socket) -> None:
    read_request(conn)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def close(conn: socket.socket) -> None:
    read_request(conn)
    conn.close()


def silent(conn: socket.socket) -> None:
    read_request(conn)  # and never answer


def failure(url: str, timeout: float = 2) -> requests.RequestException:
    with pytest.raises(requests.RequestException) as caught:
        requests.get(url, timeout=timeout)
    return caught.value


def test_a_port_nobody_listens_on_is_connection_refused() -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    exc = failure(f"http://127.0.0.1:{port}/")
    assert "HTTPConnectionPool" in str(exc)  # what people used to see
    assert network_cause(exc) == "connection refused"


@pytest.mark.parametrize(
    ("handle", "words"),
    [
        (reset, "connection reset"),
        (close, "connection closed by the server"),
        (silent, "no answer within the timeout"),
    ],
)
def test_a_connection_that_fails_is_named_plainly(
    handle: Callable[[socket.socket], None], words: str
) -> None:
    with listener(handle) as port:
        exc = failure(f"http://127.0.0.1:{port}/", timeout=0.5)
    assert network_cause(exc) == words


def test_tls_to_a_plain_http_server_is_a_tls_problem_not_an_outage() -> None:
    with listener(close) as port:
        exc = failure(f"https://127.0.0.1:{port}/")
    assert network_cause(exc) is None
    assert tls_problem(exc) is not None


def test_a_name_that_does_not_resolve_is_said_so() -> None:
    # Built as urllib3 and requests wrap it: resolving a name would leave 127.0.0.1.
    gai = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    resolution = urllib3.exceptions.NameResolutionError("tuscam.example", None, gai)  # type: ignore[arg-type]
    pool = urllib3.exceptions.MaxRetryError(None, "/api/sessions/1", resolution)  # type: ignore[arg-type]
    assert network_cause(requests.exceptions.ConnectionError(pool)) == (
        "the server's name is not found"
    )


@pytest.mark.parametrize(
    ("status", "words"),
    [(502, "bad gateway, 502"), (503, "service unavailable, 503"), (504, "gateway timeout, 504")],
)
def test_gateway_statuses_mean_the_server_is_away(status: int, words: str) -> None:
    assert network_cause(None, status) == words


@pytest.mark.parametrize("status", [400, 401, 404, 409, 500])
def test_other_statuses_are_answers_not_outages(status: int) -> None:
    assert network_cause(None, status) is None


def test_the_servers_words_come_from_its_json_and_never_from_an_html_page() -> None:
    assert server_message(404, b'{"error": "not-found", "message": "No such session."}') == (
        "No such session."
    )
    assert server_message(502, b"<html><h1>502 Bad Gateway</h1></html>") == "HTTP status 502"
    assert server_message(500, "boom\n  at line 3") == "boom at line 3"
