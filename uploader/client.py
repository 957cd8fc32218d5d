"""tuspy 1.1.0 adapted for tuscam-upload: every request through a configured requests.Session.

tuspy sends with bare `requests.post/head/patch` and no timeout; its constructor HEADs a stored
URL and raises on 404. Here the PATCH request class and the uploader's POST/HEAD go through a
session with a default timeout, and a forgotten upload raises StaleUploadUrl. The tuspy internals
this relies on are pinned by tests/uploader/test_tuspy_internals.py.
"""

from __future__ import annotations

from typing import Any

import requests
from tusclient.exceptions import TusCommunicationError, TusUploadFailed
from tusclient.request import TusRequest
from tusclient.uploader import Uploader

from uploader.errors import REFUSED, UPLOAD_LOST

# 409: offset mismatch (ask HEAD); 423: upload locked by a request that has not ended yet;
# 429: too many unfinished uploads, may clear. Other 4xx will not change by asking again.
RETRY_STATUSES = frozenset({408, 409, 423, 429})
GONE_STATUSES = frozenset({404, 410})


class TransferError(Exception):
    """A failure that ends this file's attempt: a stable `code` (uploader.errors) and a
    `message` for the person running the tool."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Refused(TransferError):
    """The server refused for good (a 4xx that asking again will not change)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(REFUSED, f"{status}: {message}")
        self.status = status
        self.server_words = message


class StaleUploadUrl(TransferError):
    """The stored upload URL no longer leads to this file's upload (expired, deleted, or one of
    another length): start the file over."""

    def __init__(self, message: str) -> None:
        super().__init__(UPLOAD_LOST, message)


class TimeoutSession(requests.Session):
    """A requests.Session whose every request has a timeout unless one is given."""

    def __init__(self, timeout: tuple[float, float]) -> None:
        super().__init__()
        self.default_timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self.default_timeout)
        return super().request(method, url, *args, **kwargs)


class _SessionRequest(TusRequest):
    """tuspy's PATCH request, sent through the uploader's session (timeout, keep-alive)."""

    def __init__(self, uploader: TuscamUploader) -> None:
        super().__init__(uploader)
        self._session = uploader.session

    def perform(self) -> None:
        try:
            chunk = self.file.read(self._content_length)
            self.add_checksum(chunk)
            resp = self._session.patch(self._url, data=chunk, headers=self._request_headers)
            self.status_code = resp.status_code
            self.response_content = resp.content
            self.response_headers = {k.lower(): v for k, v in resp.headers.items()}
        except requests.exceptions.RequestException as error:
            raise TusUploadFailed(error) from error


class TuscamUploader(Uploader):
    """tuspy's Uploader with its HTTP calls routed through a configured session.

    Built without `url` (its constructor would HEAD with no timeout and raise on 404); the
    transfer sets `url` and `offset` after its own HEAD.
    """

    def __init__(self, *args: Any, session: requests.Session, **kwargs: Any) -> None:
        self.session = session
        self.creation_headers: dict[str, str] = {}
        super().__init__(*args, **kwargs)

    def create_url(self) -> str:
        try:
            resp = self.session.post(self.client.url, headers=self.get_url_creation_headers())
        except requests.exceptions.RequestException as error:
            raise TusCommunicationError(error) from error
        self.creation_headers = {k.lower(): v for k, v in resp.headers.items()}
        location = resp.headers.get("location")
        if resp.status_code != 201 or location is None:
            raise TusCommunicationError(
                f"creating the upload failed with status {resp.status_code}",
                resp.status_code,
                resp.content,
            )
        return requests.compat.urljoin(self.client.url, location)

    def get_offset(self) -> int:
        resp = self.head()
        return offset_of(resp)

    def head(self) -> requests.Response:
        try:
            resp = self.session.head(self.url, headers=self.get_headers())
        except requests.exceptions.RequestException as error:
            raise TusCommunicationError(error) from error
        if resp.status_code in GONE_STATUSES:
            raise StaleUploadUrl(f"the server no longer knows {self.url} ({resp.status_code})")
        if resp.status_code != 200:
            raise TusCommunicationError(
                f"HEAD failed with status {resp.status_code}", resp.status_code, resp.content
            )
        return resp

    def _do_request(self) -> None:
        # No tuspy retry (it sleeps a fixed delay and retries 4xx too); the transfer decides.
        self.request = _SessionRequest(self)
        self.request.perform()
        if not 200 <= self.request.status_code < 300:
            raise TusUploadFailed(
                f"PATCH failed with status {self.request.status_code}",
                self.request.status_code,
                self.request.response_content,
            )


def offset_of(resp: requests.Response) -> int:
    raw = resp.headers.get("Upload-Offset", "")
    # int() would take " 5", "+5", "5_000"; the protocol says digits only.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 20):
        raise TusCommunicationError("the server sent an Upload-Offset that is not a number")
    return int(raw)
