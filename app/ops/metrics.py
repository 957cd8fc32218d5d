"""The Prometheus metrics (names and labels are the contract, README "Operations") and the
exposition: one worker's registry, or under gunicorn every worker's files added up."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector

# `tuscam_tus_uploads_created_created` and the like would only confuse; multiprocess mode never
# exports them either.
disable_created_metrics()

METHODS = frozenset({"OPTIONS", "POST", "HEAD", "PATCH", "DELETE", "GET"})
CAPTURE_STATUSES = ("accepted", "rejected", "duplicate")

TUS_REQUESTS = Counter(
    "tuscam_tus_requests_total", "tus requests answered, by method and status", ["method", "status"]
)
TUS_BYTES = Counter(
    "tuscam_tus_bytes_received_total",
    "upload bytes stored: the Upload-Offset a PATCH moved, the body a creating POST carried",
)
TUS_CREATED = Counter("tuscam_tus_uploads_created_total", "uploads created (POST answered 201)")
TUS_FINISHED = Counter(
    "tuscam_tus_uploads_finished_total", "uploads whose finish hook ran to the end (once each)"
)
TUS_TERMINATED = Counter(
    "tuscam_tus_uploads_terminated_total", "uploads terminated by their client (DELETE 204)"
)
TUS_IN_PROGRESS = Gauge(
    "tuscam_tus_uploads_in_progress",
    "tus requests currently receiving an upload body (PATCH, or POST with a body)",
    multiprocess_mode="livesum",
)
TUS_LOCK_WAIT = Histogram(
    "tuscam_tus_lock_wait_seconds",
    "time a tus request waited for an upload's lock (acquired or timed out)",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
TUS_LOCK_TIMEOUTS = Counter(
    "tuscam_tus_lock_timeouts_total", "lock waits that gave up (answered 423 Locked)"
)
CAPTURES = Counter("tuscam_captures_total", "finished uploads by capture status", ["status"])
CAPTURE_SECONDS = Histogram(
    "tuscam_capture_processing_seconds",
    "time the finish hook took: validate, thumbnail, store, record",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
FINISH_HOOK_ERRORS = Counter(
    "tuscam_finish_hook_errors_total", "finish hooks that raised (the upload is retried later)"
)
HTTP_REQUESTS = Counter(
    "tuscam_http_requests_total",
    "page and API requests answered, by method and status (tus has its own)",
    ["method", "status"],
)
HTTP_DURATION = Histogram(
    "tuscam_http_request_duration_seconds",
    "time to answer a page or API request, by route pattern and method (tus has its own)",
    ["route", "method"],
)
for _status in CAPTURE_STATUSES:
    CAPTURES.labels(_status)  # present at 0 from the start, so rate() and alerts see them


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def exposition(readiness: dict[str, bool]) -> bytes:
    """The text format for /metrics, with `tuscam_ready{check}` from this scrape's checks."""
    now = CollectorRegistry()
    ready = GaugeMetricFamily(
        "tuscam_ready", "1 when the readiness check passes (as GET /readyz)", labels=["check"]
    )
    for check, passed in readiness.items():
        ready.add_metric([check], 1.0 if passed else 0.0)
    now.register(_Fixed(ready))
    folder = multiprocess_dir()
    if folder is None:
        from prometheus_client import REGISTRY

        return generate_latest(REGISTRY) + generate_latest(now)
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=folder)
    registry.register(GunicornProcesses(os.getppid()))
    return generate_latest(registry) + generate_latest(now)


class _Fixed:
    def __init__(self, *families: Metric) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


class GunicornProcesses:
    """process_* metrics for the gunicorn master and its workers together: CPU seconds, memory
    and open descriptors summed, start time of the master. (A worker that exits takes its CPU
    seconds with it: a counter reset, which rate() handles.)"""

    SUMMED = ("process_cpu_seconds", "process_resident_memory_bytes", "process_open_fds")
    SUMMED += ("process_virtual_memory_bytes",)

    def __init__(self, master_pid: int) -> None:
        self.master_pid = master_pid

    def collect(self) -> Iterator[Metric]:
        pids = [self.master_pid, *_children(self.master_pid)]
        totals: dict[str, float] = {}
        start_time = None
        for pid in pids:
            for family in ProcessCollector(pid=lambda pid=pid: pid, registry=None).collect():
                for sample in family.samples:
                    if family.name in self.SUMMED:
                        totals[family.name] = totals.get(family.name, 0.0) + sample.value
                    elif family.name == "process_start_time_seconds" and pid == self.master_pid:
                        start_time = sample.value
        yield GaugeMetricFamily(
            "tuscam_processes", "gunicorn master and worker processes running", len(pids)
        )
        if "process_cpu_seconds" in totals:
            yield CounterMetricFamily(
                "process_cpu_seconds",
                "user and system CPU seconds of the master and its workers",
                totals["process_cpu_seconds"],
            )
        for name in self.SUMMED[1:]:
            if name in totals:
                yield GaugeMetricFamily(
                    name, f"{name} summed over master and workers", totals[name]
                )
        if start_time is not None:
            yield GaugeMetricFamily(
                "process_start_time_seconds", "start of the gunicorn master (Unix time)", start_time
            )


def _children(pid: int) -> Iterable[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]
