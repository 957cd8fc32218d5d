"""A tus load generator speaking the protocol directly with requests (one Session per thread).

Upload bodies are slices of one shared pool of random bytes, so a 1 GiB upload costs no memory
and every upload has distinct, known content (its sha256 is computed before the clock starts).
After a run every upload is verified: HEAD says offset == length, and the bytes the server
stored hash to the same sha256 (its file on disk, or GET /files/<id> for tuscam).
"""

from __future__ import annotations

import base64
import hashlib
import os
import queue
import statistics
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urljoin

import requests

from bench.peers import Server

KiB, MiB, GiB = 1024, 1024**2, 1024**3
POOL_SIZE = 64 * MiB + 4093  # not a multiple of any chunk size: misplaced chunks change the hash
TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = "application/offset+octet-stream"
TIMEOUT = 300


class Pool:
    """Random bytes read circularly; slice(start, n) never allocates more than n bytes."""

    def __init__(self, size: int = POOL_SIZE, seed: bytes | None = None) -> None:
        if seed is None:
            self.data = os.urandom(size)
        else:  # reproducible content, e.g. for a test
            self.data = hashlib.shake_256(seed).digest(size)
        self.size = size

    def slice(self, start: int, n: int) -> bytes:
        start %= self.size
        end = start + n
        if end <= self.size:
            return self.data[start:end]
        parts = [self.data[start:]]
        remaining = n - (self.size - start)
        while remaining > 0:
            take = min(remaining, self.size)
            parts.append(self.data[:take])
            remaining -= take
        return b"".join(parts)


@dataclass
class Payload:
    """One file to upload: `length` bytes of the pool from `start`, or literal `data`."""

    name: str
    length: int
    pool: Pool | None = None
    start: int = 0
    data: bytes | None = None
    _sha256: str | None = field(default=None, repr=False)

    def read(self, offset: int, n: int) -> bytes:
        n = min(n, self.length - offset)
        if self.data is not None:
            return self.data[offset : offset + n]
        assert self.pool is not None
        return self.pool.slice(self.start + offset, n)

    def sha256(self) -> str:
        if self._sha256 is None:
            h = hashlib.sha256()
            for offset in range(0, self.length, 16 * MiB):
                h.update(self.read(offset, 16 * MiB))
            self._sha256 = h.hexdigest()
        return self._sha256


def pool_payloads(pool: Pool, count: int, length: int, prefix: str) -> list[Payload]:
    # Starts spread over the pool by a large odd step: no two uploads share their content.
    step = 7_919_993
    return [Payload(f"{prefix}{i:05d}", length, pool, i * step) for i in range(count)]


def encode_metadata(values: dict[str, str]) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


class UploadError(Exception):
    pass


def _expect(response: requests.Response, status: int, what: str) -> None:
    if response.status_code != status:
        raise UploadError(
            f"{what}: expected {status}, got {response.status_code} {response.text[:300]!r}"
        )


@dataclass
class UploadResult:
    payload: Payload
    url: str
    seconds: float  # first request sent -> last response read
    request_seconds: list[float]
    offset: int  # the server's last Upload-Offset (or stored length for a plain POST)
    headers: dict[str, str]  # of the last response


def tus_upload(
    session: requests.Session,
    server: Server,
    payload: Payload,
    chunk_size: int,
    *,
    with_upload: bool = False,
) -> UploadResult:
    """POST (with the first chunk in its body when `with_upload`), then PATCH the rest."""
    # tuspyserver's HEAD answers 400 without a filetype.
    fields = {"filename": payload.name + ".jpg", "filetype": "image/jpeg", **server.metadata}
    metadata = encode_metadata(fields)
    headers = {**TUS, "Upload-Length": str(payload.length), "Upload-Metadata": metadata}
    body = None
    if with_upload:
        body = payload.read(0, chunk_size)
        headers["Content-Type"] = OCTETS
    timings = []
    started = time.perf_counter()
    r = session.post(server.url, data=body, headers=headers, timeout=TIMEOUT)
    timings.append(time.perf_counter() - started)
    _expect(r, 201, f"POST {payload.name}")
    url = urljoin(server.url, r.headers["Location"])
    offset = int(r.headers.get("Upload-Offset", "0")) if with_upload else 0
    if with_upload and offset != len(body or b""):
        raise UploadError(f"POST {payload.name}: Upload-Offset {offset}, sent {len(body or b'')}")
    while offset < payload.length:
        chunk = payload.read(offset, chunk_size)
        t = time.perf_counter()
        r = session.patch(
            url,
            data=chunk,
            headers={**TUS, "Upload-Offset": str(offset), "Content-Type": OCTETS},
            timeout=TIMEOUT,
        )
        timings.append(time.perf_counter() - t)
        _expect(r, 204, f"PATCH {payload.name} at {offset}")
        new_offset = int(r.headers["Upload-Offset"])
        if new_offset != offset + len(chunk):
            raise UploadError(f"PATCH {payload.name}: offset {new_offset}, expected more")
        offset = new_offset
    seconds = time.perf_counter() - started
    return UploadResult(payload, url, seconds, timings, offset, dict(r.headers))


