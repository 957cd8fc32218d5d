"""tus 1.0.0 resumable-upload server: a framework-free core (TusHandler) that the caller
composes from a store, a locker, hooks and settings; wsgi.py serves it over WSGI."""

from app.tus.config import TusConfig
from app.tus.errors import TusError
from app.tus.filelocker import FileLocker
from app.tus.filestore import FileStore
from app.tus.handler import TusHandler
from app.tus.hooks import CreateContext, HookRefused, Hooks, UploadInfo
from app.tus.messages import TusRequest, TusResponse
from app.tus.storage import FinishedData, Lock, Locker, LockTimeout, Storage, UploadRecord

__all__ = [
    "CreateContext",
    "FileLocker",
    "FileStore",
    "FinishedData",
    "HookRefused",
    "Hooks",
    "Lock",
    "LockTimeout",
    "Locker",
    "Storage",
    "TusConfig",
    "TusError",
    "TusHandler",
    "TusRequest",
    "TusResponse",
    "UploadInfo",
    "UploadRecord",
]
