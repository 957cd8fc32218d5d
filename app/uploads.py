"""The tus server mounted at /files/, its authentication check and the hooks that turn a finished
upload into a capture (services.camera). Also serves the stored capture files."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.auth import current_principal, principal_from_bearer
from app.db import session_factory
from app.lockers import postgres_locker
from app.ops.instrument import MeteredLocker, observed_hooks, remember_user
from app.storage_setup import StorageParts, build_storage
from app.tus.config import TusConfig
from app.tus.errors import TusError
from app.tus.filelocker import FileLocker
from app.tus.handler import TusHandler
from app.tus.hooks import CreateContext, HookRefused, Hooks, UploadInfo
from app.tus.maintenance import reconcile
from app.tus.storage import FinishedData
from app.tus.wsgi import TusWsgiApp
from services.camera.capture_service import CameraCaptureService, FinishedUpload
from services.camera.capture_store import CaptureStore
from services.camera.metadata import (
    CaptureRequest,
    MetadataError,
    check_capture,
    load_upload_check,
    may_upload,
    parse_capture_metadata,
)

log = logging.getLogger(__name__)
# The response that completes an upload says what capture it became (the design contract).
CAPTURE_HEADERS = ("Tuscam-Capture-Id", "Tuscam-Capture-Status", "Tuscam-Capture-Reason")


class CaptureHooks:
    """tus hooks bound to a database and a capture store; usable outside a request (reconcile)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        store: CaptureStore,
        max_pixels: int,
        max_image_bytes: int,
    ) -> None:
        self.sessions = sessions
        # The pre-create check is one Core query: a plain connection, no Session to set up.
        self.engine: Engine = sessions.kw["bind"]
        self.store = store
        self.max_pixels = max_pixels
        self.max_image_bytes = max_image_bytes
        self.session_assessments: dict[int, int] = {}  # see CameraCaptureService

    def hooks(self) -> Hooks:
        return Hooks(pre_create=self.pre_create, finish=self.finish)

    def pre_create(self, ctx: CreateContext) -> None:
        owner = int(ctx.owner)
        req: CaptureRequest | None = None
        invalid: MetadataError | None = None
        if not ctx.is_partial:
            try:
                req = parse_capture_metadata(ctx.metadata)
            except MetadataError as exc:
                invalid = exc  # answered after the account check, which comes first
        with self.engine.connect() as conn:
            # One query: the user (re-read here, so a deactivated account cannot start uploads
            # while its token is still in the authentication cache) and the session it names.
            user, session = load_upload_check(conn, owner, req.session_id if req else None)
        if user is None or not user.active:
            raise HookRefused(401, "Your account is not active any more; log in again.")
        if ctx.is_partial:
            # A partial upload carries no capture metadata of its own (tus concatenation):
            # the final upload that names it is checked instead.
            if not may_upload(user):
                raise HookRefused(403, f"Uploading needs the operator role; you are {user.role}.")
            return
        if invalid is not None:
            raise HookRefused(invalid.status, str(invalid)) from invalid
        assert req is not None
        try:
            check_capture(user, session, req)
        except MetadataError as exc:
            raise HookRefused(exc.status, str(exc)) from exc

    def finish(self, info: UploadInfo, data: FinishedData) -> Mapping[str, str]:
        with self.sessions() as db:
            req = parse_capture_metadata(info.metadata)
            service = CameraCaptureService(
                db,
                self.store,
                max_pixels=self.max_pixels,
                max_image_bytes=self.max_image_bytes,
                session_cache=self.session_assessments,
            )
            result = service.save_capture(
                req.session_id,
                data,
                req.capture_trigger,
                req.assessment_id,
                req.capture_type,
                req.camera_settings,
                upload=FinishedUpload(
                    upload_id=info.id,
                    filename=req.filename,
                    filetype=req.filetype,
                    uploaded_by_id=int(info.owner),
                    expected_sha256=req.sha256,
                    upload_started_at=info.created_at,
                    source_durable=True,  # the tus store fsyncs an upload before its finish hook
                ),
            )
        headers = {
            "Tuscam-Capture-Id": str(result.capture_id),
            "Tuscam-Capture-Status": result.status,
        }
        if result.reason:
            # Short: it travels in a response header (the tus handler makes it ASCII).
            headers["Tuscam-Capture-Reason"] = result.reason[:200]
        return headers