class PayloadReader:
    """A payload as a file-like body of known length, read in 8 MiB pieces: one streaming POST
    of 1 GiB sends the same sendall() calls as 8 MiB PATCHes, without a 1 GiB buffer."""

    piece = 8 * MiB

    def __init__(self, payload: Payload) -> None:
        self.payload = payload
        self.offset = 0

    def __len__(self) -> int:
        return self.payload.length - self.offset

    def read(self, n: int = -1) -> bytes:
        # urllib3 asks for small blocks and sends whatever it gets: hand it big pieces.
        data = self.payload.read(self.offset, max(n, self.piece))
        self.offset += len(data)
        return data


def post_upload(session: requests.Session, server: Server, payload: Payload) -> UploadResult:
    """The plain, non-tus way: the whole file in one streaming POST."""
    started = time.perf_counter()
    r = session.post(
        server.url + payload.name,
        data=PayloadReader(payload),
        headers={"Content-Type": "application/octet-stream"},
        timeout=TIMEOUT,
    )
    seconds = time.perf_counter() - started
    _expect(r, 201, f"POST {payload.name}")
    url = server.url + payload.name
    return UploadResult(payload, url, seconds, [seconds], int(r.json()["length"]), dict(r.headers))


@dataclass
class RunResult:
    uploads: list[UploadResult]
    seconds: float
    errors: list[str]

    @property
    def bytes(self) -> int:
        return sum(u.payload.length for u in self.uploads)


def run_uploads(
    server: Server,
    payloads: Iterable[Payload],
    *,
    concurrency: int,
    chunk_size: int,
    with_upload: bool = False,
) -> RunResult:
    """Upload every payload with `concurrency` threads, each with its own requests.Session."""
    work: queue.Queue[Payload] = queue.Queue()
    for p in payloads:
        work.put(p)
    results: list[UploadResult] = []
    errors: list[str] = []
    lock = threading.Lock()
    gate = threading.Barrier(concurrency + 1)

    def worker() -> None:
        with requests.Session() as session:
            session.headers.update(server.headers)
            gate.wait()
            while True:
                try:
                    payload = work.get_nowait()
                except queue.Empty:
                    return
                try:
                    if server.protocol == "post":
                        result = post_upload(session, server, payload)
                    else:
                        result = tus_upload(
                            session, server, payload, chunk_size, with_upload=with_upload
                        )
                except Exception as exc:  # noqa: BLE001 - one failed upload fails the run, not the program
                    with lock:
                        errors.append(f"{payload.name}: {type(exc).__name__}: {exc}")
                    continue
                with lock:
                    results.append(result)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    gate.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    return RunResult(results, time.perf_counter() - started, errors)


def verify(server: Server, results: Iterable[UploadResult]) -> list[str]:
    """Problems with what the server kept: HEAD offset == length, stored sha256 == sent sha256.

    The sink keeps nothing: its last Upload-Offset must equal the length, that is all."""
    problems = []
    with requests.Session() as session:
        session.headers.update(server.headers)
        for result in results:
            p = result.payload
            if result.offset != p.length:
                problems.append(f"{p.name}: last offset {result.offset} != length {p.length}")
                continue
            if server.supports_head:
                r = session.head(result.url, headers=TUS, timeout=30)
                offset = r.headers.get("Upload-Offset")
                length = r.headers.get("Upload-Length")
                if r.status_code != 200 or offset != str(p.length) or length != str(p.length):
                    problems.append(
                        f"{p.name}: HEAD {r.status_code} offset={offset} length={length}"
                    )
                    continue
            digest = stored_sha256(server, session, result.url)
            if digest is not None and digest != p.sha256():
                problems.append(f"{p.name}: stored sha256 {digest[:12]} != sent {p.sha256()[:12]}")
            elif digest is None and server.files_dir is not None:
                problems.append(f"{p.name}: stored bytes not found")
    return problems


def stored_sha256(server: Server, session: requests.Session, url: str) -> str | None:
    path = server.stored_file(url)
    h = hashlib.sha256()
    if path is not None and path.is_file():
        with open(path, "rb") as f:
            while block := f.read(4 * MiB):
                h.update(block)
        return h.hexdigest()
    if server.fetch_url is not None:
        with session.get(server.fetch_url(url), stream=True, timeout=60) as r:
            if r.status_code != 200:
                return None
            for block in r.iter_content(4 * MiB):
                h.update(block)
        return h.hexdigest()
    return None


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[int(q) - 1]


def median(values: Iterable[float]) -> float:
    vals = [v for v in values if v == v]  # drop nan
    return statistics.median(vals) if vals else float("nan")
