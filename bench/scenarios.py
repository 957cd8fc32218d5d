"""The benchmark scenarios and one measured run of a scenario against one server.

A measurement is: the uploads (timed, wall clock), the server's CPU seconds (utime + stime of
its whole process tree before/after), the peak RSS of its workers, then verification of every
upload (not timed) and clean-up of what the server stored.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from bench import loadgen
from bench.loadgen import GiB, KiB, MiB, Payload, Pool
from bench.memory import MB, PeakRss
from bench.peers import Server
from bench.procs import cpu_seconds


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    count: int
    size: int
    concurrency: int
    chunk_size: int
    with_upload: bool = False
    latency: str = "upload"  # "upload": POST -> last response; "request": each PATCH
    quick_count: int | None = None
    quick_size: int | None = None

    def sized(self, quick: bool) -> tuple[int, int]:
        if quick:
            return self.quick_count or self.count, self.quick_size or self.size
        return self.count, self.size

    def describe(self, quick: bool) -> str:
        count, size = self.sized(quick)
        chunks = human(self.chunk_size)
        return f"{count} x {human(size)}, {self.concurrency} at a time, {chunks} chunks"


SCENARIOS = {
    s.key: s
    for s in [
        Scenario(
            "big",
            "one 1 GiB upload, 8 MiB PATCHes",
            1,
            GiB,
            1,
            8 * MiB,
            latency="request",
            quick_size=256 * MiB,
        ),
        Scenario(
            "parallel",
            "8 x 50 MiB in parallel",
            8,
            50 * MiB,
            8,
            8 * MiB,
            latency="request",
            quick_size=16 * MiB,
        ),
        Scenario(
            "photos",
            "200 photos of 300 KiB, 16 at a time, POST + PATCH",
            200,
            300 * KiB,
            16,
            8 * MiB,
            quick_count=100,
        ),
        Scenario(
            "photos-cwu",
            "200 photos of 300 KiB, 16 at a time, creation-with-upload",
            200,
            300 * KiB,
            16,
            8 * MiB,
            with_upload=True,
            quick_count=100,
        ),
    ]
}


def human(n: int) -> str:
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} B"


@dataclass
class Measurement:
    scenario: str
    server: str
    rep: int
    uploads: int
    bytes: int
    seconds: float
    mb_per_s: float
    uploads_per_s: float
    p50_ms: float
    p95_ms: float
    cpu_seconds: float
    cpu_per_gib: float
    peak_rss_mb: float
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def make_payloads(scenario: Scenario, pool: Pool, quick: bool) -> list[Payload]:
    count, size = scenario.sized(quick)
    payloads = loadgen.pool_payloads(pool, count, size, f"{scenario.key}-")
    for p in payloads:  # hashed before any clock starts
        p.sha256()
    return payloads


def measure(scenario: Scenario, server: Server, payloads: list[Payload], rep: int) -> Measurement:
    pids = server.pids()
    cpu_before = cpu_seconds(pids)
    with PeakRss(server.worker_pids()) as peak:
        run = loadgen.run_uploads(
            server,
            payloads,
            concurrency=scenario.concurrency,
            chunk_size=scenario.chunk_size,
            with_upload=scenario.with_upload,
        )
    # The last responses are in; give the kernel a moment to account the CPU of the workers.
    time.sleep(0.05)
    cpu = cpu_seconds(pids) - cpu_before
    errors = list(run.errors)
    errors += loadgen.verify(server, run.uploads)
    if len(run.uploads) != len(payloads) and not run.errors:
        errors.append(f"{len(payloads) - len(run.uploads)} uploads missing")
    if scenario.latency == "request":
        latencies = [t for u in run.uploads for t in u.request_seconds]
    else:
        latencies = [u.seconds for u in run.uploads]
    seconds = run.seconds
    done = len(run.uploads)
    return Measurement(
        scenario=scenario.key,
        server=server.name,
        rep=rep,
        uploads=done,
        bytes=run.bytes,
        seconds=seconds,
        mb_per_s=run.bytes / seconds / MB if seconds else 0.0,
        uploads_per_s=done / seconds if seconds else 0.0,
        p50_ms=loadgen.percentile(latencies, 50) * 1000,
        p95_ms=loadgen.percentile(latencies, 95) * 1000,
        cpu_seconds=cpu,
        cpu_per_gib=cpu / (run.bytes / GiB) if run.bytes else float("nan"),
        peak_rss_mb=peak.max_peak() / MB,
        errors=errors[:20],
    )


def warm_up(server: Server, pool: Pool) -> None:
    """A few small uploads on every thread so imports, connections and caches are warm."""
    payloads = loadgen.pool_payloads(pool, 32, 64 * KiB, "warm-")
    run = loadgen.run_uploads(server, payloads, concurrency=16, chunk_size=MiB)
    if run.errors:
        raise RuntimeError(f"{server.name} fails its warm-up: {run.errors[:3]}")
    server.cleanup()


@dataclass
class MemoryStep:
    label: str
    concurrency: int
    chunk_size: int
    growth_mb: dict[int, float]  # per worker: peak RSS minus RSS before the step
    per_upload_mb: float  # all workers' growth / concurrent uploads
    limit_mb: float
    kind: str  # "per-upload" or "whole-file"
    errors: list[str]

    @property
    def passed(self) -> bool:
        value = self.per_upload_mb if self.kind == "per-upload" else max(self.growth_mb.values())
        return not self.errors and value < self.limit_mb


PER_UPLOAD_LIMIT_MB = 10.0
BIG_FILE_LIMIT_MB = 30.0


def memory_steps(quick: bool) -> list[tuple[str, int, int, int, bool, str]]:
    """(label, concurrency, upload length, chunk size, creation-with-upload, kind)."""
    big = 256 * MiB if quick else GiB
    sizes = [MiB, 16 * MiB, 64 * MiB] if quick else [MiB, 16 * MiB, 64 * MiB, 256 * MiB]
    concurrency = 4
    steps = [(f"one {human(big)} upload in one PATCH", 1, big, big, False, "whole-file")]
    steps.append((f"one {human(big)} upload, 8 MiB PATCHes", 1, big, 8 * MiB, False, "whole-file"))
    for size in sizes:
        label = f"{concurrency} concurrent uploads, {human(size)} PATCHes"
        steps.append((label, concurrency, 2 * size, size, False, "per-upload"))
    for size in sizes:
        label = f"{concurrency} concurrent POSTs with a {human(size)} body"
        steps.append((label, concurrency, size, size, True, "per-upload"))
    return steps


def measure_memory(server: Server, pool: Pool, quick: bool) -> list[MemoryStep]:
    """Peak RSS growth of the workers of a freshly started, warmed-up server, smallest chunks
    first (so memory that a step leaves cached in the allocator cannot hide a later step)."""
    results = []
    ordered = sorted(memory_steps(quick), key=lambda s: (s[3], s[4], s[1]))
    for label, concurrency, length, chunk, with_upload, kind in ordered:
        payloads = loadgen.pool_payloads(pool, concurrency, length, "mem-")
        workers = server.worker_pids()
        with PeakRss(workers) as peak:
            run = loadgen.run_uploads(
                server,
                payloads,
                concurrency=concurrency,
                chunk_size=chunk,
                with_upload=with_upload,
            )
        errors = run.errors + loadgen.verify(server, run.uploads)
        server.cleanup()
        growth = {pid: g / MB for pid, g in peak.growth().items()}
        limit = PER_UPLOAD_LIMIT_MB if kind == "per-upload" else BIG_FILE_LIMIT_MB
        results.append(
            MemoryStep(
                label,
                concurrency,
                chunk,
                growth,
                sum(growth.values()) / concurrency,
                limit,
                kind,
                errors[:5],
            )
        )
    return results
