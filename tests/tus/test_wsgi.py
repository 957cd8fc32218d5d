"""The WSGI adapter on its own (werkzeug's test client, a fallback app behind it):
routing, authentication, CORS preflight and exposure, downloads, status lines, chunked bodies,
the request socket's timeout, and a bug answered as a 500."""

from __future__ import annotations

import io
import json
import logging
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Response

from app.tus.body import BodyDisconnected, BodyTimeout
from app.tus.config import TusConfig
from app.tus.errors import TusError
from app.tus.hooks import Hooks
from app.tus.wsgi import TusWsgiApp
from app.tus.wsgi_body import WsgiBody
from tests.tus.conftest import OCTETS, make_handler, meta

ORIGIN = "https://camera.example"
TOKENS = {"alice-token": ("alice", False), "admin-token": ("root", True)}
AUTH = {"Authorization": "Bearer alice-token", "Tus-Resumable": "1.0.0"}


def fallback(environ: dict[str, Any], start_response: Any) -> Any:
    return Response(f"fallback {environ['PATH_INFO']}", status=418)(environ, start_response)


@pytest.fixture
def tus_app(tmp_path: Path) -> TusWsgiApp:
    config = TusConfig(
        max_size=1 << 20,
        body_poll_interval=0.05,
        body_idle_timeout=0.4,
    )
    hooks = Hooks(finish=lambda info, data: {"Tuscam-Capture-Id": "42"})
    handler = make_handler(tmp_path / "uploads", config, hooks)

    def authenticate(environ: dict[str, Any]) -> tuple[str, bool] | None:
        token = environ.get("HTTP_AUTHORIZATION", "").removeprefix("Bearer ")
        if token == "foreign-token":
            raise TusError(403, "cross-origin", "Uploads from elsewhere are not allowed.")
        return TOKENS.get(token)

    return TusWsgiApp(
        handler,
        authenticate,
        fallback,
        prefix="/files",
        cors_origins=[ORIGIN],
        expose_headers=["Tuscam-Capture-Id"],  # the application's own, as app/uploads.py does
    )


@pytest.fixture
def web(tus_app: TusWsgiApp) -> Client:
    return Client(tus_app)


def create(web: Client, length: int = 5, **headers: str) -> str:
    r = web.post("/files/", headers={**AUTH, "Upload-Length": str(length), **headers})
    assert r.status_code == 201, r.get_data()
    return r.headers["Location"]


def test_a_preflight_needs_no_authentication_and_allows_the_tus_headers(web: Client) -> None:
    r = web.options(
        "/files/",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "PATCH"},
    )
    assert r.status_code == 204
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    assert "Origin" in r.headers["Vary"]
    methods = {m.strip() for m in r.headers["Access-Control-Allow-Methods"].split(",")}
    assert methods == {"POST", "GET", "HEAD", "PATCH", "DELETE", "OPTIONS"}
    allowed = {h.strip().lower() for h in r.headers["Access-Control-Allow-Headers"].split(",")}
    assert {
        "authorization",
        "upload-offset",
        "upload-checksum",
        "x-http-method-override",
    } <= allowed
    assert r.headers["Tus-Version"] == "1.0.0" and "Tus-Resumable" not in r.headers


