"""One shared wait for an unreachable server: every worker of a run holds while one of them asks
the server again, with growing delays, until it answers or the run has waited long enough.
"""

from __future__ import annotations

import itertools
import math
import random
import re
import threading
import time
from collections.abc import Callable
from typing import Protocol

from uploader.errors import SERVER_UNREACHABLE, Interrupted, RunStopped


class WaitDisplay(Protocol):
    """What the person running the command is told about a wait (one status line)."""

    def waiting(self, cause: str, retry_in: float, waited: float) -> None: ...

    def reachable(self, waited: float) -> None: ...


class NoDisplay:
    def waiting(self, cause: str, retry_in: float, waited: float) -> None:
        pass

    def reachable(self, waited: float) -> None:
        pass


class GaveUpWaiting(RunStopped):
    def __init__(self, cause: str, waited: float) -> None:
        super().__init__(
            SERVER_UNREACHABLE,
            f"the server has been unreachable for {format_duration(waited)} ({cause})",
        )
        self.cause = cause
        self.waited = waited

    def again(self) -> GaveUpWaiting:
        return GaveUpWaiting(self.cause, self.waited)


class ServerWait:
    """Whether the server can be reached, shared by the worker threads of one run.

    A worker whose request failed for a network reason calls `unreachable()`. The first one asks
    the server at once (`probe`: None when it answers, else the cause in words); if it answers,
    only that connection failed and the worker goes on with its own retries. If not, the server
    is away: that worker keeps asking after 1, 2, 4 ... s (at most `max_backoff`), showing one
    status line, while every other worker holds in `unreachable()` or `hold()`; when the server
    answers they all go on, when `max_wait` s have passed (None: never) they all raise
    GaveUpWaiting, and on `stop` they raise Interrupted.
    """

    def __init__(
        self,
        probe: Callable[[], str | None],
        stop: threading.Event,
        *,
        max_wait: float | None,
        max_backoff: float,
        display: WaitDisplay | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.probe = probe
        self.stop = stop
        self.max_wait = max_wait
        self.max_backoff = max_backoff
        self.display: WaitDisplay = display or NoDisplay()
        self.clock = clock
        self.gave_up: GaveUpWaiting | None = None
        self.outages = 0  # how many times the server was found away (and waited for)
        self._cond = threading.Condition()
        self._asking = False  # a worker is asking the server; the others hold
        self._round = 0  # counts the ends of asking
        self._away = False  # what the last asking found: the server was away (then came back)

    def hold(self) -> None:
        """Before a request: wait while another worker is finding out whether the server is
        there."""
        with self._cond:
            while self._asking and not self._over():
                self._cond.wait(0.5)
            self._raise_if_over()

    def unreachable(self, cause: str) -> bool:
        """A request failed for a network reason (`cause`): return once the server answers.
        True when it had been away (this failure was not the file's), False when it answered
        at once (this connection alone failed)."""
        with self._cond:
            self._raise_if_over()
            if self._asking:
                asked = self._round
                while self._round == asked and not self._over():
                    self._cond.wait(0.5)
                self._raise_if_over()
                return self._away
            self._asking = True
        away = False
        try:
            away = self._ask_until_reachable(cause)
            return away
        finally:
            with self._cond:
                self._asking = False
                self._away = away
                self._round += 1
                self._cond.notify_all()

    def _ask_until_reachable(self, cause: str) -> bool:
        started = self.clock()
        problem = self.probe()
        if problem is None:
            return False
        self.outages += 1
        for attempt in itertools.count():
            cause = problem
            waited = self.clock() - started
            if self.max_wait is not None and waited >= self.max_wait:
                with self._cond:
                    self.gave_up = GaveUpWaiting(cause, waited)
                raise self.gave_up.again()
            # Jitter: many clients cut off by one outage should not all come back at once.
            delay = min(self.max_backoff, 2.0 ** min(attempt, 20)) * random.uniform(0.8, 1.0)
            if self.max_wait is not None:
                delay = min(delay, self.max_wait - waited)
            until = self.clock() + delay
            while (left := until - self.clock()) > 0:
                self.display.waiting(cause, left, self.clock() - started)
                if self.stop.wait(min(left, 1.0)):
                    raise Interrupted("stopped while waiting for the server")
            self.display.waiting(cause, 0.0, self.clock() - started)
            problem = self.probe()
            if problem is None:
                self.display.reachable(self.clock() - started)
                return True
        raise AssertionError("unreachable")

    def _over(self) -> bool:
        return self.gave_up is not None or self.stop.is_set()

    def _raise_if_over(self) -> None:
        if self.gave_up is not None:
            raise self.gave_up.again()
        if self.stop.is_set():
            raise Interrupted("stopped")


def waiting_text(cause: str, retry_in: float) -> str:
    when = f"retrying in {math.ceil(retry_in)} s" if retry_in > 0 else "retrying now"
    return f"server unreachable ({cause}) — waiting, {when}; nothing is lost"


_DURATION = re.compile(r"(?:([0-9]{1,7})h)?(?:([0-9]{1,9})m)?(?:([0-9]{1,9}(?:\.[0-9]{1,3})?)s?)?")


def parse_duration(text: str) -> float:
    """Seconds from "90", "90s", "2.5s", "10m", "1h", "1h30m"; raises ValueError with a message
    for the person who typed it."""
    raw = text.strip().lower()
    match = _DURATION.fullmatch(raw)
    if not raw or match is None or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration: write e.g. 30s, 10m, 1h or 1h30m")
    hours, minutes, seconds = match.groups()
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)


def format_duration(seconds: float) -> str:
    """ "45 s", "3 min 20 s", "1 h 5 min" (whole seconds)."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"