class UploadAuth:
    """Who sends a tus request, straight from the WSGI environ: a bearer token without Flask
    (scripts: most tus traffic), else the session cookie through Flask's own session handling
    (the camera page). Returns (user id, is admin) or None."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.allowed_origins = frozenset(app.config["TUS_CORS_ORIGINS"])

    def __call__(self, environ: dict[str, Any]) -> tuple[str, bool] | None:
        header = environ.get("HTTP_AUTHORIZATION")
        if header:
            # The light principal: a tus request never needs the User row (app.auth.TokenCache).
            principal = principal_from_bearer(self.app, header)
            return None if principal is None else (str(principal.id), principal.is_admin)
        if not environ.get("HTTP_COOKIE"):
            return None
        with self.app.request_context(environ):  # its teardown closes the database session
            principal = current_principal()
            if principal is None:
                return None
            # A cookie is sent by the browser whoever wrote the page; only our own pages (or
            # configured origins) may use it to upload. Bearer tokens are never sent implicitly.
            origin = request.headers.get("Origin")
            if origin and urlsplit(origin).netloc != request.host:
                if origin not in self.allowed_origins:
                    raise TusError(403, "cross-origin", f"Uploads from {origin} are not allowed.")
            return str(principal.id), principal.is_admin


def tus_config(app: Flask) -> TusConfig:
    c = app.config
    return TusConfig(
        max_size=c["MAX_UPLOAD_BYTES"] or None,
        expiry_seconds=c["UPLOAD_EXPIRY"] or None,
        lock_timeout=float(c["TUS_LOCK_TIMEOUT"]),
        body_idle_timeout=float(c["TUS_BODY_IDLE_TIMEOUT"]),
        fsync_each_patch=bool(c["TUS_FSYNC_EACH_PATCH"]),
        max_unfinished_per_owner=c["TUS_MAX_UNFINISHED_PER_USER"] or None,
        max_bytes_per_owner=c["TUS_MAX_BYTES_PER_USER"] or None,
        max_concat_parts=c["TUS_MAX_CONCAT_PARTS"],
        retain_seconds=c["TUS_RETAIN_SECONDS"],
        direct_socket=bool(c["TUS_DIRECT_SOCKET"]),
    )


def make_handler(app: Flask) -> TusHandler:
    """Compose the tus server: the store and locker for this deployment, the capture hooks."""
    store = storage(app).tus_store  # a folder, or S3 (TUSCAM_STORAGE_URL)
    uploads = Path(app.config["DATA_DIR"]) / "uploads"
    # Across nodes: PostgreSQL (TUSCAM_LOCKER, app/lockers.py). On one machine: lock files,
    # hard links of the data files where they exist (filelocker.py says why).
    locker = postgres_locker(app.config) or FileLocker(
        uploads, link_to=getattr(store, "path_of", None)
    )
    hooks = CaptureHooks(
        session_factory(app),
        capture_store(app),
        app.config["MAX_IMAGE_PIXELS"],
        app.config["MAX_IMAGE_BYTES"],
    )
    # Metrics and named events wrap the locker and the hooks (app/ops/instrument.py).
    return TusHandler(store, MeteredLocker(locker), observed_hooks(hooks.hooks()), tus_config(app))


def storage(app: Flask) -> StorageParts:
    """The app's stores, built (and, for S3, checked) once."""
    parts = app.extensions.get("tuscam.storage")
    if parts is None:
        parts = app.extensions["tuscam.storage"] = build_storage(app.config)
    return parts


def capture_store(app: Flask) -> CaptureStore:
    return storage(app).capture_store


def init_app(app: Flask) -> None:
    origins = [o.strip() for o in str(app.config.get("CORS_ORIGINS", "")).split(",") if o.strip()]
    app.config["TUS_CORS_ORIGINS"] = origins
    handler = make_handler(app)
    app.extensions["tuscam.tus"] = handler
    # WSGI in front of Flask (app/tus/wsgi.py says why); everything but /files goes on to Flask.
    app.wsgi_app = TusWsgiApp(  # type: ignore[method-assign]
        handler,
        remember_user(UploadAuth(app)),
        app.wsgi_app,
        prefix="/files",
        cors_origins=origins,
        expose_headers=CAPTURE_HEADERS,
    )
    if not app.config.get("TESTING"):
        # Uploads that were complete on disk when a worker died are finished now; every worker
        # may try, the per-upload lock and the finished flag make it happen once.
        threading.Thread(target=_reconcile, args=(handler,), daemon=True).start()


def _reconcile(handler: TusHandler) -> None:
    try:
        count = reconcile(handler)
        if count:
            log.info("reconciled %d finished upload(s)", count)
    except Exception:  # a failed reconcile must not stop the worker; the next start retries
        log.exception("reconcile failed")
