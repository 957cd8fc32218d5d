"""Speaking tus to a live server in tests: plain requests for whole messages, and a raw socket
for bodies that stop halfway (what a dropped connection looks like to the server)."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

import requests

TUS = {"Tus-Resumable": "1.0.0"}


def encode_metadata(metadata: Mapping[str, str]) -> str:
    return ",".join(
        f"{k} {base64.b64encode(v.encode()).decode()}" if v is not None else k
        for k, v in metadata.items()
    )


def capture_metadata(session_id: int, filename: str = "photo.jpg", **extra: str) -> dict[str, str]:
    return {"filename": filename, "session_id": str(session_id), **extra}


class TusClient:
    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()
        self.http.headers.update({"Authorization": f"Bearer {token}", **TUS})
        self.token = token

    def create(self, length: int | None, metadata: Mapping[str, str], **headers: str) -> str:
        hdrs = {"Upload-Metadata": encode_metadata(metadata), **headers}
        if length is None:
            hdrs["Upload-Defer-Length"] = "1"
        else:
            hdrs["Upload-Length"] = str(length)
        r = self.http.post(self.base_url + "/files/", headers=hdrs, timeout=30)
        assert r.status_code == 201, (r.status_code, r.text)
        return self.absolute(r.headers["Location"])

    def absolute(self, location: str) -> str:
        return location if location.startswith("http") else self.base_url + location

    def head(self, url: str) -> requests.Response:
        return self.http.head(url, timeout=30)

    def offset(self, url: str) -> int:
        r = self.head(url)
        assert r.status_code in (200, 204), r.status_code
        return int(r.headers["Upload-Offset"])

    def patch(self, url: str, offset: int, data: bytes, **headers: str) -> requests.Response:
        hdrs = {
            "Content-Type": "application/offset+octet-stream",
            "Upload-Offset": str(offset),
            **headers,
        }
        return self.http.patch(url, data=data, headers=hdrs, timeout=60)

    def upload(
        self, data: bytes, metadata: Mapping[str, str], chunk: int = 1 << 20
    ) -> tuple[str, requests.Response]:
        url = self.create(len(data), metadata)
        offset, last = 0, None
        while offset < len(data) or last is None:
            last = self.patch(url, offset, data[offset : offset + chunk])
            assert last.status_code == 204, (last.status_code, last.text)
            offset = int(last.headers["Upload-Offset"])
        return url, last

    def download(self, url: str) -> bytes:
        r = self.http.get(url, timeout=60)
        assert r.status_code == 200, (r.status_code, r.text)
        return r.content

    def resume(self, url: str, data: bytes, chunk: int = 1 << 20) -> requests.Response:
        """Ask HEAD for the offset and send the rest, as a client does after a drop."""
        offset = self.offset(url)
        last = None
        while offset < len(data) or last is None:
            last = self.patch(url, offset, data[offset : offset + chunk])
            assert last.status_code == 204, (last.status_code, last.text)
            offset = int(last.headers["Upload-Offset"])
        return last

    def send_partial_patch(
        self, url: str, offset: int, data: bytes, declared_length: int, *, linger: float = 0.0
    ) -> None:
        """Send a PATCH that announces declared_length bytes but carries only data, then close."""
        parts = urlsplit(url)
        sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
        head = (
            f"PATCH {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Authorization: Bearer {self.token}\r\nTus-Resumable: 1.0.0\r\n"
            f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: {offset}\r\n"
            f"Content-Length: {declared_length}\r\n\r\n"
        ).encode()
        sock.sendall(head + data)
        if linger:
            time.sleep(linger)
        sock.close()

    def wait_offset(self, url: str, expected: int, timeout: float = 20) -> int:
        """HEAD until the server reports expected (it learns of a cut connection a little later)."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.head(url)
            if r.status_code in (200, 204) and int(r.headers["Upload-Offset"]) == expected:
                return expected
            if time.monotonic() > deadline:
                return int(r.headers.get("Upload-Offset", -1))
            time.sleep(0.1)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))
