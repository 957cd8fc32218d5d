"""A real tuscam server for tests: gunicorn (gthread) on a free port of 127.0.0.1, with its own
database and data folder, plus helpers to create users, tokens and capture sessions."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth import hash_password, new_token
from app.cli import upgrade_database
from services.models import User

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).parent / "gunicorn"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(count: int) -> list[int]:
    """`count` different free ports (each held until all are chosen)."""
    held = [socket.socket() for _ in range(count)]
    try:
        for s in held:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in held]
    finally:
        for s in held:
            s.close()


class ApiSession(requests.Session):
    """requests.Session with a base URL and a bearer token."""

    def __init__(self, base_url: str, token: str | None) -> None:
        super().__init__()
        self.base_url = base_url
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    def request(self, method: str, url: str, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        if url.startswith("/"):
            url = self.base_url + url
        kwargs.setdefault("timeout", 30)
        return super().request(method, url, *args, **kwargs)


@dataclass
class LiveServer:
    url: str
    data_dir: Path
    database_url: str
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    log_path: Path
    _engine: object = field(default=None, repr=False)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def db(self) -> Session:
        if self._engine is None:
            from app.db import make_engine

            self._engine = make_engine(self.database_url)
        return Session(self._engine, expire_on_commit=False)  # type: ignore[arg-type]

    def worker_pids(self) -> list[int]:
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == self.proc.pid:
                pids.append(int(entry.name))
        return sorted(pids)

    def workers_ready(self, workers: int) -> bool:
        """At least `workers` workers run and each has loaded the app and is accepting
        (gunicorn.conf.py's post_worker_init logs it): a forked worker may still be booting."""
        pids = self.worker_pids()
        log = self.log()
        return len(pids) >= workers and all(f"tuscam worker {pid} ready" in log for pid in pids)

    def create_user(
        self, username: str, role: str = "operator", password: str | None = None
    ) -> str:
        password = password or secrets.token_urlsafe(12)
        with self.db() as db:
            db.add(User(username=username, role=role, password_hash=hash_password(password)))
            db.commit()
        return password

    def create_token(self, username: str) -> str:
        with self.db() as db:
            user = db.scalar(select(User).where(User.username == username))
            assert user is not None, f"no user {username}"
            token = new_token(db, user, "test")
            db.commit()
        return token

    def api(self, token: str | None = None) -> ApiSession:
        return ApiSession(self.url, token)

    def new_operator(self, prefix: str = "op") -> tuple[str, str]:
        """A fresh operator and its token: (username, token)."""
        name = f"{prefix}-{secrets.token_hex(4)}"
        self.create_user(name, "operator")
        return name, self.create_token(name)

    def new_capture_session(self, token: str, label: str = "session") -> tuple[int, int]:
        api = self.api(token)
        r = api.post("/api/assessments", json={"title": f"assessment {label}"})
        r.raise_for_status()
        assessment_id = r.json()["id"]
        r = api.post(f"/api/assessments/{assessment_id}/sessions", json={"label": label})
        r.raise_for_status()
        return assessment_id, r.json()["id"]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._engine is not None:
            self._engine.dispose()  # type: ignore[attr-defined]


@contextlib.contextmanager
def start_live_server(
    tmp_dir: Path,
    *,
    workers: int = 2,
    threads: int = 4,
    env: dict[str, str] | None = None,
    database_url: str | None = None,
    port: int | None = None,
    migrate: bool = True,
) -> Iterator[LiveServer]:
    tmp_dir.mkdir(parents=True, exist_ok=True)
    data_dir = tmp_dir / "data"
    database_url = database_url or f"sqlite:///{tmp_dir / 'tuscam.sqlite3'}"
    if migrate:  # alembic's context is global: servers started in threads migrate first, once
        upgrade_database(database_url)
    port = port or free_port()
    server_env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WORKERS": str(workers),
        "THREADS": str(threads),
        "TUSCAM_DATABASE_URL": database_url,
        "TUSCAM_DATA_DIR": str(data_dir),
        "TUSCAM_SECRET_KEY": secrets.token_hex(16),
        "ACCESS_LOG": str(tmp_dir / "access.log"),
        "LOG_LEVEL": "info",  # workers_ready() reads the "tuscam worker <pid> ready" lines
        **(env or {}),
    }
    log_path = tmp_dir / "gunicorn.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(GUNICORN), "-c", str(ROOT / "gunicorn.conf.py")],
            cwd=ROOT,
            env=server_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = LiveServer(
        url=f"http://127.0.0.1:{port}",
        data_dir=data_dir,
        database_url=database_url,
        env=server_env,
        proc=proc,
        log_path=log_path,
    )
    try:
        _wait_ready(server, workers)
        yield server
    finally:
        server.stop()


def _wait_ready(server: LiveServer, workers: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited early:\n{server.log()}")
        try:
            if requests.get(server.url + "/healthz", timeout=2).ok and server.workers_ready(
                workers
            ):
                return
        except requests.RequestException:
            pass  # not listening yet, or busy starting
        time.sleep(0.1)
    raise RuntimeError(f"gunicorn did not become ready:\n{server.log()}")
