"""SHA-256 digests of uploads taken while their bytes arrive (app/tus/s3store.py), so that a
finished upload on S3 need not be read back to be hashed.

A digest is only as good as the bytes it saw, in order. hashlib's state cannot be stored
anywhere, so a digest lives in one process and covers an upload only while every byte since
offset 0 went through that process: a write that starts at another offset than the one the
digest covers (another node or worker took a PATCH), fails, or is refused drops it. Without
a digest the finish hook reads the object back, as it always could.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

CAPACITY = 512  # uploads being hashed per process; the least recently written is dropped


class RunningDigests:
    """Per process: upload id -> (offset covered, hashlib state). Thread-safe. A write takes
    the state out (take), feeds it and puts it back (keep) only once the store recorded the
    bytes, so two writers never share one state."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._states: OrderedDict[str, tuple[int, Any]] = OrderedDict()
        self._guard = threading.Lock()

    def take(self, upload_id: str, offset: int) -> Any | None:
        """The state for a write at offset: the kept one if it covers exactly the bytes before
        offset, a new one at offset 0, else None (this write is not hashed)."""
        with self._guard:
            state = self._states.pop(upload_id, None)
        if state is not None and state[0] == offset:
            return state[1]
        return hashlib.sha256() if offset == 0 else None

    def keep(self, upload_id: str, offset: int, digest: Any) -> None:
        """The store recorded every byte up to offset, and digest saw each of them."""
        with self._guard:
            self._states[upload_id] = (offset, digest)
            self._states.move_to_end(upload_id)
            while len(self._states) > self.capacity:
                self._states.popitem(last=False)

    def finished(self, upload_id: str, size: int) -> str | None:
        """The hex digest of a complete upload of size bytes, if this process saw all of
        them; the state is dropped either way."""
        with self._guard:
            state = self._states.pop(upload_id, None)
        if state is None or state[0] != size:
            return None
        return str(state[1].hexdigest())

    def drop(self, upload_id: str) -> None:
        with self._guard:
            self._states.pop(upload_id, None)
