"""The tus server observed from outside (app/tus knows nothing of metrics or events): a WSGI
middleware, wrappers of the app's hooks and of the locker; pages and the API are timed too."""

from __future__ import annotations

import base64
import binascii
import functools
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Any

from app.ops import metrics
from app.ops.events import emit
from app.tus import FinishedData, Hooks, Lock, Locker, LockTimeout, UploadInfo

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
USER_KEY = "tuscam.user"  # environ: the authenticated user id of a tus request (access log)
ROUTE_KEY = "tuscam.route"  # environ: the URL rule Flask matched (a pattern, never a path)

_DIGITS = re.compile(r"[0-9]{1,19}")
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and _DIGITS.fullmatch(value) else None


def metadata_session_id(header: str | None) -> int | None:
    """session_id from an Upload-Metadata header, when it is there and a number."""
    for pair in (header or "").split(",")[:64]:
        key, _, value = pair.strip().partition(" ")
        if key == "session_id":
            try:
                return _int(base64.b64decode(value.strip(), validate=True).decode("ascii"))
            except (binascii.Error, ValueError):
                return None
    return None


class Instrumented:
    """Counts tus requests (prefix) and times every other request, around `app`."""

    def __init__(self, app: WsgiApp, prefix: str = "/files") -> None:
        self.app = app
        self.prefix = prefix.rstrip("/")

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if path == self.prefix or path.startswith(self.prefix + "/"):
            return self._tus(environ, start_response)
        return self._timed(environ, start_response)

    def _timed(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        start = time.perf_counter()
        answer: list[str] = []

        def record(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            answer[:] = [status]
            return start_response(status, headers, *exc_info)

        try:
            return self.app(environ, record)
        finally:
            route = environ.get(ROUTE_KEY, "unmatched")
            method = environ.get("REQUEST_METHOD", "")
            method = method if method in metrics.METHODS or method == "PUT" else "other"
            metrics.HTTP_DURATION.labels(route, method).observe(time.perf_counter() - start)
            status = answer[0].split(None, 1)[0] if answer else "500"
            metrics.HTTP_REQUESTS.labels(method, status).inc()

    def _tus(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        method = environ.get("REQUEST_METHOD", "")
        override = environ.get("HTTP_X_HTTP_METHOD_OVERRIDE")
        if method == "POST" and override:
            method = override.strip().upper()
        answer: dict[str, Any] = {}

        def record(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            answer["status"], answer["headers"] = status, headers
            return start_response(status, headers, *exc_info)

        receiving = method in ("PATCH", "POST") and _has_body(environ)
        if receiving:
            metrics.TUS_IN_PROGRESS.inc()
        try:
            return self.app(environ, record)
        finally:
            if receiving:
                metrics.TUS_IN_PROGRESS.dec()
            if "status" in answer:
                self._count(environ, method, answer["status"], answer["headers"])

    def _count(
        self, environ: dict[str, Any], method: str, status_line: str, headers: list[Any]
    ) -> None:
        status = int(status_line.split(None, 1)[0])
        _requests(method if method in metrics.METHODS else "other", status).inc()
        answered = {name.lower(): value for name, value in headers}
        offset = _int(answered.get("upload-offset"))
        if method == "PATCH" and offset is not None:
            sent_at = _int(environ.get("HTTP_UPLOAD_OFFSET"))
            if sent_at is not None and offset > sent_at:
                metrics.TUS_BYTES.inc(offset - sent_at)
        elif method == "POST" and status == 201:
            metrics.TUS_CREATED.inc()
            if offset and _has_body(environ):  # a final concatenation's offset came in its parts
                metrics.TUS_BYTES.inc(offset)
            upload_id = answered.get("location", "").rstrip("/").rsplit("/", 1)[-1]
            emit(
                "upload-created",
                upload_id=upload_id if _UPLOAD_ID.fullmatch(upload_id) else None,
                user=environ.get(USER_KEY),
                session_id=metadata_session_id(environ.get("HTTP_UPLOAD_METADATA")),
                length=_int(environ.get("HTTP_UPLOAD_LENGTH")),
                bytes=offset,
                status=status,
            )
        elif method == "DELETE" and status == 204:
            metrics.TUS_TERMINATED.inc()


@functools.cache
def _requests(method: str, status: int) -> Any:
    """The labelled child, looked up once (method and status are bounded sets)."""
    return metrics.TUS_REQUESTS.labels(method, str(status))


def _has_body(environ: dict[str, Any]) -> bool:
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return True
    return (_int(environ.get("CONTENT_LENGTH")) or 0) > 0


def remember_user(
    authenticate: Callable[[dict[str, Any]], tuple[str, bool] | None],
) -> Callable[[dict[str, Any]], tuple[str, bool] | None]:
    """Wrap the tus adapter's authentication so events and the access log name the user id."""

    def remembering(environ: dict[str, Any]) -> tuple[str, bool] | None:
        who = authenticate(environ)
        if who is not None:
            environ[USER_KEY] = who[0]
        return who

    return remembering


class MeteredLocker:
    """A Locker that times waits (tuscam_tus_lock_wait_seconds) and counts and logs timeouts.
    A try-once lock (timeout 0: reconcile skipping a busy upload) is no wait and not counted."""

    def __init__(self, inner: Locker) -> None:
        self.inner = inner

    def lock(
        self, key: str, timeout: float, *, request_release: bool = False
    ) -> AbstractContextManager[Lock]:
        return _MeteredLock(
            self.inner.lock(key, timeout, request_release=request_release), key, timeout
        )


class _MeteredLock:
    """The inner context manager, timed on entry (a plain class: it runs on every request)."""

    __slots__ = ("inner", "key", "timeout")

    def __init__(self, inner: AbstractContextManager[Lock], key: str, timeout: float) -> None:
        self.inner, self.key, self.timeout = inner, key, timeout

    def __enter__(self) -> Lock:
        start = time.perf_counter()
        try:
            held = self.inner.__enter__()
        except LockTimeout as exc:
            if self.timeout > 0:
                metrics.TUS_LOCK_WAIT.observe(time.perf_counter() - start)
                metrics.TUS_LOCK_TIMEOUTS.inc()
                is_upload = _UPLOAD_ID.fullmatch(self.key) is not None
                emit(
                    "lock-timeout",
                    logging.WARNING,
                    upload_id=self.key if is_upload else None,
                    lock=None if is_upload else self.key,
                    duration_ms=round(exc.waited * 1000, 1),
                    status=423,
                )
            raise
        if self.timeout > 0:
            metrics.TUS_LOCK_WAIT.observe(time.perf_counter() - start)
        return held

    def __exit__(self, *exc: Any) -> bool | None:
        return self.inner.__exit__(*exc)


def observed_hooks(hooks: Hooks) -> Hooks:
    """The app's hooks plus metrics and named events: progress, finish (capture), terminate."""
    progress, terminated = hooks.post_receive, hooks.post_terminate

    def on_progress(info: UploadInfo) -> None:
        emit("upload-progress", bytes=info.offset, length=info.length, **_who(info))
        if progress is not None:
            progress(info)

    def on_terminate(info: UploadInfo) -> None:
        emit("upload-terminated", bytes=info.offset, **_who(info))
        if terminated is not None:
            terminated(info)

    return replace(
        hooks,
        finish=None if hooks.finish is None else _observed_finish(hooks.finish),
        post_receive=on_progress,
        post_terminate=on_terminate,
    )


def _observed_finish(
    finish: Callable[[UploadInfo, FinishedData], Mapping[str, str]],
) -> Callable[[UploadInfo, FinishedData], Mapping[str, str]]:
    def on_finish(info: UploadInfo, data: FinishedData) -> Mapping[str, str]:
        start = time.perf_counter()
        try:
            headers = finish(info, data)
        except Exception as exc:
            metrics.FINISH_HOOK_ERRORS.inc()
            # The tus handler logs the traceback itself; the event says which upload and why.
            emit(
                "hook-failed",
                logging.ERROR,
                hook="finish",
                error=f"{type(exc).__name__}: {exc}"[:300],
                **_who(info),
            )
            raise
        seconds = time.perf_counter() - start
        metrics.CAPTURE_SECONDS.observe(seconds)
        metrics.TUS_FINISHED.inc()
        status = (headers or {}).get("Tuscam-Capture-Status")
        if status in metrics.CAPTURE_STATUSES:
            metrics.CAPTURES.labels(status).inc()
        emit("upload-finished", bytes=info.offset, **_who(info))
        emit(
            "capture-rejected" if status == "rejected" else "capture-recorded",
            logging.WARNING if status == "rejected" else logging.INFO,
            capture_id=_int((headers or {}).get("Tuscam-Capture-Id")),
            status=status,
            reason=(headers or {}).get("Tuscam-Capture-Reason"),
            duration_ms=round(seconds * 1000, 1),
            **_who(info),
        )
        return headers

    return on_finish


def _who(info: UploadInfo) -> dict[str, Any]:
    return {
        "upload_id": info.id,
        "user": info.owner,
        "session_id": _int(info.metadata.get("session_id")),
    }
