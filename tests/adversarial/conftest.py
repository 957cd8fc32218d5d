"""Fixtures of the adversarial suite: one hostile-input gunicorn server shared by the package
(small limits and timeouts), canary files around its data folder, raw HTTP on a socket, and
"nothing changed" guards (the tree outside the upload folder, the upload folder, capture rows).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import re
import secrets
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from services.models import Capture
from tests.support.server import LiveServer, start_live_server
from tests.support.tus import TusClient, capture_metadata, encode_metadata

OCTETS = "application/offset+octet-stream"
ALLOWED_ORIGIN = "http://allowed.example"
MAX_UPLOAD = 4_000_000
MAX_UNFINISHED = 20
IDLE_TIMEOUT = 2.0
LOCK_TIMEOUT = 3.0
HOSTILE_ENV = {
    "TUSCAM_TUS_BODY_IDLE_TIMEOUT": str(int(IDLE_TIMEOUT)),
    "TUSCAM_TUS_LOCK_TIMEOUT": str(int(LOCK_TIMEOUT)),
    "TUSCAM_TUS_MAX_UNFINISHED_PER_USER": str(MAX_UNFINISHED),
    "TUSCAM_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
    "TUSCAM_CORS_ORIGINS": ALLOWED_ORIGIN,
}
# Files an escaping path would hit: <uploads>/../file, <uploads>/../../x, and higher up.
CANARIES = ("canary.txt", "x", "server/x", "server/data/file", "server/data/x")
# Changed by the server's normal work, outside the upload folder.
_VOLATILE = re.compile(r"^server/(tuscam\.sqlite3.*|.*\.log|data/(uploads|captures)(/.*)?)$")


# --- servers ----------------------------------------------------------------------------------


@dataclass
class Hostile:
    """A live server inside `root`, with canaries planted around its data folder."""

    server: LiveServer
    root: Path

    @property
    def uploads(self) -> Path:
        return self.server.data_dir / "uploads"


def plant_canaries(root: Path) -> None:
    for name in CANARIES:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"canary " + name.encode())


@contextlib.contextmanager
def hostile_server(root: Path, **kwargs: object) -> Iterator[Hostile]:
    plant_canaries(root)
    env = {**HOSTILE_ENV, **dict(kwargs.pop("env", {}) or {})}  # type: ignore[call-overload]
    with start_live_server(root / "server", env=env, **kwargs) as server:  # type: ignore[arg-type]
        yield Hostile(server, root)


@pytest.fixture(scope="package")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    """The shared hostile-input server: 2 workers x 4 threads, small limits."""
    with hostile_server(tmp_path_factory.mktemp("hostile")) as h:
        yield h


@dataclass
class Operator:
    name: str
    token: str
    assessment_id: int
    session_id: int
    tus: TusClient
    base: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Tus-Resumable": "1.0.0"}

    def metadata(self, filename: str = "photo.jpg", **extra: str) -> str:
        return encode_metadata(capture_metadata(self.session_id, filename, **extra))

    def create(self, length: int | None = 10, filename: str = "photo.jpg", **headers: str) -> str:
        """A new upload; returns its id."""
        url = self.tus.create(length, capture_metadata(self.session_id, filename), **headers)
        return url.rsplit("/", 1)[1]


def new_operator(server: LiveServer) -> Operator:
    name, token = server.new_operator()
    aid, sid = server.new_capture_session(token)
    return Operator(name, token, aid, sid, TusClient(server.url, token), server.url)


@pytest.fixture(scope="package")
def shared(hostile: Hostile) -> Operator:
    """An operator for requests that create nothing (so it never meets the upload quota)."""
    return new_operator(hostile.server)


@pytest.fixture
def op(hostile: Hostile) -> Operator:
    return new_operator(hostile.server)


@pytest.fixture
def other(hostile: Hostile) -> Operator:
    return new_operator(hostile.server)


# --- raw HTTP ---------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


HeaderList = Sequence[tuple[str, str | bytes]] | Mapping[str, str | bytes]


def build_request(
    method: str, path: str, headers: HeaderList, body: bytes = b"", *, host: str = "127.0.0.1"
) -> bytes:
    """Bytes of an HTTP/1.1 request exactly as given: no normalisation, no added length."""
    items = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    lines = [f"{method} {path} HTTP/1.1".encode(), f"Host: {host}".encode()]
    for name, value in items:
        raw = value if isinstance(value, bytes) else value.encode("utf-8")
        lines.append(name.encode() + b": " + raw)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def send_raw(
    port: int,
    data: bytes,
    *,
    method: str = "GET",
    timeout: float = 20,
    half_close: bool = False,
) -> Reply:
    """Send bytes on a new connection and read one response (http.client parses it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)  # the body ends here: shorter than announced
        response = http.client.HTTPResponse(sock, method=method)
        try:
            response.begin()
            body = response.read()
        finally:
            response.close()
        headers = {k.lower(): v for k, v in response.getheaders()}
        return Reply(response.status, headers, body)


