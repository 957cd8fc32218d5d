"""The example Prometheus files in docs/prometheus/ pass promtool, as an operator would use them:
the token file the scrape config names sits beside it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.ops.conftest import DOCS, PROMTOOL, need


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    need(PROMTOOL)
    return subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_promtool_accepts_the_scrape_config(tmp_path: Path) -> None:
    for name in ("prometheus.yml", "tuscam-alerts.yml"):
        shutil.copy(DOCS / name, tmp_path)
    (tmp_path / "tuscam-metrics-token").write_text("a-token-from-TUSCAM_METRICS_TOKEN")
    result = promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


def test_promtool_accepts_the_alert_rules() -> None:
    result = promtool("check", "rules", "tuscam-alerts.yml", cwd=DOCS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 5 rules found" in result.stdout


def test_the_alerts_fire_on_what_they_name() -> None:
    """promtool's rule unit tests (docs/prometheus/tuscam-alerts.test.yml)."""
    result = promtool("test", "rules", "tuscam-alerts.test.yml", cwd=DOCS)
    assert result.returncode == 0, result.stdout + result.stderr
