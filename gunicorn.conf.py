"""gunicorn settings for tuscam: gthread workers (blocking I/O per thread suits chunked uploads).

WORKERS, THREADS, HOST, PORT, TIMEOUT and TUSCAM_LOG_FORMAT come from the environment.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from tuscam_gunicorn import jsonlog, memory, prometheus

worker_class = "gthread"
workers = int(os.environ.get("WORKERS", "6"))
threads = int(os.environ.get("THREADS", "16"))
bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
# gthread's timeout is the worker heartbeat, not a per-request limit: a long upload is not killed.
# Slow or silent upload bodies are dropped by the tus server's own idle timeout instead.
timeout = int(os.environ.get("TIMEOUT", "120"))
graceful_timeout = 30
keepalive = 5
accesslog = os.environ.get("ACCESS_LOG", "-")
errorlog = "-"
# text: gunicorn's default access lines, without its per-request atoms dict; json: one JSON
# object per line for everything the server writes (README "Operations").
LOG_FORMAT = os.environ.get("TUSCAM_LOG_FORMAT", "text").strip().lower()
if LOG_FORMAT not in ("text", "json"):
    raise ValueError(f"TUSCAM_LOG_FORMAT must be text or json, got {LOG_FORMAT!r}")
logger_class = (
    "tuscam_gunicorn.jsonlog.JsonLogger"
    if LOG_FORMAT == "json"
    else "tuscam_gunicorn.accesslog.AccessLogger"
)
loglevel = os.environ.get("LOG_LEVEL", "info")
# Header limits stay at gunicorn's defaults (8190 bytes per field); tus metadata is capped below.
wsgi_app = "app.wsgi:app"

if TYPE_CHECKING:
    from gunicorn.arbiter import Arbiter
    from gunicorn.workers.base import Worker


def post_worker_init(worker: Worker) -> None:
    worker.log.info("tuscam worker %s ready", worker.pid)


def on_starting(server: Arbiter) -> None:
    # Before any worker imports prometheus_client (tuscam_gunicorn/prometheus.py). With
    # preload_app the app would load in the master before this hook: keep it off.
    prometheus.prepare()


def post_fork(server: Arbiter, worker: Worker) -> None:
    jsonlog.route_app_logs(server.log)
    memory.release_large_blocks()  # a big upload's buffers do not stay in the worker


def child_exit(server: Arbiter, worker: Worker) -> None:
    prometheus.worker_exited(worker.pid)


def on_exit(server: Arbiter) -> None:
    prometheus.cleanup()