def raw(
    port: int,
    method: str,
    path: str,
    headers: HeaderList,
    body: bytes = b"",
    *,
    content_length: bool = True,
    **kwargs: object,
) -> Reply:
    items = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    if content_length and not any(
        k.lower() in ("content-length", "transfer-encoding") for k, _ in items
    ):
        items.append(("Content-Length", str(len(body))))
    items.append(("Connection", "close"))
    request = build_request(method, path, items, body)
    return send_raw(port, request, method=method, **kwargs)  # type: ignore[arg-type]


def chunked(*pieces: bytes) -> bytes:
    return b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces if p) + b"0\r\n\r\n"


# --- what must not change ---------------------------------------------------------------------


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def outside_tree(root: Path) -> dict[str, str]:
    """Every path under root except the server's own working files: name -> content digest."""
    tree: dict[str, str] = {}
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if _VOLATILE.match(rel):
            continue
        tree[rel] = "dir" if path.is_dir() else _digest(path)
    return tree


def uploads_tree(h: Hostile) -> dict[str, int]:
    """The upload folder: name -> size (offsets are file sizes). Release requests are transient."""
    if not h.uploads.exists():
        return {}
    return {
        p.relative_to(h.uploads).as_posix(): (p.stat().st_size if p.is_file() else -1)
        for p in h.uploads.rglob("*")
        if not p.name.endswith(".release")
    }


def capture_count(server: LiveServer) -> int:
    with server.db() as db:
        return db.scalar(select(func.count()).select_from(Capture)) or 0


def captures_of(server: LiveServer, upload_id: str) -> list[Capture]:
    with server.db() as db:
        return list(db.scalars(select(Capture).where(Capture.upload_id == upload_id)))


@dataclass
class Snapshot:
    outside: dict[str, str]
    uploads: dict[str, int]
    captures: int


def snapshot(h: Hostile) -> Snapshot:
    return Snapshot(outside_tree(h.root), uploads_tree(h), capture_count(h.server))


@contextlib.contextmanager
def nothing_changes(h: Hostile) -> Iterator[None]:
    """A refused request: no file outside the data folder, no byte or file in the upload folder,
    no capture row."""
    before = snapshot(h)
    yield
    time.sleep(0.05)  # the response is sent before the handler's last close()
    after = snapshot(h)
    assert after.outside == before.outside, "a file outside the upload folder changed"
    assert after.uploads == before.uploads, _diff(before.uploads, after.uploads)
    assert after.captures == before.captures, "a capture row appeared for a refused request"


@contextlib.contextmanager
def nothing_escapes(h: Hostile) -> Iterator[None]:
    before = outside_tree(h.root)
    yield
    assert outside_tree(h.root) == before, "a file outside the upload folder changed"


def _diff(before: dict[str, int], after: dict[str, int]) -> str:
    changed = {k: (before.get(k), after.get(k)) for k in before.keys() | after.keys()}
    return "upload folder changed: " + repr({k: v for k, v in changed.items() if v[0] != v[1]})


def stored(h: Hostile, upload_id: str) -> bytes:
    return (h.uploads / upload_id).read_bytes()


def head_offset(op: Operator, upload_id: str) -> int:
    r = op.tus.head(f"{op.base}/files/{upload_id}")
    assert r.status_code == 200, r.status_code
    return int(r.headers["Upload-Offset"])


def login_cookie_session(server: LiveServer, username: str, password: str) -> requests.Session:
    """A browser-like session: the login form with its CSRF token, then the session cookie."""
    s = requests.Session()
    page = s.get(server.url + "/auth/login", timeout=30)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text)
    assert token, "no CSRF token on the login page"
    r = s.post(
        server.url + "/auth/login",
        data={"username": username, "password": password, "csrf_token": token.group(1)},
        allow_redirects=False,
        timeout=30,
    )
    assert r.status_code == 302, (r.status_code, r.text[:200])
    return s


def new_cookie_operator(server: LiveServer) -> tuple[requests.Session, Operator]:
    name = f"web-{secrets.token_hex(4)}"
    password = server.create_user(name, "operator")
    token = server.create_token(name)
    aid, sid = server.new_capture_session(token)
    op = Operator(name, token, aid, sid, TusClient(server.url, token), server.url)
    return login_cookie_session(server, name, password), op