def test_an_unknown_origin_gets_no_cors_grant(web: Client) -> None:
    r = web.options(
        "/files/",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "Access-Control-Allow-Origin" not in r.headers
    r = web.post(
        "/files/", headers={**AUTH, "Upload-Length": "1", "Origin": "https://evil.example"}
    )
    assert r.status_code == 201 and "Access-Control-Allow-Origin" not in r.headers


@pytest.mark.parametrize("method", ["post", "head", "patch", "delete", "get"])
def test_without_authentication_every_tus_request_is_401(web: Client, method: str) -> None:
    r = getattr(web, method)("/files/" + ("" if method == "post" else "a" * 32))
    assert r.status_code == 401 and r.headers["Tus-Resumable"] == "1.0.0"
    if method == "head":
        assert r.get_data() == b""
    else:
        assert r.get_json()["error"] == "unauthorized"


def test_an_upload_exposes_the_tus_and_capture_headers(web: Client) -> None:
    location = create(web, 5, Origin=ORIGIN)
    assert location.startswith("http://localhost/files/")
    r = web.patch(
        location,
        data=b"hello",
        headers={**AUTH, "Content-Type": OCTETS, "Upload-Offset": "0", "Origin": ORIGIN},
    )
    assert r.status_code == 204 and r.headers["Upload-Offset"] == "5"
    assert r.headers["Tuscam-Capture-Id"] == "42"
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
    exposed = {h.strip() for h in r.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"Location", "Upload-Offset", "Tuscam-Capture-Id", "Upload-Expires"} <= exposed
    head = web.head(location, headers=AUTH)
    assert head.status_code == 200 and head.headers["Cache-Control"] == "no-store"
    assert head.get_data() == b""


def test_the_owner_downloads_the_stored_bytes_as_an_attachment(web: Client) -> None:
    location = create(web, 4, **{"Upload-Metadata": meta(filename='x"y.jpg')})
    web.patch(
        location, data=b"\xff\xd8ab", headers={**AUTH, "Content-Type": OCTETS, "Upload-Offset": "0"}
    )
    with web.get(location, headers={"Authorization": "Bearer alice-token"}) as r:
        body = r.get_data()  # no Tus-Resumable needed on GET
    assert r.status_code == 200 and body == b"\xff\xd8ab"
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Content-Disposition"].startswith("attachment;")
    assert "x_y.jpg" in r.headers["Content-Disposition"]
    with web.get(location, headers={"Authorization": "Bearer admin-token"}) as r:
        assert r.status_code == 200
    with web.get(location, headers={"Authorization": "Bearer nobody"}) as r:
        assert r.status_code == 401


def test_errors_are_json_with_a_status_line_clients_understand(web: Client) -> None:
    location = create(web, 5)
    r = web.patch(
        location,
        data=b"abc",
        headers={
            **AUTH,
            "Content-Type": OCTETS,
            "Upload-Offset": "0",
            "Upload-Checksum": "crc32 AAAAAA==",
        },
    )
    assert r.status == "460 Checksum Mismatch"
    assert r.get_json()["error"] == "checksum-mismatch"
    r = web.head("/files/" + "0" * 32, headers=AUTH)
    assert r.status_code == 404 and r.get_data() == b""
    r = web.patch("/files/../../etc", headers=AUTH)
    assert r.status_code in (404, 405)


def test_method_override_reaches_the_handler_on_an_upload_url(web: Client) -> None:
    location = create(web, 3)
    r = web.post(
        location,
        data=b"abc",
        headers={
            **AUTH,
            "X-HTTP-Method-Override": "PATCH",
            "Content-Type": OCTETS,
            "Upload-Offset": "0",
        },
    )
    assert r.status_code == 204 and r.headers["Upload-Offset"] == "3"


def test_a_chunked_body_is_read_only_when_the_server_ends_it(web: Client) -> None:
    location = create(web, 10)
    headers = {**AUTH, "Content-Type": OCTETS, "Upload-Offset": "0", "Transfer-Encoding": "chunked"}
    no_length = {"CONTENT_LENGTH": ""}  # as a server passes a chunked request on
    r = web.patch(
        location, input_stream=io.BytesIO(b"abcd"), headers=headers, environ_overrides=no_length
    )
    assert r.status_code == 411  # without wsgi.input_terminated it would store nothing
    r = web.patch(
        location,
        input_stream=io.BytesIO(b"abcd"),
        headers=headers,
        environ_overrides={**no_length, "wsgi.input_terminated": True},
    )
    assert r.status_code == 204 and r.headers["Upload-Offset"] == "4"


class SocketStream(io.RawIOBase):
    """Reads with recv() as gunicorn does (socket.makefile refuses to read after a timeout)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def read(self, size: int = -1) -> bytes:
        return self.sock.recv(size)


def test_a_silent_client_on_a_real_socket_is_dropped_and_the_timeout_restored(
    web: Client,
) -> None:
    location = create(web, 100)
    server, peer = socket.socketpair()
    stream = SocketStream(server)
    try:
        peer.sendall(b"x" * 30)  # then silence, connection still open
        started = time.monotonic()
        r = web.patch(
            location,
            headers={**AUTH, "Content-Type": OCTETS, "Upload-Offset": "0"},
            environ_overrides={
                "wsgi.input": stream,
                "CONTENT_LENGTH": "100",
                "gunicorn.socket": server,
            },
        )
        assert r.status_code == 408 and 0.4 <= time.monotonic() - started < 2
        assert server.gettimeout() is None
        assert json.loads(r.get_data())["error"] == "body-timeout"
        assert web.head(location, headers=AUTH).headers["Upload-Offset"] == "30"
    finally:
        stream.close()
        server.close()
        peer.close()


def test_the_wsgi_body_sorts_read_failures() -> None:
    class Failing(io.RawIOBase):
        def __init__(self, error: Exception) -> None:
            self.error = error

        def read(self, size: int = -1) -> bytes:
            raise self.error

    with pytest.raises(BodyTimeout):
        WsgiBody(Failing(TimeoutError()), length=10, retryable=True).read(10)
    with pytest.raises(BodyDisconnected):
        WsgiBody(Failing(TimeoutError()), length=None, retryable=False).read(10)
    with pytest.raises(BodyDisconnected):
        WsgiBody(Failing(RuntimeError("client went away")), length=10, retryable=True).read(10)
    body = WsgiBody(io.BytesIO(b"abcdef"), length=4, retryable=True)
    assert body.read(10) == b"abcd" and body.read(10) == b""  # never past Content-Length


def test_an_unread_body_is_drained_so_the_early_answer_arrives(web: Client) -> None:
    location = create(web, 10)
    stream = io.BytesIO(b"x" * 200_000 + b"NEXT")
    r = web.patch(
        location,
        headers={**AUTH, "Content-Type": OCTETS, "Upload-Offset": "3"},
        environ_overrides={"wsgi.input": stream, "CONTENT_LENGTH": "200000"},
    )
    assert r.status_code == 409
    assert stream.read() == b"NEXT"  # the whole body was read, and nothing after it


def test_other_paths_go_to_the_application_behind(web: Client) -> None:
    for path in ("/", "/filesystem", "/api/files/", "/review/"):
        r = web.get(path)
        assert r.status_code == 418 and r.get_data(as_text=True) == f"fallback {path}"
    r = web.head("/files/" + "a" * 32 + "/extra", headers=AUTH)
    assert r.status_code == 404 and r.headers["Tus-Resumable"] == "1.0.0"


def test_an_authentication_refusal_is_answered_as_json(web: Client) -> None:
    r = web.post("/files/", headers={**AUTH, "Authorization": "Bearer foreign-token"})
    assert r.status_code == 403 and r.get_json()["error"] == "cross-origin"
    assert r.headers["Tus-Resumable"] == "1.0.0"


def test_a_bug_is_logged_and_answered_500_and_the_next_request_works(
    tus_app: TusWsgiApp, web: Client, caplog: pytest.LogCaptureFixture
) -> None:
    handle = tus_app.handler.handle

    def broken(request: object) -> object:
        raise RuntimeError("a bug")

    tus_app.handler.handle = broken  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="app.tus"):
        r = web.post("/files/", headers={**AUTH, "Upload-Length": "1", "Origin": ORIGIN})
    assert r.status_code == 500 and r.get_json()["error"] == "internal-error"
    assert r.headers["Tus-Resumable"] == "1.0.0"
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN  # the browser can read it
    assert "a bug" in caplog.text
    tus_app.handler.handle = handle  # type: ignore[method-assign]
    assert create(web, 1).startswith("http://localhost/files/")


def test_the_location_follows_the_script_name_and_host(web: Client) -> None:
    r = web.post(
        "/files/",
        headers={**AUTH, "Upload-Length": "1", "Host": "uploads.example:8443"},
        environ_overrides={"SCRIPT_NAME": "/tuscam", "wsgi.url_scheme": "https"},
    )
    assert r.status_code == 201
    assert r.headers["Location"].startswith("https://uploads.example:8443/tuscam/files/")
