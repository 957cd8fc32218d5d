"""Debian's nginx in a temporary folder on a free loopback port, round robin over tuscam nodes,
configured for tus as the README advises (bodies streamed, never replayed to another node).

Each response names the node that answered in `X-Upstream` (its address), so tests can prove
that consecutive requests land on different nodes; the access log has it too."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.server import free_port

NGINX = "/usr/sbin/nginx"

CONFIG = """\
daemon off;
worker_processes 1;
{user}
pid {base}/nginx.pid;
error_log {base}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    client_body_temp_path {base}/body;
    proxy_temp_path {base}/proxy;
    fastcgi_temp_path {base}/fastcgi;
    uwsgi_temp_path {base}/uwsgi;
    scgi_temp_path {base}/scgi;
    log_format nodes '$remote_addr "$request" $status $body_bytes_sent '
                     'upstream=$upstream_addr upstream_status=$upstream_status '
                     'location=$sent_http_location $request_time';
    access_log {base}/access.log nodes;
    upstream tuscam {{
{servers}
        keepalive 32;
    }}
    server {{
        listen {host}:{port};
        client_max_body_size 0;          # tus limits sizes itself (Tus-Max-Size)
        location / {{
            proxy_pass http://tuscam;
            proxy_http_version 1.1;      # keep-alive and chunked bodies to gunicorn
            proxy_set_header Connection "";
            proxy_request_buffering off; # stream PATCH bodies: resume needs the bytes as they come
            proxy_buffering off;
            proxy_next_upstream off;     # never replay a PATCH to another node
            proxy_read_timeout 300s;
            proxy_send_timeout 300s;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
            add_header X-Upstream $upstream_addr always;
        }}
    }}
}}
"""


def nginx_available() -> bool:
    return Path(NGINX).exists()


@dataclass
class Nginx:
    base: Path
    host: str
    port: int
    upstreams: list[str]  # "127.0.0.1:PORT" of each node
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def access_log(self) -> str:
        path = self.base / "access.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def error_log(self) -> str:
        path = self.base / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: finish open requests
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.base, ignore_errors=True)


def start_nginx(upstreams: list[str], *, host: str = "127.0.0.1", port: int | None = None) -> Nginx:
    """nginx in front of `upstreams` ("HOST:PORT" each), listening on host:port (free if None)."""
    if not nginx_available():
        raise RuntimeError(f"{NGINX} not found: apt-get install nginx-light")
    base = Path(tempfile.mkdtemp(prefix="tuscam-nginx-"))
    port = port or free_port()
    # As root nginx would switch its worker to `nobody`, who cannot use this private folder.
    user = "user root root;" if os.geteuid() == 0 else ""
    servers = "\n".join(f"        server {u} max_fails=1 fail_timeout=2s;" for u in upstreams)
    conf = base / "nginx.conf"
    conf.write_text(CONFIG.format(base=base, host=host, port=port, servers=servers, user=user))
    proc = subprocess.Popen(
        [NGINX, "-p", str(base), "-c", str(conf), "-e", str(base / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Nginx(base=base, host=host, port=port, upstreams=upstreams, proc=proc)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = server.error_log()
            shutil.rmtree(base, ignore_errors=True)
            raise RuntimeError(f"nginx exited early:\n{log}")
        try:
            socket.create_connection((host, port), timeout=1).close()
            return server
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise RuntimeError("nginx did not start listening within 20 s")
