"""Operations tests: a real Prometheus (Debian's package) scraping a live tuscam, JSON logs read
back line by line, readiness against a PostgreSQL server that is stopped and started."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.support.server import LiveServer, free_port, start_live_server

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "prometheus"


def need(binary: str) -> None:
    if not Path(binary).exists():
        if os.environ.get("CI"):
            raise RuntimeError(f"{binary} is missing: scripts/system-deps.sh installs it")
        pytest.skip(f"{binary} is missing (Debian package prometheus)")


@dataclass
class Prometheus:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def query(self, expr: str) -> list[dict]:
        r = requests.get(self.url + "/api/v1/query", params={"query": expr}, timeout=10)
        r.raise_for_status()
        body = r.json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def value(self, expr: str) -> float | None:
        """The value of a query that yields one series (None while it yields none)."""
        result = self.query(expr)
        if not result:
            return None
        assert len(result) == 1, result
        return float(result[0]["value"][1])

    def wait_for(
        self, expr: str, check: Callable[[float | None], bool], timeout: float = 30
    ) -> float | None:
        """Poll until check(value) holds: scrapes come every second."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.value(expr)
            if check(value):
                return value
            time.sleep(0.5)
        raise AssertionError(f"{expr} stayed at {value}\n{self.log_path.read_text()[-3000:]}")


@pytest.fixture
def metrics_token() -> str:
    return "metrics-" + secrets.token_urlsafe(24)


@pytest.fixture
def live(tmp_path: Path, metrics_token: str) -> Iterator[LiveServer]:
    """tuscam under gunicorn, 2 workers, JSON logs, a metrics token."""
    env = {"TUSCAM_LOG_FORMAT": "json", "TUSCAM_METRICS_TOKEN": metrics_token}
    with start_live_server(tmp_path / "server", workers=2, env=env) as server:
        yield server


@pytest.fixture
def prometheus(tmp_path: Path, live: LiveServer, metrics_token: str) -> Iterator[Prometheus]:
    """Debian's Prometheus scraping `live` every second, with the example alert rules."""
    need(PROMETHEUS)
    folder = tmp_path / "prometheus"
    folder.mkdir()
    shutil.copy(DOCS / "tuscam-alerts.yml", folder)
    (folder / "tuscam-metrics-token").write_text(metrics_token)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["tuscam-alerts.yml"],
        "scrape_configs": [
            {
                "job_name": "tuscam",
                "authorization": {"type": "Bearer", "credentials_file": "tuscam-metrics-token"},
                "static_configs": [{"targets": [f"127.0.0.1:{live.port}"]}],
            }
        ],
    }
    (folder / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    port = free_port()
    log_path = folder / "prometheus.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    prom = Prometheus(f"http://127.0.0.1:{port}", proc, log_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{log_path.read_text()}")
            try:
                if requests.get(prom.url + "/-/ready", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"prometheus did not start:\n{log_path.read_text()}")
            time.sleep(0.2)
        prom.wait_for('up{job="tuscam"}', lambda v: v == 1)
        yield prom
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
