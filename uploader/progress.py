"""What the person running tuscam-upload sees: tqdm bars in a terminal, plain log lines when
stdout is not a terminal, or one JSON object per file (--json); then a summary.

Reporters are called from the worker threads; each serialises its output with a lock. A wait
for an unreachable server is one status line on stderr, updated in place on a terminal.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from tqdm import tqdm

from uploader import errors
from uploader.errors import RunStopped
from uploader.files import LocalFile, format_size
from uploader.transfer import (
    ACCEPTED,
    DUPLICATE,
    FAILED,
    INTERRUPTED,
    REJECTED,
    SKIPPED,
    FileResult,
)
from uploader.wait import format_duration, waiting_text


class FileProgress:
    """Told the offset the server confirmed for one file; closed when the file is done."""

    def __call__(self, offset: int) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class Summary:
    results: list[FileResult]
    seconds: float
    interrupted: bool = False
    not_started: int = 0
    halt: RunStopped | None = None  # the problem that stopped the run, if one did
    counts: Counter[str] = field(init=False)

    def __post_init__(self) -> None:
        self.counts = Counter(r.status for r in self.results)

    @property
    def ok(self) -> bool:
        return not self.interrupted and not self.not_started and all(r.landed for r in self.results)

    @property
    def left(self) -> int:
        """Files not finished: the same command resumes them."""
        return self.counts[INTERRUPTED] + self.not_started

    @property
    def problem(self) -> tuple[str, str] | None:
        """(error code, message) of the run as a whole, when it did not end well."""
        if self.halt is not None:
            return self.halt.code, self.halt.message
        if self.interrupted:
            return errors.INTERRUPTED, "interrupted: run the same command again to resume"
        return None

    @property
    def bytes_sent(self) -> int:
        return sum(r.sent for r in self.results)

    def to_json(self) -> dict[str, Any]:
        c = self.counts
        return {
            "summary": {
                "files": len(self.results) + self.not_started,
                "uploaded": c[ACCEPTED],
                "skipped": c[SKIPPED],
                "duplicate": c[DUPLICATE],
                "rejected": c[REJECTED],
                "failed": c[FAILED],
                "interrupted": self.left,
                "left": self.left,
                "bytes_sent": self.bytes_sent,
                "seconds": round(self.seconds, 3),
                "ok": self.ok,
                "error": self.problem[0] if self.problem else None,
                "message": self.problem[1] if self.problem else None,
            }
        }

    def lines(self) -> list[str]:
        c = self.counts
        rate = self.bytes_sent / self.seconds if self.seconds > 0 else 0.0
        head = (
            f"{c[ACCEPTED]} uploaded, {c[SKIPPED]} already there, {c[DUPLICATE]} duplicate, "
            f"{c[REJECTED]} rejected, {c[FAILED]} failed"
        )
        if self.left:
            head += f", {self.left} not finished (run the same command again to resume)"
        lines = [
            f"{head} - {len(self.results) + self.not_started} files, "
            f"{format_size(self.bytes_sent)} sent in {self.seconds:.1f} s "
            f"({format_size(rate)}/s)"
        ]
        for r in self.results:
            if r.status in (REJECTED, FAILED):
                lines.append(f"  {r.status}: {r.path}: {r.reason or 'no reason given'}")
        return lines


def describe(result: FileResult) -> str:
    """One log line for a finished file."""
    parts = [f"{result.status:<9}", str(result.path), format_size(result.size)]
    if result.capture_id is not None:
        parts.append(f"capture {result.capture_id}")
    if result.resumed_from:
        parts.append(f"resumed at {format_size(result.resumed_from)}")
    if result.restarted:
        parts.append("stored upload was gone, started over")
    if result.from_state:
        parts.append("(from state)")
    if result.reason and result.status in (REJECTED, FAILED, DUPLICATE):
        parts.append(f"- {result.reason}")
    return "  ".join(parts)


class Reporter:
    """Plain log lines (stdout not a terminal); the base of the others."""

    def __init__(self, out: IO[str] | None = None, err: IO[str] | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.lock = threading.Lock()
        self._status_shown = False  # the waiting line is on the screen (or was said once)

    # -- the wait for an unreachable server (uploader.wait.WaitDisplay) -----------------------

    def waiting(self, cause: str, retry_in: float, waited: float) -> None:
        text = waiting_text(cause, retry_in)
        with self.lock:
            if _isatty(self.err):
                self.err.write("\r" + _fit(text, self.err) + "\x1b[K")
                self.err.flush()
            elif not self._status_shown:
                print(_fit(text, self.err), file=self.err, flush=True)
            self._status_shown = True

    def reachable(self, waited: float) -> None:
        with self.lock:
            if self._status_shown and _isatty(self.err):
                self.err.write("\r\x1b[K")
            self._status_shown = False
            print(
                f"server reachable again after {format_duration(waited)}; resuming",
                file=self.err,
                flush=True,
            )

    # -- files and the run -------------------------------------------------------------------

    def begin(self, files: Sequence[LocalFile]) -> None:
        total = sum(f.size for f in files)
        self.note(f"{len(files)} files, {format_size(total)} to upload")

    def file_started(self, file: LocalFile) -> FileProgress:
        return FileProgress()

    def file_done(self, result: FileResult) -> None:
        # An unfinished file is no news: the summary counts them and the next run resumes them.
        if result.status != INTERRUPTED:
            self._print(describe(result), self.out)

    def note(self, text: str) -> None:
        self._print(text, self.err)

    def end(self, summary: Summary) -> None:
        for line in summary.lines():
            self._print(line, self.out)

    def stopped(self, problem: tuple[str, str], left: int, *, started: bool) -> None:
        """The last line of a run that did not end well: what is wrong and what is left."""
        code, message = problem
        if code == errors.SERVER_UNREACHABLE:
            sent = "" if started else ", nothing was sent"
            text = (
                f"tuscam-upload: gave up waiting: {message}; {left} files left{sent}; "
                "run the same command again to resume"
            )
        elif code == errors.INTERRUPTED:
            text = f"tuscam-upload: interrupted; {left} files left: run the same command again"
        else:
            text = f"tuscam-upload: error: {message}"
        self._clear_status()
        self._print(text, self.err)

    def _clear_status(self) -> None:
        with self.lock:
            if self._status_shown and _isatty(self.err):
                self.err.write("\r\x1b[K")
            self._status_shown = False

    def _print(self, text: str, stream: IO[str]) -> None:
        with self.lock:
            print(_fit(text, stream), file=stream, flush=True)


class JsonReporter(Reporter):
    """One JSON object per file on stdout, then {"summary": {...}}, which carries the `error`
    code and `message` of a run that did not end well; notes go to stderr."""

    def begin(self, files: Sequence[LocalFile]) -> None:
        pass

    def file_done(self, result: FileResult) -> None:
        self._print(json.dumps(result.to_json()), self.out)

    def end(self, summary: Summary) -> None:
        self._print(json.dumps(summary.to_json()), self.out)

    def stopped(self, problem: tuple[str, str], left: int, *, started: bool) -> None:
        self._clear_status()
        if not started:  # no summary was printed: it is the one object of the run
            summary = Summary([], 0.0, not_started=left)
            summary.halt = RunStopped(*problem)
            self.end(summary)


class BarReporter(Reporter):
    """An overall bar (bytes, rate, time left, files done) and one bar per file in flight."""

    def __init__(self, slots: int, out: IO[str] | None = None, err: IO[str] | None = None):
        super().__init__(out, err)
        self.slots = list(range(1, slots + 1))
        self.overall: tqdm | None = None
        self.files_total = 0
        self.files_done = 0

    def begin(self, files: Sequence[LocalFile]) -> None:
        self.files_total = len(files)
        self.overall = tqdm(
            total=sum(f.size for f in files),
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=self._desc(),
            file=self.err,
            position=0,
            dynamic_ncols=True,
        )

    def _desc(self) -> str:
        return f"files {self.files_done}/{self.files_total}"

    def file_started(self, file: LocalFile) -> FileProgress:
        with self.lock:
            slot = self.slots.pop(0) if self.slots else None
        bar = None
        if slot is not None:
            name = file.path.name
            bar = tqdm(
                total=file.size,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=name if len(name) <= 24 else name[:21] + "...",
                file=self.err,
                position=slot,
                leave=False,
                dynamic_ncols=True,
            )
        return _BarProgress(self, slot, bar)

    def file_done(self, result: FileResult) -> None:
        with self.lock:
            self.files_done += 1
            if self.overall is not None:
                self.overall.set_description(self._desc(), refresh=True)
                # Only what did not land deserves a line above the bars.
                if result.status in (REJECTED, FAILED, DUPLICATE):
                    self.overall.write(describe(result), file=self.err)

    def note(self, text: str) -> None:
        with self.lock:
            tqdm.write(text, file=self.err)

    def waiting(self, cause: str, retry_in: float, waited: float) -> None:
        if self.overall is None:
            super().waiting(cause, retry_in, waited)
            return
        with self.lock:
            self.overall.set_description_str(_fit(waiting_text(cause, retry_in), self.err))
            self._status_shown = True

    def reachable(self, waited: float) -> None:
        if self.overall is None:
            super().reachable(waited)
            return
        with self.lock:
            self.overall.set_description_str(self._desc())
            self._status_shown = False
            self.overall.write(
                f"server reachable again after {format_duration(waited)}; resuming", file=self.err
            )

    def end(self, summary: Summary) -> None:
        with self.lock:
            if self.overall is not None:
                self.overall.close()
                self.overall = None
        super().end(summary)


class _BarProgress(FileProgress):
    def __init__(self, reporter: BarReporter, slot: int | None, bar: tqdm | None) -> None:
        self.reporter, self.slot, self.bar = reporter, slot, bar
        self.last = 0

    def __call__(self, offset: int) -> None:
        delta, self.last = offset - self.last, offset
        with self.reporter.lock:
            if self.bar is not None:
                self.bar.update(delta)
            if self.reporter.overall is not None:
                self.reporter.overall.update(delta)

    def close(self) -> None:
        r = self.reporter
        with r.lock:
            if self.bar is not None:
                self.bar.close()
            if self.slot is not None:
                r.slots.append(self.slot)
                r.slots.sort()


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _fit(text: str, stream: IO[str]) -> str:
    """`text` as `stream` can encode it (a dash becomes "-" on an ASCII terminal)."""
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return text.replace("—", "-").encode("ascii", "replace").decode("ascii")
    return text
