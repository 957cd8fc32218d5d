"""prometheus_client's multiprocess mode under gunicorn: every worker writes its samples to files
in one folder, /metrics adds them up; a dead worker's live gauges are dropped.

The folder must be set (and emptied) before prometheus_client is first imported, which happens in
the workers (the app is not preloaded): gunicorn.conf.py calls prepare() from on_starting."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"
_created: list[str] = []


def prepare() -> str:
    """Use $PROMETHEUS_MULTIPROC_DIR (emptied of an earlier run's samples) or a new folder."""
    path = os.environ.get(ENV)
    if path:
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):
            stale.unlink(missing_ok=True)
    else:
        path = tempfile.mkdtemp(prefix="tuscam-metrics-")
        _created.append(path)
        os.environ[ENV] = path
    return path


def worker_exited(pid: int) -> None:
    """gunicorn's child_exit: drop the dead worker's live gauges (its counters stay counted)."""
    if not os.environ.get(ENV):
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)


def cleanup() -> None:
    """gunicorn's on_exit: remove a folder prepare() made."""
    while _created:
        shutil.rmtree(_created.pop(), ignore_errors=True)
