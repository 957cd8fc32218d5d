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
    may_upload,
    parse_capture_metadata,
)

__all__ = [
    "CameraCaptureService",
    "CaptureRequest",
    "CaptureResult",
    "CaptureStore",
    "FinishedUpload",
    "MetadataError",
    "delete_capture_files",
    "may_upload",
    "parse_capture_metadata",
]
