"""One file to one tus upload: create or resume, send in chunks, retry, read the capture result.

The protocol is tuspy's (uploader.client adapts it); this module adds the rest: a session per
thread, our resume state instead of tuspy's TinyDB and fingerprint, starting over when the
server forgot an upload (404/410), retries with backoff on network errors and 5xx only, and the
Tuscam-Capture-* headers of the completing response (else GET /api/uploads/<id>).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from tusclient.client import TusClient
from tusclient.exceptions import TusCommunicationError

from uploader.client import (
    GONE_STATUSES,
    RETRY_STATUSES,
    Interrupted,
    Refused,
    TimeoutSession,
    TransferError,
    TuscamUploader,
    UploadGone,
    offset_of,
    server_message,
)
from uploader.files import LocalFile, sha256_file
from uploader.state import StateStore, UploadKey

# Statuses a file ends with; the first three come from the server (Tuscam-Capture-Status).
ACCEPTED, DUPLICATE, REJECTED = "accepted", "duplicate", "rejected"
SKIPPED, FAILED, INTERRUPTED = "skipped", "failed", "interrupted"
LANDED = frozenset({ACCEPTED, DUPLICATE, SKIPPED})

# Seconds to wait before the n-th consecutive failed attempt; progress resets the count (as
# tus-js-client does), so a connection that keeps dropping after progress is retried at once.
DEFAULT_DELAYS = (0.0, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 30.0, 30.0, 30.0)


@dataclass(frozen=True)
class Options:
    server: str
    session_id: int
    token: str
    chunk_size: int = 4 << 20
    capture_trigger: str = "bulk"
    capture_type: str = "photo"
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    retry_delays: Sequence[float] = DEFAULT_DELAYS

    @property
    def files_url(self) -> str:
        return self.server.rstrip("/") + "/files/"


@dataclass
class FileResult:
    path: Path
    status: str
    size: int
    capture_id: int | None = None
    reason: str | None = None
    upload_url: str | None = None
    sha256: str | None = None
    sent: int = 0  # body bytes confirmed by the server during this run
    resumed_from: int = 0
    restarted: bool = False  # the stored URL was gone and the file started over
    from_state: bool = False

    @property
    def landed(self) -> bool:
        return self.status in LANDED

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "status": self.status,
            "capture_id": self.capture_id,
            "reason": self.reason,
            "bytes": self.size,
            "upload_url": self.upload_url,
            "sha256": self.sha256,
            "sent": self.sent,
            "resumed_from": self.resumed_from,
            "restarted": self.restarted,
        }


class Transfer:
    """Uploads files for one run; `upload()` may be called from several threads at once."""

    def __init__(
        self,
        options: Options,
        state: StateStore,
        stop: threading.Event | None = None,
        sleep: Callable[[float], bool] | None = None,
    ) -> None:
        self.options = options
        self.state = state
        self.stop = stop or threading.Event()
        self._sleep = sleep or self.stop.wait  # returns True when stopping
        self.client = TusClient(
            options.files_url, headers={"Authorization": f"Bearer {options.token}"}
        )
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()

    # -- plumbing --------------------------------------------------------------------------

    def session(self) -> requests.Session:
        sess = getattr(self._local, "session", None)
        if sess is None:
            sess = TimeoutSession((self.options.connect_timeout, self.options.read_timeout))
            self._local.session = sess
            with self._sessions_lock:
                self._sessions.append(sess)
        return sess

    def close(self) -> None:
        with self._sessions_lock:
            for sess in self._sessions:
                sess.close()
            self._sessions.clear()

    def key(self, file: LocalFile, sha256: str) -> UploadKey:
        return UploadKey.make(self.options.server, self.options.session_id, file.path, sha256)

    def sha256(self, file: LocalFile) -> str:
        st = os.stat(file.path)
        cached = self.state.cached_sha256(file.path, st.st_size, st.st_mtime_ns)
        if cached:
            return cached
        digest = sha256_file(file.path)
        self.state.remember_sha256(file.path, st.st_size, st.st_mtime_ns, digest)
        return digest

    def metadata(self, file: LocalFile, sha256: str) -> dict[str, str]:
        meta = {
            "filename": file.path.name,
            "session_id": str(self.options.session_id),
            "capture_trigger": self.options.capture_trigger,
            "capture_type": self.options.capture_type,
            "sha256": sha256,
        }
        if file.filetype:
            meta["filetype"] = file.filetype
        return meta

    def _wait(self, failures: int) -> None:
        delays = self.options.retry_delays
        if self._sleep(delays[min(failures, len(delays)) - 1]):
            raise Interrupted("stopped")

    def _retrying(self, what: str, call: Callable[[], Any]) -> Any:
        """Run `call`, retrying network errors, 5xx and RETRY_STATUSES with backoff."""
        failures = 0
        while True:
            if self.stop.is_set():
                raise Interrupted("stopped")
            try:
                return call()
            except TusCommunicationError as exc:
                failures = self._failed(what, exc, failures)

    def _failed(self, what: str, exc: TusCommunicationError, failures: int) -> int:
        """Raise Refused for a failure asking again will not fix, else wait and count it."""
        status = exc.status_code
        if status is not None and 400 <= status < 500 and status not in RETRY_STATUSES:
            raise Refused(status, server_message(status, exc.response_content)) from exc
        failures += 1
        if failures > len(self.options.retry_delays):
            detail = server_message(status, exc.response_content) if status else str(exc)
            raise TransferError(f"{what} failed {failures} times; last: {detail}") from exc
        self._wait(failures)
        return failures

    # -- one file --------------------------------------------------------------------------

    def upload(
        self, file: LocalFile, progress: Callable[[int], None] = lambda offset: None
    ) -> FileResult:
        """Upload one file (or find it done); never raises for a per-file failure."""
        result = FileResult(file.path, FAILED, file.size)
        try:
            self._upload(file, result, progress)
        except Interrupted:
            result.status = INTERRUPTED
        except Refused as exc:
            result.status, result.reason = FAILED, str(exc)
        except TransferError as exc:
            result.status, result.reason = FAILED, str(exc)
        except OSError as exc:
            result.status, result.reason = FAILED, f"cannot read the file: {exc}"
        except Exception as exc:  # noqa: BLE001 - one odd file must not end the whole run
            result.status, result.reason = FAILED, f"unexpected {type(exc).__name__}: {exc}"
        return result

    def _upload(self, file: LocalFile, result: FileResult, progress: Callable[[int], None]) -> None:
        result.sha256 = sha256 = self.sha256(file)
        key = self.key(file, sha256)
        record = self.state.get(key)
        if record is not None and record.done:
            result.upload_url = record.upload_url
            result.capture_id, result.reason = record.capture_id, record.reason
            result.from_state = True
            # A rejected image stays rejected: say so again rather than "already there".
            result.status = REJECTED if record.capture_status == REJECTED else SKIPPED
            progress(file.size)
            return
        stored_url = record.upload_url if record else None
        with open(file.path, "rb") as stream:
            up = TuscamUploader(
                file_stream=stream,
                client=self.client,
                chunk_size=self.options.chunk_size,
                metadata=self.metadata(file, sha256),
                session=self.session(),
            )
            if up.get_file_size() != file.size:
                raise TransferError("the file changed size while it was being read; run again")
            completion: dict[str, str] | None = None
            if stored_url:
                try:
                    completion = self._resume(up, stored_url, file)
                    result.resumed_from = up.offset
                except (UploadGone, Refused) as exc:
                    # 403: an upload of another user (a different token): not ours to resume.
                    if isinstance(exc, Refused) and exc.status != 403:
                        raise
                    result.restarted = True
                    up.url, up.offset = None, 0
                    self.state.set_url(key, file.size, None)
            for attempt in range(2):
                if up.url is None:
                    up.url = self._retrying("creating the upload", up.create_url)
                    up.offset = 0
                    self.state.set_url(key, file.size, up.url)
                    completion = up.creation_headers
                result.upload_url = up.url
                progress(up.offset)
                try:
                    if up.offset < file.size:
                        start = up.offset
                        completion = self._send(up, file.size, progress)
                        result.sent += file.size - start
                    break
                except UploadGone:
                    # Expired or deleted while we were sending: once more from the start.
                    if attempt:
                        raise
                    result.restarted = True
                    up.url = None
                    self.state.set_url(key, file.size, None)
            assert completion is not None
            capture_id, status, reason = self._outcome(completion, up.url)
        result.capture_id, result.status, result.reason = capture_id, status, reason
        self.state.mark_done(key, file.size, up.url, capture_id, status, reason)

    def _resume(self, up: TuscamUploader, url: str, file: LocalFile) -> dict[str, str] | None:
        """Point the uploader at a stored URL; the HEAD's headers if it is already complete."""
        up.url = url
        resp = self._retrying("asking the server for the offset", up.head)
        length = resp.headers.get("Upload-Length")
        if length is not None and length != str(file.size):
            raise UploadGone(f"{url} holds an upload of {length} bytes, the file has {file.size}")
        up.offset = offset_of(resp)
        if up.offset > file.size:
            raise UploadGone(f"{url} is at offset {up.offset}, past the end of the file")
        if up.offset == file.size:
            return {k.lower(): v for k, v in resp.headers.items()}
        return None

    def _send(self, up: TuscamUploader, size: int, progress: Callable[[int], None]) -> dict:
        """PATCH chunks until the server has every byte; the completing response's headers."""
        failures = 0
        while True:
            if self.stop.is_set():
                raise Interrupted("stopped")
            try:
                up.upload_chunk()
            except (TusCommunicationError, TypeError, ValueError) as exc:
                if isinstance(exc, TusCommunicationError):
                    if exc.status_code in GONE_STATUSES:
                        raise UploadGone(f"the server no longer knows {up.url}") from exc
                    error = exc
                else:  # upload_chunk's int() of a missing/garbled Upload-Offset
                    error = TusCommunicationError(f"bad response to PATCH: {exc}")
                before = up.offset
                failures = self._failed("sending", error, failures)
                resp = self._retrying("asking the server for the offset", up.head)
                up.offset = offset_of(resp)
                progress(up.offset)
                if up.offset > before:
                    failures = 0
                if up.offset >= size:
                    # The last PATCH arrived but its response was lost: HEAD tells the outcome.
                    return {k.lower(): v for k, v in resp.headers.items()}
                continue
            failures = 0
            progress(up.offset)
            if up.offset >= size:
                return up.request.response_headers

    def _outcome(self, headers: dict[str, str], url: str) -> tuple[int | None, str, str | None]:
        """(capture id, status, reason) from the completing response, else from the API."""
        status = headers.get("tuscam-capture-status")
        if status:
            raw_id = headers.get("tuscam-capture-id", "")
            capture_id = int(raw_id) if raw_id.isascii() and raw_id.isdigit() else None
            return capture_id, status, headers.get("tuscam-capture-reason")
        upload_id = url.rstrip("/").rsplit("/", 1)[-1]
        api_url = f"{self.options.server.rstrip('/')}/api/uploads/{upload_id}"

        def ask() -> dict[str, Any]:
            try:
                resp = self.session().get(api_url, headers=self.client.headers)
            except requests.exceptions.RequestException as error:
                raise TusCommunicationError(error) from error
            if resp.status_code == 404:
                # The finish hook may still be running, or will run on the next request.
                raise TusCommunicationError("no capture recorded yet", 503, resp.content)
            if resp.status_code != 200:
                raise TusCommunicationError("", resp.status_code, resp.content)
            return resp.json()

        data = self._retrying("asking for the capture result", ask)
        if not isinstance(data, dict) or data.get("status") not in (ACCEPTED, DUPLICATE, REJECTED):
            raise TransferError(f"unexpected answer from {api_url}: {data!r:.200}")
        return data.get("capture_id"), data["status"], data.get("reason")


@dataclass
class Plan:
    """What a dry run reports for a file."""

    file: LocalFile
    sha256: str
    state: str
    upload_url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def plan(transfer: Transfer, file: LocalFile) -> Plan:
    sha256 = transfer.sha256(file)
    record = transfer.state.get(transfer.key(file, sha256))
    if record is None:
        return Plan(file, sha256, "new")
    if record.done:
        word = "rejected" if record.capture_status == REJECTED else "done"
        return Plan(
            file,
            sha256,
            f"{word} ({record.capture_status}, capture {record.capture_id})",
            record.upload_url,
            {"reason": record.reason},
        )
    if record.upload_url:
        return Plan(file, sha256, "partial (will resume)", record.upload_url)
    return Plan(file, sha256, "new")
