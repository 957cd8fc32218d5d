"""gunicorn settings for tuscam: gthread workers (blocking I/O per thread suits chunked uploads).

WORKERS, THREADS, HOST, PORT and TIMEOUT come from the environment.
"""

import os

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
# Same access lines as gunicorn's default format, without its per-request atoms dict.
logger_class = "app.accesslog.AccessLogger"
loglevel = os.environ.get("LOG_LEVEL", "info")
# Header limits stay at gunicorn's defaults (8190 bytes per field); tus metadata is capped below.
wsgi_app = "app.wsgi:app"


def post_worker_init(worker):  # noqa: ANN001, ANN201 - gunicorn hook signature
    worker.log.info("tuscam worker %s ready", worker.pid)
