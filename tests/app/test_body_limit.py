"""Non-tus routes refuse bodies over 1 MiB with 413 before reading them, over real HTTP: a
60 MiB body declared by Content-Length is answered after a few hundred KiB and the connection is
closed; a chunked body is cut off at the limit."""

from __future__ import annotations

import socket

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.security import MAX_BODY_BYTES
from tests.app.helpers import add_user, bearer, token_for
from tests.support.server import LiveServer

SIXTY_MIB = 60 * 1024 * 1024
PIECE = 256 * 1024


def _status(sock: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise AssertionError(f"connection closed before a status line: {data!r}")
        data += chunk
    return int(data.split(b" ", 2)[1])


def _request_head(live_server: LiveServer, token: str, path: str, framing: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\n{framing}\r\n\r\n"
    ).encode()


@pytest.mark.parametrize("path", ["/api/assessments", "/auth/login", "/healthz"])
def test_a_60_mib_body_is_refused_after_a_fraction_is_sent_and_never_read(
    live_server: LiveServer, path: str
) -> None:
    name, token = live_server.new_operator("big")
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=20) as sock:
        sock.sendall(_request_head(live_server, token, path, f"Content-Length: {SIXTY_MIB}"))
        sock.sendall(b"{" + b" " * (PIECE - 1))  # a quarter MiB of the 60 announced
        assert _status(sock) == 413
        # The server closed the connection: the rest cannot all be sent.
        sent = PIECE
        with pytest.raises(OSError):
            while sent < SIXTY_MIB:
                sock.sendall(b" " * (1024 * 1024))
                sent += 1024 * 1024
        assert sent < 16 * 1024 * 1024, sent
    assert live_server.api(token).get("/api/assessments").status_code == 200  # still serving


def test_a_chunked_body_over_the_limit_is_413(live_server: LiveServer) -> None:
    _name, token = live_server.new_operator("chunked")
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=20) as sock:
        sock.sendall(
            _request_head(live_server, token, "/api/assessments", "Transfer-Encoding: chunked")
        )
        sent = 0
        status = None
        sock.settimeout(20)
        try:
            while sent < 8 * MAX_BODY_BYTES:
                sock.sendall(f"{PIECE:x}\r\n".encode() + b" " * PIECE + b"\r\n")
                sent += PIECE
        except OSError:
            pass  # refused and closed while sending
        status = _status(sock)
    assert status == 413


def test_a_json_body_just_under_the_limit_is_read(app: Flask, client: FlaskClient) -> None:
    add_user(app, "olga")
    padding = " " * (MAX_BODY_BYTES - 100)
    body = '{"title": "Bridge"' + padding + "}"
    response = client.post(
        "/api/assessments",
        data=body,
        content_type="application/json",
        headers=bearer(token_for(app, "olga")),
    )
    assert response.status_code == 201


def test_a_json_body_over_the_limit_is_413_with_a_message(app: Flask, client: FlaskClient) -> None:
    add_user(app, "olga")
    response = client.post(
        "/api/assessments",
        data=b"{" + b" " * MAX_BODY_BYTES + b"}",
        content_type="application/json",
        headers=bearer(token_for(app, "olga")),
    )
    assert response.status_code == 413
    assert "/files/" in response.json["message"]
