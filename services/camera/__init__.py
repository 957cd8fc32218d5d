"""services/camera: turn a finished upload into a validated, stored, recorded capture.

imaging (pure Pillow checks and thumbnails), capture_store (files), metadata (tus metadata and
permissions), capture_service (the transaction). No Flask, no app/ imports.
"""

from services.camera.capture_service import (
    CameraCaptureService,
    CaptureResult,
    FinishedUpload,
    delete_capture_files,
)
from services.camera.capture_store import CaptureStore
from services.camera.metadata import (
    CaptureRequest,
    MetadataError,
    authorize_capture,
    parse_capture_metadata,
)

__all__ = [
    "CameraCaptureService",
    "CaptureRequest",
    "CaptureResult",
    "CaptureStore",
    "FinishedUpload",
    "MetadataError",
    "authorize_capture",
    "delete_capture_files",
    "parse_capture_metadata",
]
