"""The shared wait for an unreachable server (uploader.wait): one worker asks, the others hold,
all go on together or give up together; and the durations --max-wait takes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from uploader.errors import Interrupted
from uploader.wait import (
    GaveUpWaiting,
    ServerWait,
    format_duration,
    parse_duration,
    waiting_text,
)


class Probe:
    """Answers `away` times with a cause, then says the server is there; the first call takes
    `first_delay` s, so that workers failing together all arrive while it runs."""

    def __init__(self, away: int, first_delay: float = 0.0) -> None:
        self.away = away
        self.first_delay = first_delay
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self) -> str | None:
        with self.lock:
            self.calls += 1
            first = self.calls == 1
        if first:
            time.sleep(self.first_delay)
        return "connection refused" if self.calls <= self.away else None


class Display:
    def __init__(self) -> None:
        self.waits: list[tuple[str, float]] = []
        self.backs: list[float] = []

    def waiting(self, cause: str, retry_in: float, waited: float) -> None:
        self.waits.append((cause, retry_in))

    def reachable(self, waited: float) -> None:
        self.backs.append(waited)


def in_threads(count: int, target: Callable[[], object]) -> list[object]:
    """Run `target` in `count` threads at once; what each returned or raised."""
    results: list[object] = [None] * count
    barrier = threading.Barrier(count)

    def work(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target()
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            results[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    return results


def test_workers_failing_together_wait_together_while_one_asks() -> None:
    probe, display = Probe(away=3, first_delay=0.5), Display()
    wait = ServerWait(probe, threading.Event(), max_wait=None, max_backoff=0.05, display=display)
    results = in_threads(4, lambda: wait.unreachable("connection reset"))
    assert results == [True] * 4  # the server had been away: nobody's failure counts
    assert probe.calls == 4  # one asker: the first try and three more, not four workers' worth
    assert wait.outages == 1 and len(display.backs) == 1
    assert {cause for cause, _ in display.waits} == {"connection refused"}
    assert all(retry_in <= 0.05 for _, retry_in in display.waits)


def test_a_server_that_answers_at_once_is_no_outage() -> None:
    probe, display = Probe(away=0), Display()
    wait = ServerWait(probe, threading.Event(), max_wait=None, max_backoff=1, display=display)
    assert wait.unreachable("connection reset") is False
    assert probe.calls == 1 and wait.outages == 0
    assert display.waits == [] and display.backs == []


def test_the_wait_ends_for_every_worker_after_max_wait() -> None:
    probe = Probe(away=10**6, first_delay=0.3)
    wait = ServerWait(probe, threading.Event(), max_wait=0.5, max_backoff=0.05)
    started = time.monotonic()
    results = in_threads(3, lambda: wait.unreachable("connection refused"))
    assert all(isinstance(r, GaveUpWaiting) for r in results), results
    assert all(r.code == "server-unreachable" for r in results)  # type: ignore[union-attr]
    assert time.monotonic() - started >= 0.5
    with pytest.raises(GaveUpWaiting):
        wait.hold()  # nothing new starts either
    assert wait.gave_up is not None and wait.gave_up.waited >= 0.5
    assert wait.gave_up.message.startswith("the server has been unreachable for ")
    assert wait.gave_up.message.endswith(" s (connection refused)")


def test_stopping_ends_the_wait_at_once() -> None:
    stop = threading.Event()
    wait = ServerWait(Probe(away=10**6), stop, max_wait=None, max_backoff=30)
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    with pytest.raises(Interrupted):
        wait.unreachable("connection refused")
    assert time.monotonic() - started < 5


def test_hold_lets_a_request_go_only_once_the_server_answers() -> None:
    answered = threading.Event()
    asked = threading.Event()

    def probe() -> str | None:
        asked.set()
        return None if answered.wait(10) else "connection refused"

    wait = ServerWait(probe, threading.Event(), max_wait=None, max_backoff=0.05)
    asking = threading.Thread(target=wait.unreachable, args=("connection reset",))
    asking.start()
    assert asked.wait(5)
    holding = threading.Thread(target=wait.hold)
    holding.start()
    holding.join(0.3)
    assert holding.is_alive()  # held while the server is being asked
    answered.set()
    holding.join(5)
    asking.join(5)
    assert not holding.is_alive()


def test_the_status_line_counts_down() -> None:
    assert waiting_text("connection refused", 4.2) == (
        "server unreachable (connection refused) — waiting, retrying in 5 s; nothing is lost"
    )
    assert "retrying now" in waiting_text("bad gateway, 502", 0)


@given(st.integers(0, 99), st.integers(0, 59), st.integers(0, 59))
def test_durations_parse_hours_minutes_and_seconds(hours: int, minutes: int, seconds: int) -> None:
    expected = hours * 3600 + minutes * 60 + seconds
    assert parse_duration(f"{hours}h{minutes}m{seconds}s") == expected
    assert parse_duration(f"{expected}") == expected
    assert parse_duration(f" {expected}S ") == expected


@given(st.text(max_size=12))
def test_any_text_is_a_duration_or_a_plain_error(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        assert "is not a duration: write e.g. 30s, 10m, 1h or 1h30m" in str(exc)
    else:
        assert seconds >= 0


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (5.4, "5 s"),
        (60, "1 min"),
        (200, "3 min 20 s"),
        (3600, "1 h"),
        (3900, "1 h 5 min"),
    ],
)
def test_durations_read_as_people_say_them(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
