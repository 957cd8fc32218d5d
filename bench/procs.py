"""Server processes seen through /proc: the process tree of a server, its CPU time, its workers.

CPU seconds come from utime + stime in /proc/<pid>/stat (fields 14 and 15, in clock ticks).
"""

from __future__ import annotations

import os
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    return text.rsplit(")", 1)[1].split()


def children_map() -> dict[int, list[int]]:
    """ppid -> child pids, for every process visible now."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is None:
            continue
        tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def process_tree(root: int) -> list[int]:
    """root and all its descendants that are alive now."""
    tree = children_map()
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(tree.get(pid, []))
    return sorted(found)


def worker_pids(root: int) -> list[int]:
    """The processes that serve requests: the root's children, or the root if it has none
    (a single-process server). gunicorn, uvicorn --workers and a Node cluster all fork their
    workers from the root."""
    children = children_map().get(root, [])
    return sorted(children) if children else [root]


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the given processes, in seconds (processes gone are skipped)."""
    ticks = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            # After the ")" split, field 3 (state) is index 0, so utime (14) is index 11.
            ticks += int(fields[11]) + int(fields[12])
    return ticks / CLOCK_TICKS
