"""CameraCaptureService: every finished upload becomes exactly one Capture row -- accepted,
rejected (with a short reason, bytes kept) or duplicate -- with its files, in one transaction.

No HTTP here: the tus finish hook, the CLI and tests call it with a Session, a CaptureStore,
a path, a stream or a finished tus upload, and plain values.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, BinaryIO, cast

from sqlalchemy import bindparam, insert, or_, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from services.camera import imaging
from services.camera.capture_store import BLOCK_SIZE, CaptureStore, StagedFile, UploadSource
from services.models import Capture, CaptureSession, CaptureStatus, utcnow

# Statements run for every upload are built once: SQLAlchemy then reuses their cache key rather
# than recomputing it on each execution, which was most of the cost of these one-row queries.
_BY_UPLOAD_ID = select(Capture.id, Capture.status, Capture.reject_reason).where(
    Capture.upload_id == bindparam("upload_id")
)
_SESSION_ASSESSMENT = select(CaptureSession.assessment_id).where(
    CaptureSession.id == bindparam("session_id")
)
_ACCEPTED_TWIN = (
    select(Capture)
    .where(
        Capture.session_id == bindparam("session_id"),
        Capture.sha256 == bindparam("sha256"),
        Capture.status == CaptureStatus.ACCEPTED.value,
    )
    .order_by(Capture.id)
    .limit(1)
)
_ACCEPTED_TWIN_BEFORE = _ACCEPTED_TWIN.where(Capture.id < bindparam("before"))
_INSERT = insert(Capture)
SESSION_CACHE_SIZE = 10_000
_COLUMNS = frozenset(attr.key for attr in sa_inspect(Capture).column_attrs)


class NewCapture(SimpleNamespace):
    """The row of a new capture while it is decided: the Capture attributes that _classify
    reads and sets, on a plain object (an ORM instance's instrumentation showed in profiles)."""

    id: int
    status: str
    reject_reason: str | None = None  # as the column's: only a rejection sets one


@dataclass(frozen=True)
class FinishedUpload:
    """What the caller knows of a finished upload besides the capture's own fields."""

    upload_id: str  # the tus upload id: one capture per upload, whatever the retries
    filename: str
    filetype: str | None = None  # as declared by the client
    uploaded_by_id: int | None = None
    expected_sha256: str | None = None  # from the client's metadata, checked against the bytes
    upload_started_at: datetime | None = None
    # file_data is a path already fsynced (tus does, before its finish hook): not fsynced again.
    source_durable: bool = False


@dataclass(frozen=True)
class CaptureResult:
    capture_id: int
    status: str  # accepted | rejected | duplicate
    reason: str | None

    @classmethod
    def of(cls, capture: Capture | NewCapture) -> CaptureResult:
        return cls(capture.id, capture.status, capture.reject_reason)


class CameraCaptureService:
    def __init__(
        self,
        db: Session,
        store: CaptureStore,
        *,
        max_pixels: int = 50_000_000,
        max_image_bytes: int = imaging.MAX_IMAGE_BYTES,
        thumbnail_size: int = 400,
        clock: Callable[[], datetime] = utcnow,
        draft: bool = True,  # JPEG decoded at reduced scale for the thumbnail (bench compares)
        session_cache: MutableMapping[int, int] | None = None,
    ) -> None:
        # session_cache: session id -> its assessment id, kept by a long-lived caller (the tus
        # hooks) across captures: a session never moves to another assessment, so the lookup
        # is one query per session and process rather than one per capture.
        self.session_cache = session_cache
        self.db = db
        self.store = store
        self.max_pixels = max_pixels
        self.max_image_bytes = max_image_bytes
        self.thumbnail_size = thumbnail_size
        self.clock = clock
        self.draft = draft

    def save_capture(
        self,
        session_id: int,
        file_data: Path | BinaryIO | UploadSource,
        capture_trigger: str = "manual",
        assessment_id: int | None = None,
        capture_type: str = "photo",
        camera_settings_snapshot: dict[str, Any] | None = None,
        *,
        upload: FinishedUpload,
    ) -> CaptureResult:
        """Record the capture of one finished upload; idempotent per `upload.upload_id`.

        An invalid image is not an error: it is recorded as rejected with its reason and its
        bytes kept for reviewers. An exception means nothing was recorded and no new file is
        left behind, so the caller (the tus finish hook) may simply retry.
        """
        # No lookup of upload_id first: the finish hook runs once per upload, so a repeat is rare
        # (a crash between our commit and tus's finished flag). The unique constraint catches it
        # below, after wasted work, and one query per capture is saved.
        session_assessment = self._assessment_of(session_id)
        if session_assessment is None:
            raise LookupError(f"capture session {session_id} does not exist")
        if assessment_id is not None and assessment_id != session_assessment:
            raise ValueError(
                f"assessment {assessment_id} does not match session {session_id} "
                f"(assessment {session_assessment})"
            )
        extra: dict[str, Any] = {}
        if upload.expected_sha256:
            extra["expected_sha256"] = upload.expected_sha256.lower()
        # Duck-typed: isinstance() against a runtime-checkable Protocol costs more than the rest
        # of this branch (measured in a photo upload's CPU profile).
        if hasattr(file_data, "local_file"):
            staged = self.store.stage_upload(
                cast(UploadSource, file_data),
                block_size=BLOCK_SIZE,
                durable=upload.source_durable,
                needed_up_to=self.max_image_bytes,
            )
        else:
            staged = self.store.stage(
                file_data, block_size=BLOCK_SIZE, durable=upload.source_durable
            )
        created: list[str] = []
        try:
            capture = NewCapture(
                session_id=session_id,
                upload_id=upload.upload_id,
                uploaded_by_id=upload.uploaded_by_id,
                filename=upload.filename[:255],
                declared_type=(upload.filetype or "")[:100],
                capture_trigger=capture_trigger,
                capture_type=capture_type,
                camera_settings=dict(camera_settings_snapshot or {}),
                metadata_extra=extra,
                sha256=staged.sha256,
                bytes=staged.size,
                upload_started_at=upload.upload_started_at,
                created_at=self.clock(),
            )
            self._classify(capture, staged, created)
            # Inserted with Core: the ORM unit of work cost more than all the other queries of
            # a finished upload together. Columns left unset take their column defaults.
            values = {key: value for key, value in vars(capture).items() if key in _COLUMNS}
            result = self.db.connection().execute(_INSERT, values)
            capture.id = result.inserted_primary_key[0]
            self.db.commit()
        except IntegrityError:
            # This upload is recorded already: an earlier call, or another process racing us.
            self.db.rollback()
            self._remove_unreferenced(created)
            existing = self._by_upload_id(upload.upload_id)
            if existing is None:
                raise
            return existing
        except BaseException:
            self.db.rollback()
            self._remove_unreferenced(created)
            raise
        finally:
            if staged.path is not None:
                self.store.discard(staged.path)
        return CaptureResult.of(capture)

    def reprocess(self, capture_id: int) -> CaptureResult:
        """Re-run validation and the thumbnail from the stored original (after a fix or a lost
        thumbnail). The original is re-hashed first: a changed file is never trusted."""
        capture = self.db.get(Capture, capture_id)
        if capture is None:
            raise LookupError(f"capture {capture_id} does not exist")
        if capture.status == CaptureStatus.DUPLICATE and capture.duplicate_of_id is not None:
            twin = self.db.get(Capture, capture.duplicate_of_id)
            if twin is not None and twin.status == CaptureStatus.ACCEPTED:
                return CaptureResult.of(capture)
        created: list[str] = []
        try:
            self._revalidate(capture, created)
            self.db.commit()
        except BaseException:
            self.db.rollback()
            self._remove_unreferenced(created)
            raise
        return CaptureResult.of(capture)

    # -- the decision ----------------------------------------------------------------------
    def _classify(self, capture: NewCapture, staged: StagedFile, created: list[str]) -> None:
        expected = capture.metadata_extra.get("expected_sha256")
        if expected and expected != staged.sha256:
            self._reject(capture, f"sha256 mismatch: expected {expected}, got {staged.sha256}")
            self._publish_original(capture, staged, created)
            return
        head = staged.head
        fmt = imaging.sniff_format(head)
        if fmt is None:
            # Not JPEG, PNG or WebP by its magic bytes: Pillow, opened with just those formats,
            # cannot identify it either, so process_image would reject it with exactly this
            # reason. Deciding here skips Pillow and the twin query: bytes with an accepted twin
            # would have had the same magic bytes. (Random or foreign files are common: the
            # benchmarks upload random bytes, and a wrong file picker sends PDFs.)
            self._reject(capture, imaging.unsupported_reason(head))
            self._publish_original(capture, staged, created)
            return
        twin = self._accepted_twin(capture.session_id, staged.sha256)
        if twin is not None:
            # Same bytes already accepted in this session: point at its files, store nothing.
            capture.status = CaptureStatus.DUPLICATE.value
            capture.duplicate_of_id = twin.id
            for name in ("original_path", "thumbnail_path", "width", "height", "format", "exif"):
                setattr(capture, name, getattr(twin, name))
            capture.taken_at = twin.taken_at
            return
        if staged.size > self.max_image_bytes or staged.path is None:
            # process_image would say the same before reading further; an upload staged by
            # reference (too large, on S3) is never read at all.
            self._reject(capture, imaging.too_large_reason(staged.size, self.max_image_bytes))
            capture.format = fmt
            capture.width = capture.height = None
        else:
            self._inspect(capture, staged.path, created, replace_thumbnail=False)
        self._publish_original(capture, staged, created)

    def _revalidate(self, capture: Capture, created: list[str]) -> None:
        relative = capture.original_path
        if not relative or not self.store.exists(relative):
            self._reject(capture, "original file is missing from the store")
            return
        with self.store.local_copy(relative) as path:  # a download when the store is S3
            if _sha256_of(path) != capture.sha256:
                self._reject(capture, "stored original does not match its sha256")
                return
            expected = (capture.metadata_extra or {}).get("expected_sha256")
            if expected and expected != capture.sha256:
                self._reject(capture, f"sha256 mismatch: expected {expected}, got {capture.sha256}")
                return
            capture.duplicate_of_id = None
            self._inspect(capture, path, created, replace_thumbnail=True)
        if capture.status == CaptureStatus.ACCEPTED:
            twin = self._accepted_twin(capture.session_id, capture.sha256, before=capture.id)
            if twin is not None:
                capture.status = CaptureStatus.DUPLICATE.value
                capture.duplicate_of_id = twin.id

    def _inspect(
        self,
        capture: Capture | NewCapture,
        path: Path,
        created: list[str],
        *,
        replace_thumbnail: bool,
    ) -> None:
        try:
            processed = imaging.process_image(
                path,
                declared_type=capture.declared_type,
                max_pixels=self.max_pixels,
                max_bytes=self.max_image_bytes,
                thumbnail_size=self.thumbnail_size,
                draft=self.draft,
            )
        except imaging.ImageRejected as exc:
            self._reject(capture, exc.reason)
            capture.format = exc.format
            capture.width, capture.height = exc.size or (None, None)
            return
        info = processed.info
        capture.status = CaptureStatus.ACCEPTED.value
        capture.reject_reason = None
        capture.format = info.format
        capture.width, capture.height = info.width, info.height
        capture.exif = info.exif
        capture.taken_at = info.taken_at
        relative = self.store.thumbnail_name(capture.sha256)
        existed = self.store.exists(relative)
        with self.store.temp_file(".jpg") as temp:
            imaging.save_thumbnail(processed.thumbnail, temp)
            if self.store.publish(temp, relative, replace=replace_thumbnail) and not existed:
                created.append(relative)
        capture.thumbnail_path = relative

    def _publish_original(
        self, capture: Capture | NewCapture, staged: StagedFile, created: list[str]
    ) -> None:
        fmt = imaging.sniff_format(staged.head)  # HEIF brands follow the first 16 bytes
        ext = imaging.FORMAT_EXT.get(fmt or "", "bin")
        stored, created_now = self.store.publish_original(
            staged, self.store.original_name(capture.sha256, ext)
        )
        if created_now:
            created.append(stored)
        capture.original_path = stored

    @staticmethod
    def _reject(capture: Capture | NewCapture, reason: str) -> None:
        capture.status = CaptureStatus.REJECTED.value
        capture.reject_reason = imaging.ascii_reason(reason, limit=255)
        capture.thumbnail_path = None

    # -- queries ---------------------------------------------------------------------------
    def _assessment_of(self, session_id: int) -> int | None:
        cache = self.session_cache
        if cache is not None and session_id in cache:
            return cache[session_id]
        found = self.db.connection().scalar(_SESSION_ASSESSMENT, {"session_id": session_id})
        if found is not None and cache is not None:
            if len(cache) >= SESSION_CACHE_SIZE:
                cache.clear()  # only existing sessions get here: a full cache is rare
            cache[session_id] = found
        return found

    def _by_upload_id(self, upload_id: str) -> CaptureResult | None:
        """The result already recorded for this upload: three columns, no ORM object."""
        row = self.db.connection().execute(_BY_UPLOAD_ID, {"upload_id": upload_id}).first()
        return CaptureResult(row.id, row.status, row.reject_reason) if row else None

    def _accepted_twin(
        self, session_id: int, sha256: str, *, before: int | None = None
    ) -> Capture | None:
        params = {"session_id": session_id, "sha256": sha256}
        if before is None:
            return self.db.scalar(_ACCEPTED_TWIN, params)
        return self.db.scalar(_ACCEPTED_TWIN_BEFORE, {**params, "before": before})

    def _remove_unreferenced(self, created: list[str]) -> None:
        """Roll back files this call created -- unless a committed row (another upload of the
        same bytes, racing us) already points at the same content-addressed file."""
        for relative in created:
            try:
                used = _referenced(self.db, relative)
            except SQLAlchemyError:  # the database is what just failed; files we created
                used = False  # a moment ago are ours to remove
            if not used:
                self.store.delete(relative)


def _referenced(db: Session, relative: str, *, besides: int | None = None) -> bool:
    query = select(Capture.id).where(
        or_(Capture.original_path == relative, Capture.thumbnail_path == relative)
    )
    if besides is not None:
        query = query.where(Capture.id != besides)
    return db.scalar(query.limit(1)) is not None


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(BLOCK_SIZE):
            digest.update(block)
    return digest.hexdigest()


def delete_capture_files(db: Session, store: CaptureStore, capture: Capture) -> list[str]:
    """Remove a capture's original and thumbnail unless another capture shares them (files are
    content-addressed: duplicates and the same photo in other sessions point at one file).
    Returns the relative paths removed; the caller deletes the row and commits."""
    removed = []
    for relative in {capture.original_path, capture.thumbnail_path} - {None}:
        assert relative is not None
        if not _referenced(db, relative, besides=capture.id) and store.delete(relative):
            removed.append(relative)
    return sorted(removed)
