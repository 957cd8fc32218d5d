"""Reading a request body in blocks: never past Content-Length, tolerant of clients that stop.

The reader never raises: it ends the chunk early and records why in `stopped`."""

from __future__ import annotations

import time
from collections.abc import Callable

from app.tus.checksum import Hasher
from app.tus.messages import RequestBody

DISCONNECTED = "disconnected"  # the client went away or the body ended before Content-Length
IDLE = "idle"  # nothing arrived for body_idle_timeout
RELEASED = "released"  # silent, and a newer request for the upload asked for the lock
TOO_LARGE = "too-large"  # a body without Content-Length went on past the allowed size


class BodyTimeout(Exception):
    """Raised by an adapter's stream when no byte arrived for one poll interval; the read can
    be retried (the adapter guarantees nothing was lost)."""


class BodyDisconnected(OSError):
    """Raised by an adapter's stream when reading failed for good (client gone, bad framing)."""


class BodyReader:
    """A ChunkSource over a request body. content_length None: read to the end of the stream."""

    def __init__(
        self,
        stream: RequestBody,
        content_length: int | None,
        *,
        idle_timeout: float,
        release_requested: Callable[[], bool] = lambda: False,
        on_progress: Callable[[int], None] | None = None,
        hasher: Hasher | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.content_length = content_length
        self.idle_timeout = idle_timeout
        self.release_requested = release_requested
        self.on_progress = on_progress
        self.hasher = hasher
        self.monotonic = monotonic
        self.received = 0
        self.stopped: str | None = None
        self._last_byte = monotonic()

    def readinto(self, buffer: memoryview, /) -> int:
        if self.stopped:
            return 0
        want = len(buffer)
        if self.content_length is not None:
            want = min(want, self.content_length - self.received)
        if want <= 0:
            return 0
        n = self._read(buffer[:want])
        if n == 0:
            if self.content_length is not None and self.stopped is None:
                self.stopped = DISCONNECTED  # a short body: the connection closed early
            return 0
        self.received += n
        self._last_byte = self.monotonic()
        if self.hasher is not None:
            self.hasher.update(buffer[:n])
        if self.on_progress is not None:
            self.on_progress(self.received)
        return n

    def at_end(self) -> bool:
        """After the storage stopped at its limit: is the body really over? A body without
        Content-Length that still has data is marked TOO_LARGE (that byte is not stored)."""
        if self.stopped or self.content_length is not None:
            return self.stopped is None
        if self._read(memoryview(bytearray(1))):
            self.stopped = TOO_LARGE
        return self.stopped is None

    def _read(self, view: memoryview) -> int:
        while True:
            try:
                readinto = getattr(self.stream, "readinto", None)
                if readinto is not None:
                    return readinto(view) or 0
                data = self.stream.read(len(view))
                view[: len(data)] = data
                return len(data)
            except BodyTimeout:
                # The client is silent. Give way to a newer request, or drop a client that
                # stays silent too long (a dead connection must not hold the upload).
                if self.release_requested():
                    self.stopped = RELEASED
                    return 0
                if self.monotonic() - self._last_byte >= self.idle_timeout:
                    self.stopped = IDLE
                    return 0
            except (OSError, EOFError, ValueError):
                # OSError covers BodyDisconnected, ConnectionResetError and socket.timeout from
                # a stream without a poll-aware adapter; the bytes already stored are kept.
                self.stopped = DISCONNECTED
                return 0
