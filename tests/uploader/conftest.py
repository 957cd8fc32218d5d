"""Fixtures for the tuscam-upload tests: generated images, a state file, and a small in-process
fake tus server (for fast tests of retry and resume rules without the real app)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import os
import secrets
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image


def make_jpeg(path: Path, *, seed: int, size: tuple[int, int] = (64, 48), pad_to: int = 0) -> Path:
    """A small valid JPEG, different per seed; `pad_to` appends random bytes after the image's
    end marker: a large file cheap to make, for the fake server (the real one rejects it)."""
    rng = Image.new("RGB", size, ((seed * 37) % 256, (seed * 91) % 256, (seed * 53) % 256))
    noise = Image.frombytes("RGB", size, secrets.token_bytes(size[0] * size[1] * 3))
    buf = io.BytesIO()
    Image.blend(rng, noise, 0.5).save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    if pad_to > len(data):
        data += os.urandom(pad_to - len(data))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def make_noise_png(path: Path, approx_bytes: int) -> Path:
    """A valid PNG of random pixels, stored uncompressed: about `approx_bytes` long (a large
    image the server accepts; it refuses data appended after an image's end)."""
    side = max(8, math.isqrt(approx_bytes // 3))
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, "PNG", compress_level=0)
    return path


@pytest.fixture
def images(tmp_path: Path) -> Callable[..., list[Path]]:
    def make(count: int, folder: str = "photos", **kwargs: object) -> list[Path]:
        return [
            make_jpeg(tmp_path / folder / f"img_{i:03d}.jpg", seed=i, **kwargs)  # type: ignore[arg-type]
            for i in range(count)
        ]

    return make


@pytest.fixture
def state_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "state.sqlite3"


# -- a fake tus server -------------------------------------------------------------------------


@dataclass
class FakeUpload:
    id: str
    length: int
    metadata: dict[str, str]
    data: bytearray = field(default_factory=bytearray)
    capture: dict[str, str] | None = None


@dataclass
class FakeTus:
    """In-memory tus 1.0.0 server (creation, termination) and the session API of capture
    session 42, with knobs for failures."""

    token: str = "fake-token"
    uploads: dict[str, FakeUpload] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)
    body_bytes: int = 0
    fail_patches: int = 0  # answer the next N PATCHes with 500 (after reading the body)
    refuse_post: tuple[int, str] | None = None  # (status, message)
    capture_headers: bool = True  # False: the client must ask /api/uploads/<id>
    session_open: bool = True
    unavailable: bool = False  # answer every request 503, as a proxy whose backend is down
    outage: tuple[int, float] | None = None  # (n, s): after the n-th PATCH, unavailable for s
    seen_sha: set[str] = field(default_factory=set)
    next_capture: int = 1
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def finish(self, up: FakeUpload) -> None:
        digest = hashlib.sha256(up.data).hexdigest()
        if not bytes(up.data[:2]) == b"\xff\xd8":
            status, reason = "rejected", "not an image: cannot identify image file"
        elif up.metadata.get("sha256") not in (None, digest):
            status, reason = "rejected", "sha256 mismatch"
        elif digest in self.seen_sha:
            status, reason = "duplicate", None
        else:
            status, reason = "accepted", None
        self.seen_sha.add(digest)
        up.capture = {"Tuscam-Capture-Id": str(self.next_capture), "Tuscam-Capture-Status": status}
        if reason:
            up.capture["Tuscam-Capture-Reason"] = reason
        self.next_capture += 1


def _handler(fake: FakeTus) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _reply(
            self, status: int, headers: dict[str, str] | None = None, body: bytes = b""
        ) -> None:
            self.send_response(status)
            self.send_header("Tus-Resumable", "1.0.0")
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, data: dict) -> None:
            self._reply(status, {"Content-Type": "application/json"}, json.dumps(data).encode())

        def _body(self) -> bytes:
            n = int(self.headers.get("Content-Length") or 0)
            data = self.rfile.read(n)
            with fake.lock:
                fake.body_bytes += len(data)
            return data

        def _upload(self) -> FakeUpload | None:
            return fake.uploads.get(self.path.rstrip("/").rsplit("/", 1)[-1])

        def _available(self) -> bool:
            if not fake.unavailable:
                return True
            self._reply(503, {"Content-Type": "text/html"}, b"<h1>503 Service Unavailable</h1>")
            return False

        def _authorized(self) -> bool:
            if self.headers.get("Authorization") == f"Bearer {fake.token}":
                return True
            self._json(401, {"error": "unauthorized", "message": "Log in or send a token."})
            return False

        def do_POST(self) -> None:
            fake.requests["POST"] += 1
            self._body()
            if not self._available() or not self._authorized():
                return
            if fake.refuse_post:
                status, message = fake.refuse_post
                self._json(status, {"error": "refused", "message": message})
                return
            metadata = {}
            for pair in (self.headers.get("Upload-Metadata") or "").split(","):
                if pair:
                    k, _, v = pair.partition(" ")
                    metadata[k] = base64.b64decode(v, validate=True).decode()
            up = FakeUpload(secrets.token_hex(16), int(self.headers["Upload-Length"]), metadata)
            with fake.lock:
                fake.uploads[up.id] = up
                if up.length == 0:
                    fake.finish(up)
            headers = {"Location": f"/files/{up.id}", "Upload-Offset": "0"}
            if up.capture and fake.capture_headers:
                headers.update(up.capture)
            self._reply(201, headers)

        def do_HEAD(self) -> None:
            fake.requests["HEAD"] += 1
            up = self._upload()
            if not self._available() or not self._authorized():
                return
            if up is None:
                self._reply(404)
                return
            headers = {"Upload-Offset": str(len(up.data)), "Upload-Length": str(up.length)}
            if up.capture and fake.capture_headers:
                headers.update(up.capture)
            self._reply(200, {**headers, "Cache-Control": "no-store"})

        def do_PATCH(self) -> None:
            fake.requests["PATCH"] += 1
            if fake.outage and fake.requests["PATCH"] == fake.outage[0] + 1:
                fake.unavailable = True
                threading.Timer(fake.outage[1], setattr, (fake, "unavailable", False)).start()
            body = self._body()
            if not self._available() or not self._authorized():
                return
            up = self._upload()
            if up is None:
                self._reply(404)
                return
            with fake.lock:
                if fake.fail_patches:
                    fake.fail_patches -= 1
                    self._json(500, {"error": "boom", "message": "injected failure"})
                    return
                if int(self.headers["Upload-Offset"]) != len(up.data):
                    self._reply(409)
                    return
                up.data += body
                headers = {"Upload-Offset": str(len(up.data))}
                if len(up.data) == up.length:
                    fake.finish(up)
                    if fake.capture_headers:
                        headers.update(up.capture or {})
            self._reply(204, headers)

        def do_OPTIONS(self) -> None:
            fake.requests["OPTIONS"] += 1
            if self._available():
                self._reply(204, {"Tus-Version": "1.0.0", "Tus-Extension": "creation"})

        def do_DELETE(self) -> None:
            fake.requests["DELETE"] += 1
            if not self._authorized():
                return
            up = self._upload()
            if up is None:
                self._reply(404)
                return
            del fake.uploads[up.id]
            self._reply(204)

        def do_GET(self) -> None:
            fake.requests["GET"] += 1
            if not self._available() or not self._authorized():
                return
            if self.path.startswith("/api/sessions/"):
                if self.path != "/api/sessions/42":
                    self._json(404, {"error": "not-found", "message": "No such session."})
                    return
                self._json(200, {"id": 42, "open": fake.session_open, "ended_at": None})
                return
            up = self._upload()
            if not self.path.startswith("/api/uploads/") or up is None or up.capture is None:
                self._json(404, {"error": "not-found", "message": "no capture"})
                return
            self._json(
                200,
                {
                    "upload_id": up.id,
                    "capture_id": int(up.capture["Tuscam-Capture-Id"]),
                    "status": up.capture["Tuscam-Capture-Status"],
                    "reason": up.capture.get("Tuscam-Capture-Reason"),
                },
            )

    return Handler


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hung up mid-answer is what the fault tests cause: not an error."""
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


@pytest.fixture
def fake_tus() -> Iterator[FakeTus]:
    fake = FakeTus()
    server = _Server(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
    thread.join()
