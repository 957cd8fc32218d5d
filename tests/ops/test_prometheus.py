"""A real Prometheus scrapes tuscam (gunicorn, 2 workers): what it reports after tus uploads,
a rejected image and requests spread over both workers; who may read /metrics."""

from __future__ import annotations

import json
import os
import signal
import socket
import time

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.ops.conftest import Prometheus
from tests.support import images
from tests.support.server import LiveServer
from tests.support.tus import TUS, TusClient, capture_metadata, encode_metadata


def scrape(live: LiveServer, token: str) -> dict[tuple[str, tuple], float]:
    """/metrics read directly: (sample name, sorted labels) -> value."""
    r = requests.get(
        live.url + "/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert r.status_code == 200, r.text
    samples = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_answer_only_the_metrics_token_or_an_admin(
    live: LiveServer, metrics_token: str
) -> None:
    live.create_user("chief", "admin")
    admin = live.create_token("chief")
    _, operator = live.new_operator()
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Bearer {operator}"},
        {"Authorization": f"Basic {metrics_token}"},
    ):
        r = requests.get(live.url + "/metrics", headers=headers, timeout=10)
        assert r.status_code == 401, headers
        assert r.json()["error"] == "unauthorized" and "TUSCAM_METRICS_TOKEN" in r.json()["message"]
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    for token in (metrics_token, admin):
        r = requests.get(live.url + "/metrics", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200
        assert "tuscam_tus_uploads_finished_total" in r.text
        assert r.headers["Content-Type"].startswith("text/plain")


def test_prometheus_counts_uploads_bytes_and_a_rejected_capture(
    live: LiveServer, prometheus: Prometheus
) -> None:
    _, token = live.new_operator()
    _, session_id = live.new_capture_session(token)
    tus = TusClient(live.url, token)
    sent = 0
    photos = [images.jpeg(64 + i, 48, color=(i * 20, 100, 50)) for i in range(5)]
    for i, photo in enumerate(photos):
        # Two PATCHes each, so bytes are counted from Upload-Offset moves, not just once.
        _, last = tus.upload(photo, capture_metadata(session_id, f"p{i}.jpg"), chunk=400)
        assert last.headers["Tuscam-Capture-Status"] == "accepted"
        sent += len(photo)
    broken = images.truncated_jpeg()
    _, last = tus.upload(broken, capture_metadata(session_id, "broken.jpg"))
    assert last.headers["Tuscam-Capture-Status"] == "rejected"
    sent += len(broken)
    # creation-with-upload: the whole file in the POST.
    whole = images.jpeg(90, 60)
    r = tus.http.post(
        live.url + "/files/",
        data=whole,
        headers={
            "Upload-Length": str(len(whole)),
            "Upload-Metadata": encode_metadata(capture_metadata(session_id, "whole.jpg")),
            "Content-Type": "application/offset+octet-stream",
        },
        timeout=30,
    )
    assert r.status_code == 201 and r.headers["Tuscam-Capture-Status"] == "accepted"
    sent += len(whole)
    uploads = len(photos) + 2

    prometheus.wait_for("tuscam_tus_uploads_finished_total", lambda v: v == uploads)
    # The last request's own counts are taken as it ends, a moment after its finish hook ran
    # (a scrape may fall between the two); its bytes are counted last of them.
    prometheus.wait_for("tuscam_tus_bytes_received_total", lambda v: v is not None and v >= sent)
    assert prometheus.value("tuscam_tus_uploads_created_total") == uploads
    assert prometheus.value('tuscam_captures_total{status="rejected"}') == 1
    assert prometheus.value('tuscam_captures_total{status="accepted"}') == uploads - 1
    assert prometheus.value('tuscam_captures_total{status="duplicate"}') == 0
    assert prometheus.value("tuscam_capture_processing_seconds_count") == uploads
    assert prometheus.value('sum(tuscam_tus_requests_total{method="PATCH",status="204"})') == (
        2 * len(photos) + 1
    )
    assert prometheus.value("tuscam_finish_hook_errors_total") == 0
    assert prometheus.value("tuscam_tus_uploads_in_progress") == 0
    assert prometheus.value('min(tuscam_ready{check=~"database|storage"})') == 1
    assert prometheus.value("tuscam_processes") == 3  # the master and two workers
    assert prometheus.value("process_resident_memory_bytes") > 10e6
    # Pages and the API: the route pattern, never the path with its ids.
    routes = {
        series["metric"]["route"]
        for series in prometheus.query("tuscam_http_request_duration_seconds_count")
    }
    assert "/api/assessments/<int:assessment_id>/sessions" in routes
    assert not any(any(ch.isdigit() for ch in route) for route in routes)
    # No label anywhere carries an upload id, a user name or a path.
    everything = prometheus.query('{__name__=~"tuscam_.*"}')
    labels = {value for series in everything for value in series["metric"].values()}
    assert not any(len(value) == 32 and value.isalnum() for value in labels)
    assert not any(value.startswith("/files") or value.startswith("op-") for value in labels)


def test_counters_add_up_across_both_workers(
    live: LiveServer, metrics_token: str, prometheus: Prometheus
) -> None:
    requests_made = 60
    for _ in range(requests_made):
        # A new connection each time: gunicorn's workers take turns accepting them.
        r = requests.options(live.url + "/files/", headers={"Connection": "close", **TUS})
        assert r.status_code in (200, 204)
    served_by = {
        line["pid"]
        for line in map(json.loads, (live.log_path.parent / "access.log").read_text().splitlines())
        if line.get("method") == "OPTIONS" and line.get("path") == "/files/"
    }
    assert len(served_by) == 2, served_by  # both workers answered some
    direct = scrape(live, metrics_token)
    counted = sum(
        value
        for (name, labels), value in direct.items()
        if name == "tuscam_tus_requests_total" and ("method", "OPTIONS") in labels
    )
    assert counted == requests_made
    prometheus.wait_for(
        'sum(tuscam_tus_requests_total{method="OPTIONS"})', lambda v: v == requests_made
    )


def test_in_progress_counts_bodies_being_received(live: LiveServer, metrics_token: str) -> None:
    _, token = live.new_operator()
    _, session_id = live.new_capture_session(token)
    tus = TusClient(live.url, token)
    url = tus.create(1000, capture_metadata(session_id))
    path = url.split("://", 1)[1].split("/", 1)[1]
    with socket.create_connection(("127.0.0.1", live.port)) as sock:
        sock.sendall(
            (
                f"PATCH /{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                "Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Length: 1000\r\n"
                "Content-Type: application/offset+octet-stream\r\n\r\n"
            ).encode()
            + b"x" * 300
        )
        deadline = time.monotonic() + 10
        while scrape(live, metrics_token)[("tuscam_tus_uploads_in_progress", ())] != 1:
            assert time.monotonic() < deadline, "the PATCH never showed as in progress"
            time.sleep(0.1)
        sock.sendall(b"x" * 700)
        assert sock.recv(4096).startswith(b"HTTP/1.1 204")
    assert scrape(live, metrics_token)[("tuscam_tus_uploads_in_progress", ())] == 0
    assert tus.offset(url) == 1000


def test_a_killed_workers_body_leaves_the_gauge_and_its_counts_stay(
    live: LiveServer, metrics_token: str
) -> None:
    """gunicorn's child_exit marks the worker dead: its live gauge goes, its counters remain."""
    _, token = live.new_operator()
    _, session_id = live.new_capture_session(token)
    tus = TusClient(live.url, token)
    urls = [tus.create(1000, capture_metadata(session_id)) for _ in range(4)]
    sockets = []
    try:
        for url in urls[:2]:
            sock = socket.create_connection(("127.0.0.1", live.port))
            sockets.append(sock)
            path = url.split("://", 1)[1].split("/", 1)[1]
            sock.sendall(
                (
                    f"PATCH /{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}"
                    "\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Length: 1000\r\n"
                    "Content-Type: application/offset+octet-stream\r\n\r\n"
                ).encode()
                + b"x" * 100
            )
        deadline = time.monotonic() + 10
        while scrape(live, metrics_token)[("tuscam_tus_uploads_in_progress", ())] != 2:
            assert time.monotonic() < deadline, "the PATCHes never showed as in progress"
            time.sleep(0.1)
        # The gauge rises before a handler has read its body: wait until both are stored.
        while not all(tus.offset(url) == 100 for url in urls[:2]):
            assert time.monotonic() < deadline, "the first 100 bytes were never stored"
            time.sleep(0.05)
        old = live.worker_pids()
        for pid in old:
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while not (set(live.worker_pids()).isdisjoint(old) and live.workers_ready(2)):
            assert time.monotonic() < deadline, "gunicorn did not replace its workers"
            time.sleep(0.1)
    finally:
        for sock in sockets:
            sock.close()
    after = scrape(live, metrics_token)
    assert after[("tuscam_tus_uploads_in_progress", ())] == 0
    assert after[("tuscam_tus_uploads_created_total", ())] == 4  # counted by the dead workers
    assert tus.offset(urls[0]) == 100  # and the bytes received before the kill are kept
