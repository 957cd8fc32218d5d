"""What goes wrong in tuscam-upload, in the words of the person running it: a stable code (the
`error` of the --json objects) and a message per problem, and network failures named plainly.
"""

from __future__ import annotations

import errno
import http.client
import json
import socket
import ssl
from collections.abc import Iterator

import requests
import urllib3.exceptions

# -- codes of problems that stop the whole run (exit status 2, or 75 for SERVER_UNREACHABLE) ----
BAD_TOKEN = "bad-token"
NO_SUCH_SESSION = "no-such-session"
SESSION_CLOSED = "session-closed"
NOT_ALLOWED = "not-allowed"
NOT_TUSCAM = "not-tuscam"
TLS_ERROR = "tls-error"
SERVER_FAILING = "server-failing"
SERVER_UNREACHABLE = "server-unreachable"
INTERRUPTED = "interrupted"
USAGE = "usage"

# -- codes of one file's problem (the run goes on) ---------------------------------------------
REJECTED = "rejected"  # the server looked at the image and refused it (its reason is the message)
REFUSED = "refused"  # the server refused the upload with a 4xx that asking again will not change
SERVER_ERROR = "server-error"  # 5xx, 408, 409, 423 or 429 again and again for this file
CONNECTION_FAILED = "connection-failed"  # this file's connections kept failing; others did not
BAD_RESPONSE = "bad-response"  # an answer that breaks the tus protocol
UPLOAD_LOST = "upload-lost"  # the server forgot the upload twice while it was being sent
FILE_UNREADABLE = "file-unreadable"
FILE_CHANGED = "file-changed"
INTERNAL_ERROR = "internal-error"  # a bug in tuscam-upload: please report it

# Gateway answers that mean "the server behind me is away", not "your request is wrong".
UNAVAILABLE_STATUSES = {502: "bad gateway", 503: "service unavailable", 504: "gateway timeout"}


class RunStopped(Exception):
    """A problem that concerns every file, not one: the run stops."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def again(self) -> RunStopped:
        """A fresh exception with the same code and message (one per thread that raises it)."""
        return RunStopped(self.code, self.message)


class Interrupted(Exception):
    """The run is stopping (Ctrl-C, SIGTERM); the state keeps every upload URL for next time."""


def bad_token(said: str) -> RunStopped:
    return RunStopped(
        BAD_TOKEN,
        f"the server refused the API token (401: {said}); it is wrong, expired or revoked: "
        "create a new one with `tuscam create-token USER` and set TUSCAM_TOKEN",
    )


def session_problem(code: str, session_id: int, detail: str) -> RunStopped:
    """NO_SUCH_SESSION, SESSION_CLOSED or NOT_ALLOWED for capture session `session_id`."""
    if code == NO_SUCH_SESSION:
        text = f"there is no capture session {session_id} you can upload to ({detail})"
        return RunStopped(code, f"{text}: check --session")
    if code == SESSION_CLOSED:
        text = f"capture session {session_id} is closed ({detail})"
        return RunStopped(code, f"{text}: choose an open session, or have this one reopened")
    return RunStopped(code, f"you may not upload to capture session {session_id} ({detail})")


def network_cause(exc: BaseException | None, status: int | None = None) -> str | None:
    """Why the server could not be reached, in a few plain words ("connection refused"), or
    None when `exc` (or `status`) is not a failure to reach the server (waiting cannot fix it).
    """
    if status in UNAVAILABLE_STATUSES:
        return f"{UNAVAILABLE_STATUSES[status]}, {status}"
    if exc is None:
        return None
    chain = list(_causes(exc))
    if tls_problem(exc) is not None:
        return None
    for kinds, words in _NETWORK_WORDS:
        if any(isinstance(e, kinds) for e in chain):
            return words
    for e in chain:
        if isinstance(e, OSError) and e.errno in _ERRNO_WORDS:
            return _ERRNO_WORDS[e.errno]
    if any(isinstance(e, _NETWORK_KINDS) for e in chain):
        return "connection failed"
    return None


def tls_problem(exc: BaseException) -> str | None:
    """A plain sentence when `exc` is a TLS failure (bad certificate, wrong host name)."""
    for e in _causes(exc):
        if isinstance(e, ssl.SSLCertVerificationError):
            detail = e.verify_message or "not trusted"
            return f"the server's TLS certificate cannot be trusted ({detail})"
        if isinstance(e, requests.exceptions.SSLError | ssl.SSLError):
            return "the TLS connection to the server failed (is the URL's scheme right?)"
    return None


def server_message(status: int | None, content: bytes | str | None) -> str:
    """The server's own words: the "message" of a JSON error body, else a short text."""
    if isinstance(content, bytes):
        content = content.decode("utf-8", "replace")
    text = (content or "").strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return data["message"]
    if text and not text.startswith("<"):  # an HTML error page says nothing useful in one line
        return " ".join(text.split())[:300]
    return f"HTTP status {status}" if status else "no response"


# Most specific first: a refused connection is also a requests ConnectionError.
_NETWORK_WORDS: list[tuple[type[BaseException] | tuple[type[BaseException], ...], str]] = [
    ((urllib3.exceptions.NameResolutionError, socket.gaierror), "the server's name is not found"),
    (ConnectionRefusedError, "connection refused"),
    (
        (requests.exceptions.ConnectTimeout, urllib3.exceptions.ConnectTimeoutError),
        "no connection within the timeout",
    ),
    (
        (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError, TimeoutError),
        "no answer within the timeout",
    ),
    (  # before ConnectionResetError: RemoteDisconnected is one
        (http.client.RemoteDisconnected, http.client.IncompleteRead),
        "connection closed by the server",
    ),
    (ConnectionResetError, "connection reset"),
    ((BrokenPipeError, ConnectionAbortedError), "connection broken"),
]
_ERRNO_WORDS = {
    errno.ENETUNREACH: "network unreachable",
    errno.ENETDOWN: "network down",
    errno.EHOSTUNREACH: "host unreachable",
    errno.EHOSTDOWN: "host down",
}
_NETWORK_KINDS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.ProtocolError,
    ConnectionError,
)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and every exception it wraps: causes, contexts, urllib3's `reason`, and the
    exceptions requests and tuspy pass along as arguments."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        linked = [e.__cause__, e.__context__, getattr(e, "reason", None), *e.args]
        todo.extend(x for x in linked if isinstance(x, BaseException))
