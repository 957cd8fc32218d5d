"""tus 1.0.0 resumable-upload server: a framework-free core (TusHandler) with file storage,
cross-process locks and hooks; wsgi.py serves it over WSGI."""

from app.tus.config import TusConfig
from app.tus.errors import TusError
from app.tus.handler import TusHandler
from app.tus.hooks import CreateContext, HookRefused, Hooks, UploadInfo
from app.tus.messages import TusRequest, TusResponse

__all__ = [
    "CreateContext",
    "HookRefused",
    "Hooks",
    "TusConfig",
    "TusError",
    "TusHandler",
    "TusRequest",
    "TusResponse",
    "UploadInfo",
]
