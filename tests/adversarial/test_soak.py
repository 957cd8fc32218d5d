"""Soak (about 2 minutes; skipped with SKIP_SOAK=1, run in CI): 100 concurrent uploads with
random disconnects and resumes against 6 workers x 16 threads. Zero corrupted files, zero lost
uploads, zero 5xx, and every worker's memory stays flat."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.adversarial.conftest import (
    OCTETS,
    Hostile,
    Operator,
    captures_of,
    hostile_server,
    new_operator,
    stored,
)
from tests.support.tus import sha256

pytestmark = [
    pytest.mark.soak,
    pytest.mark.skipif(os.environ.get("SKIP_SOAK") == "1", reason="SKIP_SOAK=1"),
]
UPLOADS = 100
SOAK_SECONDS = 100.0  # rounds of UPLOADS go on until this much time has passed
RSS_GROWTH_LIMIT = 60 << 20


@pytest.fixture(scope="module")
def soak_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    env = {
        "TUSCAM_MAX_UPLOAD_BYTES": str(50_000_000),
        "TUSCAM_TUS_MAX_UNFINISHED_PER_USER": "1000",
        "ACCESS_LOG": "/dev/null",
    }
    with hostile_server(tmp_path_factory.mktemp("soak"), workers=6, threads=16, env=env) as h:
        yield h


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.status: dict[int, int] = {}
        self.cuts = 0
        self.connection_errors = 0

    def count(self, status: int) -> None:
        with self.lock:
            self.status[status] = self.status.get(status, 0) + 1


def one_upload(h: Hostile, op: Operator, seed: int, stats: Stats) -> str:
    rng = random.Random(seed)
    data = rng.randbytes(rng.randrange(20_000, 1_500_000))
    http = requests.Session()
    http.headers.update(op.auth)

    def call(method: str, url: str, **kwargs: object) -> requests.Response | None:
        """One request; a connection error (a kept-alive connection the server closed as we
        sent, RFC 9112 section 9.6) is what a tus client retries after HEAD: counted, not fatal."""
        try:
            r = http.request(method, url, timeout=60, **kwargs)  # type: ignore[arg-type]
        except requests.ConnectionError:
            with stats.lock:
                stats.connection_errors += 1
            return None
        stats.count(r.status_code)
        return r

    metadata = {"Upload-Length": str(len(data))}
    metadata["Upload-Metadata"] = op.metadata(f"soak-{seed}.bin")
    created = None
    while created is None:
        created = call("POST", f"{op.base}/files/", headers=metadata)
    assert created.status_code == 201, (created.status_code, created.text)
    url = op.tus.absolute(created.headers["Location"])
    upload_id = url.rsplit("/", 1)[1]
    deadline = time.monotonic() + 90
    finished = False
    while not finished:
        assert time.monotonic() < deadline, f"upload {upload_id} made no progress"
        r = call("HEAD", url)
        if r is None:
            continue
        assert r.status_code == 200, r.status_code
        offset = int(r.headers["Upload-Offset"])
        if offset == len(data) and "Tuscam-Capture-Id" in r.headers:
            break
        chunk = data[offset : offset + rng.randrange(32_000, 600_000)]
        if chunk and rng.random() < 0.3:
            op.tus.send_partial_patch(
                url, offset, chunk[: rng.randrange(0, len(chunk))], len(chunk)
            )
            with stats.lock:
                stats.cuts += 1
            continue
        headers = {"Content-Type": OCTETS, "Upload-Offset": str(offset)}
        r = call("PATCH", url, data=chunk, headers=headers)
        if r is None:
            continue
        # 409: the server had not yet noticed an earlier cut when HEAD answered; 423: it is
        # still busy with it. Both mean "ask HEAD again".
        assert r.status_code in (204, 409, 423), (r.status_code, r.text)
        finished = r.status_code == 204 and "Tuscam-Capture-Id" in r.headers
    assert sha256(stored(h, upload_id)) == sha256(data), f"corrupted {upload_id}"
    return upload_id


def test_soak_concurrent_uploads_with_disconnects(soak_server: Hostile) -> None:
    h = soak_server
    operators = [new_operator(h.server) for _ in range(10)]
    stats = Stats()
    seeds = iter(range(10**9))

    def round_() -> list[str]:
        with ThreadPoolExecutor(UPLOADS) as pool:
            futures = [
                pool.submit(one_upload, h, operators[i % 10], next(seeds), stats)
                for i in range(UPLOADS)
            ]
            return [f.result() for f in futures]

    warm = round_()  # warm-up: imports, caches, connection pools, thread stacks
    pids = h.server.worker_pids()
    before = {pid: rss(pid) for pid in pids}
    started, done = time.monotonic(), list(warm)
    while time.monotonic() - started < SOAK_SECONDS:
        done += round_()
    after = {pid: rss(pid) for pid in pids}
    assert h.server.worker_pids() == pids, "a worker died or was replaced"
    assert not [s for s in stats.status if s >= 500], stats.status
    assert stats.cuts > UPLOADS // 2
    assert stats.connection_errors < len(done) // 10, stats.connection_errors
    for upload_id in done:
        rows = captures_of(h.server, upload_id)
        assert len(rows) == 1, (upload_id, rows)
    growth = {pid: after[pid] - before[pid] for pid in pids}
    assert max(growth.values()) < RSS_GROWTH_LIMIT, {p: g >> 20 for p, g in growth.items()}
    print(
        f"soak: {len(done)} uploads, {stats.cuts} cuts, statuses {stats.status}, "
        f"{stats.connection_errors} connection errors, "
        f"RSS growth MiB {[g >> 20 for g in growth.values()]}"
    )
