"""Where tuscam's workers spend their time during a scenario: py-spy samples every worker
(`py-spy record --format raw`, collapsed stacks, idle threads left out) and the samples are
summed by function, both as "self" time and as "inclusive" time (the function is on the stack).

py-spy is a profiling tool, not a dependency of tuscam: `pip install py-spy` into .venv.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path


def py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def record(
    pids: list[int],
    out_dir: Path,
    action: Callable[[], object],
    rate: int = 250,
    *,
    gil: bool = False,
) -> list[Path]:
    """Run `action` while py-spy samples each pid; return the collapsed-stack files.

    By default a sample is any thread not idle (so time in fsync() or a lock counts: wall
    time); gil=True keeps only threads holding the GIL (Python CPU time)."""
    exe = py_spy()
    if exe is None:
        raise RuntimeError("py-spy is not installed: .venv/bin/pip install py-spy")
    out_dir.mkdir(parents=True, exist_ok=True)
    procs, files = [], []
    for pid in pids:
        path = out_dir / f"worker-{pid}.txt"
        files.append(path)
        procs.append(
            subprocess.Popen(
                [
                    exe,
                    "record",
                    "--pid",
                    str(pid),
                    "--format",
                    "raw",
                    "--rate",
                    str(rate),
                    "--output",
                    str(path),
                    "--nonblocking",
                    "--nolineno",
                    *(["--gil"] if gil else []),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    time.sleep(1.0)  # py-spy attaches
    try:
        action()
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
    return [f for f in files if f.exists()]


def _frames(line: str) -> tuple[list[str], int]:
    stack, _, count = line.rpartition(" ")
    return stack.split(";"), int(count)


def _short(frame: str) -> str:
    # "function (path/to/module.py)" -> "function (package/module.py)"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "/lib/python3", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})"


def summarize(files: list[Path], top: int = 25) -> str:
    """A plain-text table: the functions holding most samples, self and inclusive."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for path in files:
        for line in path.read_text(errors="replace").splitlines():
            if not line.strip():
                continue
            frames, count = _frames(line)
            frames = [
                _short(f)
                for f in frames
                if not f.startswith("process ") and not f.startswith("thread ")
            ]
            if not frames:
                continue
            total += count
            own[frames[-1]] += count
            for f in set(frames):
                inclusive[f] += count
    if not total:
        return "(no samples)"
    lines = [f"{total} samples of busy threads", "", "self %  function"]
    lines += [f"{100 * n / total:5.1f}  {f}" for f, n in own.most_common(top)]
    lines += ["", "incl %  function"]
    lines += [f"{100 * n / total:5.1f}  {f}" for f, n in inclusive.most_common(top)]
    return "\n".join(lines)
