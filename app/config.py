"""Configuration: embedded defaults, overridden by TUSCAM_* environment variables.

Every key here is documented in the README; tests pass a dict to create_app instead.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Any

ENV_PREFIX = "TUSCAM_"

# key -> (default, parser); defaults that depend on the instance folder are filled in load().
_INT_KEYS = {
    "MAX_UPLOAD_BYTES": 2 * 1024**3,
    "UPLOAD_EXPIRY": 86400,
    "TUS_LOCK_TIMEOUT": 10,
    "TUS_BODY_IDLE_TIMEOUT": 30,
    "TUS_MAX_UNFINISHED_PER_USER": 200,
    "TUS_MAX_BYTES_PER_USER": 10 * 1024**3,
    "TUS_MAX_CONCAT_PARTS": 100,
    "TUS_RETAIN_SECONDS": 3600,
    "MAX_IMAGE_PIXELS": 50_000_000,
    "MAX_IMAGE_BYTES": 64 * 1024**2,
    "TOKEN_CACHE_SECONDS": 5,
    "SESSION_HOURS": 12,
    "LOGIN_MAX_FAILURES": 10,
    "LOGIN_MAX_FAILURES_PER_ADDRESS": 50,
    "LOGIN_THROTTLE_SECONDS": 900,
}
_STR_KEYS = (
    *("DATABASE_URL", "DATA_DIR", "SECRET_KEY", "CORS_ORIGINS", "METRICS_TOKEN"),
    *("STORAGE_URL", "S3_ENDPOINT_URL", "S3_REGION", "LOCKER"),
)
# Storage (app/storage_setup.py): "" = the data folder; s3://BUCKET/PREFIX for several nodes.
_STR_DEFAULTS = {"STORAGE_URL": "", "S3_ENDPOINT_URL": "", "S3_REGION": "us-east-1"}
_BOOL_KEYS = {
    "PROXY_FIX": False,
    "TUS_FSYNC_EACH_PATCH": False,
    "SECURE_COOKIES": False,
    "TUS_DIRECT_SOCKET": True,
}


def _parse_bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def private_dir(path: Path) -> None:
    """Create `path` and its missing parents for the service user only (0700), whatever the
    umask. A folder that exists already is left as it is: its owner chose its mode."""
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            continue  # another worker made it at the same moment
        os.chmod(folder, 0o700)  # mkdir's mode is masked by the umask


def _secret_key(instance_path: Path) -> str:
    """A secret generated once and kept in the instance folder, never in the repository.

    Workers starting together all come here: each writes a whole key to a file of its own and
    links it into place, which succeeds for exactly one; everyone then reads the winner. The
    key file is never seen empty or half written."""
    path = instance_path / "secret_key"
    if not path.exists():
        private_dir(instance_path)
        tmp = instance_path / f".secret_key.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
                f.flush()
                os.fsync(f.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)  # atomic, and never replaces a key another process linked
        finally:
            tmp.unlink()
    key = path.read_text().strip()
    if not key:
        raise RuntimeError(f"{path} is empty: delete it (or set TUSCAM_SECRET_KEY) and restart")
    return key


def defaults() -> dict[str, Any]:
    """Defaults for keys a test configuration does not name."""
    return {
        **_INT_KEYS,
        **_BOOL_KEYS,
        **_STR_DEFAULTS,
        "CORS_ORIGINS": "",
        "SECRET_KEY": secrets.token_hex(16),
    }


def load(instance_path: Path, environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Return the configuration from the environment with defaults filled in."""
    env = os.environ if environ is None else environ
    config: dict[str, Any] = {}
    for key, default in _INT_KEYS.items():
        raw = env.get(ENV_PREFIX + key)
        if raw is None or raw == "":
            config[key] = default
            continue
        if not raw.isascii() or not raw.isdigit():
            raise ValueError(f"{ENV_PREFIX}{key} must be a whole number, got {raw!r}")
        config[key] = int(raw)
    for key, default in _BOOL_KEYS.items():
        raw = env.get(ENV_PREFIX + key)
        config[key] = default if raw is None else _parse_bool(raw)
    for key in _STR_KEYS:
        if env.get(ENV_PREFIX + key):
            config[key] = env[ENV_PREFIX + key]
    config.setdefault("DATABASE_URL", f"sqlite:///{instance_path / 'tuscam.sqlite3'}")
    config.setdefault("DATA_DIR", str(instance_path / "data"))
    config.setdefault("CORS_ORIGINS", "")
    for key, text in _STR_DEFAULTS.items():
        config.setdefault(key, text)
    if "SECRET_KEY" not in config:
        config["SECRET_KEY"] = _secret_key(instance_path)
    return config
