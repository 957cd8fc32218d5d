"""Settings of the tus server: where uploads live, limits and timeouts.

One frozen dataclass; the application fills it from its own configuration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TusConfig:
    upload_dir: Path
    max_size: int | None = None  # Tus-Max-Size; a larger Upload-Length is refused with 413
    expiry_seconds: int | None = 86400  # unfinished uploads expire; None = never
    lock_timeout: float = 10.0  # bounded wait for a busy upload, then 423
    body_idle_timeout: float = 30.0  # a client silent for this long mid-body is dropped
    block_size: int = 1 << 20
    fsync_each_patch: bool = False  # data is always fsynced before the finish hook
    max_unfinished_per_owner: int | None = 200  # -> 429
    max_metadata_bytes: int = 16384
    # How often a reading request wakes up while its client is silent, to notice a release
    # request from a newer request for the same upload (the WSGI adapter's socket timeout).
    body_poll_interval: float = 1.0
    # How long a terminated or expired upload still answers 410 instead of 404.
    tombstone_seconds: int = 7 * 86400
