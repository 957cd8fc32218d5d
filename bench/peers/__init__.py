"""Start the servers of the benchmarks on 127.0.0.1: tuscam and its peers.

Every server is started the same way (2 worker processes; 8 threads each for the WSGI ones) and
described by a `Server`: where its tus collection is, which processes serve it (for CPU and
memory), where the bytes land (to check them) and how to clean up between runs.
The peers are installed by bench/peers/install.sh into bench/.peers/ (git-ignored).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests

from bench.procs import process_tree, worker_pids

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PEERS = HERE.parent / ".peers"
VENV_BIN = Path(sys.executable).parent
WORKERS = 2
THREADS = 8

# name -> what it is, for the report
DESCRIPTIONS = {
    "tuscam": "tuscam (Flask, gunicorn gthread 2x8)",
    "tus-node": "@tus/server + @tus/file-store (Node cluster, 2 processes)",
    "tuspyserver": "tuspyserver (FastAPI, uvicorn 2 workers)",
    "plain-flask": "plain Flask streaming POST, no tus (gunicorn gthread 2x8)",
    "sink": "tus sink, discards everything (bare WSGI, gunicorn gthread 2x8)",
}
SERVERS = tuple(DESCRIPTIONS)
TUS_PEERS = ("tus-node", "tuspyserver")


@dataclass
class Server:
    name: str
    protocol: str  # "tus", or "post" for one plain streaming POST per file
    url: str  # the tus collection (…/files/) or the POST prefix (…/upload/)
    root_pid: int
    files_dir: Path | None  # where uploaded bytes land; None for the sink
    headers: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    supports_head: bool = True
    extra: dict[str, object] = field(default_factory=dict)
    fetch_url: Callable[[str], str] | None = None  # GET the stored bytes (tuscam)

    def pids(self) -> list[int]:
        return process_tree(self.root_pid)

    def worker_pids(self) -> list[int]:
        return worker_pids(self.root_pid)

    def stored_file(self, upload_url: str) -> Path | None:
        if self.files_dir is None:
            return None
        return self.files_dir / urlsplit(upload_url).path.rstrip("/").rsplit("/", 1)[-1]

    def cleanup(self) -> None:
        """Remove the files the last run stored (the disk is small next to the uploads). Folders
        stay, as on a server that has been running a while: tuscam's capture store keeps files
        in 256 folders, and making them again for every repetition measured a fresh install's
        first captures rather than a running server."""
        for directory in [self.files_dir, *self.extra.get("clean_dirs", [])]:  # type: ignore[misc]
            if directory is None or not Path(directory).is_dir():
                continue
            for root, _dirs, files in os.walk(directory):
                for name in files:
                    Path(root, name).unlink(missing_ok=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: server exited early:\n{log.read_text(errors='replace')}")
        try:
            requests.options(url, headers={"Tus-Resumable": "1.0.0"}, timeout=2)
            if len(worker_pids(proc.pid)) >= WORKERS:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url}: not ready after {timeout}s:\n{log.read_text(errors='replace')}")


@contextlib.contextmanager
def _process(
    argv: list[str], url: str, tmp: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    log = tmp / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv,
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_ready(proc, url, log)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _gunicorn(module: str, port: int) -> list[str]:
    return [
        str(VENV_BIN / "gunicorn"),
        "--chdir",
        str(HERE),
        "--worker-class",
        "gthread",
        "--workers",
        str(WORKERS),
        "--threads",
        str(THREADS),
        "--bind",
        f"127.0.0.1:{port}",
        "--keep-alive",
        "5",
        "--timeout",
        "120",
        "--log-level",
        "warning",
        module,
    ]


@contextlib.contextmanager
def start_tus_node(tmp: Path) -> Iterator[Server]:
    node_dir = PEERS / "node"
    if not (node_dir / "node_modules" / "@tus" / "server").is_dir():
        raise RuntimeError("@tus/server is not installed: run bench/peers/install.sh")
    # ESM resolves packages from the script's own folder, so the script runs from node_dir.
    script = node_dir / "tus_node_server.mjs"
    shutil.copyfile(HERE / "tus_node_server.mjs", script)
    files = tmp / "files"
    files.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}/files/"
    argv = ["node", str(script), str(port), str(files), str(WORKERS)]
    with _process(argv, url, tmp) as proc:
        yield Server("tus-node", "tus", url, proc.pid, files)


@contextlib.contextmanager
def start_tuspyserver(tmp: Path) -> Iterator[Server]:
    uvicorn = PEERS / "venv" / "bin" / "uvicorn"
    if not uvicorn.exists():
        raise RuntimeError("tuspyserver is not installed: run bench/peers/install.sh")
    files = tmp / "files"
    files.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}/files/"
    argv = [
        str(uvicorn),
        "tuspy_app:app",
        "--app-dir",
        str(HERE),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(WORKERS),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    with _process(argv, url, tmp, {"BENCH_TUSPY_DIR": str(files)}) as proc:
        server = Server("tuspyserver", "tus", url, proc.pid, files)
        # uvicorn's multiprocess supervisor also forks a small resource tracker; the workers
        # are the children that run the app (the large ones), which PeakRss takes the max of.
        yield server


@contextlib.contextmanager
def start_plain_flask(tmp: Path) -> Iterator[Server]:
    files = tmp / "files"
    files.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = _gunicorn("plain_flask:app", port)
    with _process(argv, base + "/", tmp, {"BENCH_PLAIN_DIR": str(files)}) as proc:
        yield Server("plain-flask", "post", base + "/upload/", proc.pid, files, supports_head=False)


@contextlib.contextmanager
def start_sink(tmp: Path) -> Iterator[Server]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/files/"
    with _process(_gunicorn("tus_sink:app", port), url, tmp) as proc:
        yield Server("sink", "tus", url, proc.pid, None, supports_head=False)


TUSCAM_ENV = {
    "TUSCAM_MAX_UPLOAD_BYTES": str(8 * 1024**3),
    "TUSCAM_TUS_MAX_UNFINISHED_PER_USER": "100000",
    "TUSCAM_UPLOAD_EXPIRY": "86400",
}


def _patient_readiness_probe() -> None:
    """The test support's readiness probe gives /healthz 2 s and stops at the first read
    timeout; on a machine busy with other people's tests a worker's first request can take
    longer. Retry the probe on timeouts (in this process only) until 90 s have passed."""
    import tests.support.server as support

    original = support._wait_ready
    if getattr(original, "bench_patient", False):
        return

    def patient(server: object, workers: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + 90
        while True:
            try:
                return original(server, workers, timeout)
            except requests.Timeout:
                if time.monotonic() > deadline:
                    raise

    patient.bench_patient = True  # type: ignore[attr-defined]
    support._wait_ready = patient


@contextlib.contextmanager
def start_tuscam(
    tmp: Path, env: dict[str, str] | None = None, *, database_url: str | None = None
) -> Iterator[Server]:
    """tuscam under gunicorn through the lead's test support (tests/support/server.py), with
    one operator and one open capture session to upload to."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.support.server import start_live_server

    _patient_readiness_probe()
    with start_live_server(
        tmp,
        workers=WORKERS,
        threads=THREADS,
        env={**TUSCAM_ENV, **(env or {})},
        database_url=database_url,
    ) as live:
        _user, token = live.new_operator("bench")
        assessment_id, session_id = live.new_capture_session(token, "bench")
        uploads = live.data_dir / "uploads"
        server = Server(
            "tuscam",
            "tus",
            live.url + "/files/",
            live.proc.pid,
            uploads,
            headers={"Authorization": f"Bearer {token}"},
            metadata={"session_id": str(session_id), "assessment_id": str(assessment_id)},
            extra={"live": live, "clean_dirs": [live.data_dir / "captures"]},
            fetch_url=lambda upload_url: upload_url,
        )
        yield server


STARTERS: dict[str, Callable[[Path], contextlib.AbstractContextManager[Server]]] = {
    "tuscam": start_tuscam,
    "tus-node": start_tus_node,
    "tuspyserver": start_tuspyserver,
    "plain-flask": start_plain_flask,
    "sink": start_sink,
}


def start(
    name: str, tmp: Path, tuscam_env: dict[str, str] | None = None
) -> contextlib.AbstractContextManager[Server]:
    """Start a server with its data under tmp; tuscam_env is extra environment for tuscam."""
    tmp.mkdir(parents=True, exist_ok=True)
    if name == "tuscam":
        return start_tuscam(tmp, tuscam_env)
    return STARTERS[name](tmp)
