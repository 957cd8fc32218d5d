"""Settings of the tus server: limits, timeouts and retention.

One frozen dataclass; the application fills it from its own configuration."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TusConfig:
    max_size: int | None = None  # Tus-Max-Size; a larger Upload-Length is refused with 413
    expiry_seconds: int | None = 86400  # unfinished uploads expire; None = never
    lock_timeout: float = 10.0  # bounded wait for a busy upload, then 423
    body_idle_timeout: float = 30.0  # a client silent for this long mid-body is dropped
    fsync_each_patch: bool = False  # data is always made durable before the finish hook
    max_unfinished_per_owner: int | None = 200  # -> 429
    max_bytes_per_owner: int | None = None  # bytes of tus data one owner may hold -> 429
    max_concat_parts: int = 100  # partial uploads one final may name
    max_metadata_bytes: int = 16384
    # How often a reading request wakes up while its client is silent, to notice a release
    # request from a newer request for the same upload (the WSGI adapter's socket timeout).
    body_poll_interval: float = 1.0
    # Read bodies straight from gunicorn's socket (gunicorn_body.py); False: wsgi.input only.
    direct_socket: bool = True
    # A finished upload's copy is kept this long after its finish hook ran (a client retrying
    # the last PATCH, GET to verify), then cleanup retires it: the finish hook's owner (the
    # capture) holds the bytes. HEAD keeps answering from the tombstone.
    retain_seconds: int = 3600
    # How long a terminated, expired or retired upload still answers 410 instead of 404.
    tombstone_seconds: int = 7 * 86400
