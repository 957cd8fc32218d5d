"""Peak resident memory of server worker processes, from /proc/<pid>/status.

VmHWM is the kernel's exact high-water mark of a process's RSS. Writing "5" to
/proc/<pid>/clear_refs resets it to the current RSS (Linux >= 4.0, needs the right to write
there), so each measured phase gets its own peak. Where the reset is refused, a sampling thread
reading VmRSS every few milliseconds stands in (it may miss a peak shorter than its period).
"""

from __future__ import annotations

import threading
from pathlib import Path

MB = 1_000_000


def _status_kib(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_bytes(pid: int) -> int | None:
    kib = _status_kib(pid, "VmRSS")
    return None if kib is None else kib * 1024


def hwm_bytes(pid: int) -> int | None:
    kib = _status_kib(pid, "VmHWM")
    return None if kib is None else kib * 1024


def reset_hwm(pid: int) -> bool:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class PeakRss:
    """Peak RSS of each worker over a `with` block, and its RSS just before the block.

    >>> with PeakRss(pids) as peak: ...
    >>> peak.before[pid], peak.peak[pid]
    """

    def __init__(self, pids: list[int], period: float = 0.005) -> None:
        self.pids = list(pids)
        self.period = period
        self.before: dict[int, int] = {}
        self.peak: dict[int, int] = {}
        self.exact = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakRss:
        self.exact = all(reset_hwm(pid) for pid in self.pids)
        for pid in self.pids:
            self.before[pid] = rss_bytes(pid) or 0
            self.peak[pid] = self.before[pid]
        if not self.exact:  # the kernel's high-water mark needs no sampling (and no CPU)
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.period):
            for pid in self.pids:
                rss = rss_bytes(pid)
                if rss is not None and rss > self.peak[pid]:
                    self.peak[pid] = rss

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.exact:
            for pid in self.pids:
                hwm = hwm_bytes(pid)
                if hwm is not None:
                    self.peak[pid] = max(self.peak[pid], hwm)

    def growth(self) -> dict[int, int]:
        """Peak minus RSS before, per worker, in bytes."""
        return {pid: self.peak[pid] - self.before[pid] for pid in self.pids}

    def max_peak(self) -> int:
        return max(self.peak.values(), default=0)
