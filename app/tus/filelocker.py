"""FileLocker: per-upload locks that hold across threads and worker processes of one machine,
fcntl.flock on `<upload id>.lock`.

Waiting is bounded (poll with LOCK_NB, up to the timeout; then LockTimeout, answered 423 because
tus-js-client retries 423 after asking HEAD). flock excludes other descriptors of the same
process too and the kernel drops it when a worker is SIGKILLed, so a dead holder never blocks.

Release requests: a request that finds the upload locked touches `<id>.release` while it waits.
The holder reads its body in short polls (the WSGI adapter gives the socket a ~1 s timeout); when a
poll finds the client silent and a release requested, it stops, keeps what it stored and lets
go. A holder that keeps receiving is never interrupted, so of two live racing requests one
wins and the other waits, then gets 409 or 423. A silent client is dropped after
body_idle_timeout anyway; the release request only makes its successor not wait that long.

Lock files are unlinked only by a holder (discard(), after termination); an acquirer checks
that the file it locked is still the one at the path, so no two holders can exist. Which inode
a lock file is does not matter, only that everyone locks the one at the path: with `link_to`
a new lock file is a hard link of the upload's data file (no new inode to allocate on every
upload; bench/README.md has the figures); where that file does not exist, an empty file."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from app.tus.fileio import remove
from app.tus.protocol import is_upload_id
from app.tus.storage import LockTimeout

RELEASE_TOUCH_INTERVAL = 0.2  # re-touch the release request while waiting (a holder clears it)


class FileLock:
    """A held lock on one upload (paths as strings: this runs on every request)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.release_path = path.removesuffix(".lock") + ".release"

    def release_requested(self) -> bool:
        return os.path.exists(self.release_path)

    def discard(self) -> None:
        # Safe while held: acquirers re-check the inode after locking (see _acquire).
        remove(self.path)
        remove(self.release_path)


class FileLocker:
    def __init__(
        self,
        directory: Path,
        *,
        poll: float = 0.01,
        max_poll: float = 0.1,
        link_to: Callable[[str], Path] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.poll = poll
        self.max_poll = max_poll
        self.link_to = link_to

    @contextmanager
    def lock(
        self, key: str, timeout: float, *, request_release: bool = False
    ) -> Iterator[FileLock]:
        if not is_upload_id(key):
            raise ValueError(f"not a lock key (an upload id): {key!r}")
        held = FileLock(f"{self.directory}{os.sep}{key}.lock")
        fd = self._acquire(held, key, timeout, request_release)
        try:
            yield held
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _acquire(
        self, held: FileLock, upload_id: str, timeout: float, request_release: bool
    ) -> int:
        start = time.monotonic()
        deadline = start + timeout
        delay = self.poll
        touched_at = 0.0
        while True:
            fd = self._open(held.path, upload_id)
            try:
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        now = time.monotonic()
                        if now >= deadline:
                            if touched_at:  # withdraw our request: nobody is waiting now
                                remove(held.release_path)
                            raise LockTimeout(upload_id, now - start) from None
                        if request_release and now - touched_at >= RELEASE_TOUCH_INTERVAL:
                            _touch(held.release_path)
                            touched_at = now
                        time.sleep(min(delay, max(deadline - now, 0.001)))
                        delay = min(delay * 1.5, self.max_poll)
            except BaseException:
                os.close(fd)
                raise
            if _same_file(fd, held.path):
                # A request for release that was meant for the previous holder is answered.
                remove(held.release_path)
                return fd
            # The file was discarded while we waited: lock the one now at the path instead.
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _open(self, path: str, upload_id: str) -> int:
        """The lock file at path, made first if missing (see the module's docstring)."""
        try:
            return os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            pass
        if self.link_to is not None:
            try:
                os.link(self.link_to(upload_id), path)
            except FileExistsError:
                pass  # another request made it meanwhile: lock that one
            except OSError:
                pass  # no data file (yet), or no hard links here: an empty file will do
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def _touch(path: str) -> None:
    """Create or renew a release request. Through the descriptor: the holder may remove the
    file at any moment, and a path-based utime() then failed with FileNotFoundError."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.utime(fd)
    finally:
        os.close(fd)


def _same_file(fd: int, path: str) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False
