"""One file to one tus upload: create or resume, send in chunks, retry, read the capture result.

The protocol is tuspy's (uploader.client adapts it); this module adds the rest: a session per
thread, our resume state instead of tuspy's TinyDB and fingerprint, starting over when the
server forgot an upload (404/410), the shared wait when the server is unreachable
(uploader.wait), retries with backoff on 5xx and RETRY_STATUSES, problems that stop the whole
run (RunStopped), and the Tuscam-Capture-* headers of the completing response (else
GET /api/uploads/<id>).
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

from uploader import errors
from uploader.client import (
    GONE_STATUSES,
    RETRY_STATUSES,
    Refused,
    StaleUploadUrl,
    TimeoutSession,
    TransferError,
    TuscamUploader,
    offset_of,
)
from uploader.errors import Interrupted, RunStopped, network_cause, server_message, tls_problem
from uploader.files import LocalFile, sha256_file
from uploader.state import StateStore, UploadKey
from uploader.wait import ServerWait, WaitDisplay

# Statuses a file ends with; the first three come from the server (Tuscam-Capture-Status).
ACCEPTED, DUPLICATE, REJECTED = "accepted", "duplicate", "rejected"
SKIPPED, FAILED, INTERRUPTED = "skipped", "failed", "interrupted"
LANDED = frozenset({ACCEPTED, DUPLICATE, SKIPPED})

# Seconds to wait before the n-th consecutive failed attempt of one file while the server
# answers (5xx, 429 ..., or only this file's connection failing); progress resets the count (as
# tus-js-client does). An unreachable server is not counted here: every worker waits for it
# together (uploader.wait), up to Options.max_wait.
DEFAULT_DELAYS = (0.0, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 30.0, 30.0, 30.0)

# Refusals of a creation that concern the account or the session, not the file: every other
# file would be refused the same way, so the run stops.
SESSION_REFUSALS = {
    403: errors.NOT_ALLOWED,
    404: errors.NO_SUCH_SESSION,
    409: errors.SESSION_CLOSED,
}


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
    max_wait: float | None = 3600.0  # seconds an unreachable server is waited for; None: ever
    max_backoff: float = 30.0  # the longest pause between two tries of an unreachable server

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
    error: str | None = None  # uploader.errors code, when the file did not land
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
            "error": self.error,
            "message": self.reason if self.error else None,
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
        display: WaitDisplay | None = None,
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
        self.server_wait = ServerWait(
            self.probe,
            self.stop,
            max_wait=options.max_wait,
            max_backoff=options.max_backoff,
            display=display,
        )
        self._halt_lock = threading.Lock()
        self.halt: RunStopped | None = None  # the problem that stopped the run, if one did

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

    def probe(self) -> str | None:
        """Is the server there? None when it answers (anything but 502/503/504), else why not,
        in words. OPTIONS on the tus endpoint: no authentication, no database."""
        try:
            resp = self.session().options(
                self.options.files_url, headers={"Tus-Resumable": "1.0.0"}
            )
        except requests.exceptions.RequestException as exc:
            return network_cause(exc)  # None for a TLS failure: the request itself reports it
        resp.close()
        return network_cause(None, resp.status_code)

    def stopping(self) -> bool:
        return self.stop.is_set() or self.halt is not None

    def _check_stop(self) -> None:
        if self.halt is not None:
            raise self.halt.again()
        if self.stop.is_set():
            raise Interrupted("stopped")

    def _halt(self, problem: RunStopped) -> None:
        """Stop every worker for a problem that concerns the whole run (the first one wins)."""
        with self._halt_lock:
            if self.halt is None:
                self.halt = problem

    def _wait(self, failures: int) -> None:
        delays = self.options.retry_delays
        if self._sleep(delays[min(failures, len(delays)) - 1]):
            raise Interrupted("stopped")
        self._check_stop()

    def call(self, what: str, call: Callable[[], Any]) -> Any:
        """Run `call` until it succeeds: an unreachable server is waited for (with every other
        worker), 5xx and RETRY_STATUSES retried with backoff; other refusals raise."""
        failures = 0
        while True:
            self._check_stop()
            self.server_wait.hold()
            try:
                return call()
            except TusCommunicationError as exc:
                failures = self._failed(what, exc, failures)

    def _failed(self, what: str, exc: TusCommunicationError, failures: int) -> int:
        """Raise for a failure that asking again will not fix; else wait (for the server, with
        every worker, or this file's backoff) and return the count of this file's failures."""
        status = exc.status_code
        cause = network_cause(exc, status)
        if cause is not None and self.server_wait.unreachable(cause):
            return failures  # the server was away and is back: not this file's failure
        tls = tls_problem(exc)
        if tls is not None:
            raise RunStopped(errors.TLS_ERROR, f"{tls}: check --server")
        if status == 401:
            raise errors.bad_token(server_message(status, exc.response_content))
        if status is not None and 400 <= status < 500 and status not in RETRY_STATUSES:
            raise Refused(status, server_message(status, exc.response_content)) from exc
        failures += 1
        if failures > len(self.options.retry_delays):
            if cause is not None:
                code, detail = errors.CONNECTION_FAILED, cause
            elif status is not None and status >= 400:
                code = errors.SERVER_ERROR
                detail = f"{status}: {server_message(status, exc.response_content)}"
            else:
                code, detail = errors.BAD_RESPONSE, str(exc)
            raise TransferError(code, f"{what} failed {failures} times; last: {detail}") from exc
        self._wait(failures)
        return failures

    # -- one file --------------------------------------------------------------------------

    def upload(
        self, file: LocalFile, progress: Callable[[int], None] = lambda offset: None
    ) -> FileResult:
        """Upload one file (or find it done); never raises for a per-file failure. A problem
        of the whole run (RunStopped) sets `halt`, and every worker stops."""
        result = FileResult(file.path, FAILED, file.size)
        try:
            self._check_stop()
            self._upload(file, result, progress)
        except Interrupted:
            result.status, result.error = INTERRUPTED, errors.INTERRUPTED
            result.reason = "not finished: run the same command again to resume"
        except RunStopped as exc:
            self._halt(exc)
            result.status, result.error, result.reason = INTERRUPTED, exc.code, exc.message
        except TransferError as exc:
            result.status, result.error, result.reason = FAILED, exc.code, exc.message
        except OSError as exc:
            result.status, result.error = FAILED, errors.FILE_UNREADABLE
            result.reason = f"cannot read the file: {exc.strerror or exc}"
        except Exception as exc:  # noqa: BLE001 - one odd file must not end the whole run
            result.status, result.error = FAILED, errors.INTERNAL_ERROR
            result.reason = f"internal error ({type(exc).__name__}: {exc}); please report it"
        if result.status == REJECTED:
            result.error = errors.REJECTED
        return result

    def _upload(self, file: LocalFile, result: FileResult, progress: Callable[[int], None]) -> None:
        result.sha256 = sha256 = self.sha256(file)
        key = self.key(file, sha256)
        entry = self.state.get(key)
        if entry is not None and entry.done:
            result.upload_url = entry.upload_url
            result.capture_id, result.reason = entry.capture_id, entry.reason
            result.from_state = True
            # A rejected image stays rejected: say so again rather than "already there".
            result.status = REJECTED if entry.capture_status == REJECTED else SKIPPED
            progress(file.size)
            return
        stored_url = entry.upload_url if entry else None
        with open(file.path, "rb") as stream:
            up = TuscamUploader(
                file_stream=stream,
                client=self.client,
                chunk_size=self.options.chunk_size,
                metadata=self.metadata(file, sha256),
                session=self.session(),
            )
            if up.get_file_size() != file.size:
                raise TransferError(
                    errors.FILE_CHANGED, "the file changed size while it was being read; run again"
                )
            completion: dict[str, str] | None = None
            if stored_url:
                try:
                    completion = self._resume(up, stored_url, file)
                    result.resumed_from = up.offset
                except (StaleUploadUrl, Refused) as exc:
                    # 403: an upload of another user (a different token): not ours to resume.
                    if isinstance(exc, Refused) and exc.status != 403:
                        raise
                    result.restarted = True
                    up.url, up.offset = None, 0
                    self.state.set_url(key, file.size, None)
            for attempt in range(2):
                if up.url is None:
                    up.url = self._create(up)
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
                except StaleUploadUrl:
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

    def _create(self, up: TuscamUploader) -> str:
        """POST a new upload. A refusal about the session or the account stops the run: every
        other file would be refused the same way (and nothing was created)."""

        def create() -> str:
            try:
                return up.create_url()
            except TusCommunicationError as exc:
                status = exc.status_code
                if status not in SESSION_REFUSALS:
                    raise
                detail = f"{status}: {server_message(status, exc.response_content)}"
                problem = errors.session_problem(
                    SESSION_REFUSALS[status], self.options.session_id, detail
                )
                raise problem from exc

        return self.call("creating the upload", create)

    def _resume(self, up: TuscamUploader, url: str, file: LocalFile) -> dict[str, str] | None:
        """Point the uploader at a stored URL; the HEAD's headers if it is already complete."""
        up.url = url
        resp = self.call("asking the server for the offset", up.head)
        length = resp.headers.get("Upload-Length")
        if length is not None and length != str(file.size):
            raise StaleUploadUrl(
                f"{url} holds an upload of {length} bytes, the file has {file.size}"
            )
        up.offset = offset_of(resp)
        if up.offset > file.size:
            raise StaleUploadUrl(f"{url} is at offset {up.offset}, past the end of the file")
        if up.offset == file.size:
            return {k.lower(): v for k, v in resp.headers.items()}
        return None

    def _send(self, up: TuscamUploader, size: int, progress: Callable[[int], None]) -> dict:
        """PATCH chunks until the server has every byte; the completing response's headers."""
        failures = 0
        while True:
            self._check_stop()
            self.server_wait.hold()
            try:
                up.upload_chunk()
            except (TusCommunicationError, TypeError, ValueError) as exc:
                if isinstance(exc, TusCommunicationError):
                    if exc.status_code in GONE_STATUSES:
                        raise StaleUploadUrl(f"the server no longer knows {up.url}") from exc
                    error = exc
                else:  # upload_chunk's int() of a missing/garbled Upload-Offset
                    error = TusCommunicationError(
                        "the answer to a PATCH had no valid Upload-Offset"
                    )
                before = up.offset
                failures = self._failed("sending", error, failures)
                resp = self.call("asking the server for the offset", up.head)
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
                raise TusCommunicationError("the server has recorded no capture for it yet")
            if resp.status_code != 200:
                raise TusCommunicationError("", resp.status_code, resp.content)
            try:
                return resp.json()
            except ValueError as error:
                raise TusCommunicationError("the capture result is not JSON") from error

        data = self.call("asking for the capture result", ask)
        if not isinstance(data, dict) or data.get("status") not in (ACCEPTED, DUPLICATE, REJECTED):
            raise TransferError(
                errors.BAD_RESPONSE, f"the server's answer at {api_url} is not a capture result"
            )
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
    entry = transfer.state.get(transfer.key(file, sha256))
    if entry is None:
        return Plan(file, sha256, "new")
    if entry.done:
        word = "rejected" if entry.capture_status == REJECTED else "done"
        return Plan(
            file,
            sha256,
            f"{word} ({entry.capture_status}, capture {entry.capture_id})",
            entry.upload_url,
            {"reason": entry.reason},
        )
    if entry.upload_url:
        return Plan(file, sha256, "partial (will resume)", entry.upload_url)
    return Plan(file, sha256, "new")
