"""The tuspy internals uploader/client.py relies on, pinned: these tests fail when a tuspy
upgrade changes them, so that TuscamUploader and _SessionRequest are checked against it."""

from __future__ import annotations

import inspect
import io
from importlib.metadata import version

import pytest
import requests
from tusclient.client import TusClient
from tusclient.exceptions import TusCommunicationError, TusUploadFailed
from tusclient.request import TusRequest
from tusclient.uploader import Uploader

from tests.uploader.conftest import FakeTus
from uploader.client import TimeoutSession, TuscamUploader, _SessionRequest

CHECK = "tuspy changed: check uploader/client.py against it"


class CountingSession(TimeoutSession):
    def __init__(self) -> None:
        super().__init__((5.0, 5.0))
        self.methods: list[str] = []

    def request(self, method: str | bytes, url: str | bytes, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        self.methods.append(str(method).upper())
        return super().request(method, url, *args, **kwargs)


def uploader_for(fake: FakeTus, data: bytes, session: requests.Session) -> TuscamUploader:
    client = TusClient(fake.url + "/files/", headers={"Authorization": f"Bearer {fake.token}"})
    return TuscamUploader(
        file_stream=io.BytesIO(data),
        client=client,
        chunk_size=1000,
        metadata={"filename": "a.jpg"},
        session=session,
    )


def test_the_pinned_version_is_the_one_installed() -> None:
    assert version("tuspy") == "1.1.0", CHECK


def test_the_constructor_without_a_url_sends_nothing(fake_tus: FakeTus) -> None:
    session = CountingSession()
    up = uploader_for(fake_tus, b"x" * 2500, session)
    assert (up.url, up.offset, up.request) == (None, 0, None), CHECK
    assert up.get_file_size() == 2500 and up.stop_at == 2500, CHECK
    assert session.methods == [] and not fake_tus.requests, CHECK


def test_creation_headers_carry_length_metadata_and_the_clients_headers(
    fake_tus: FakeTus,
) -> None:
    up = uploader_for(fake_tus, b"x" * 2500, CountingSession())
    headers = up.get_url_creation_headers()
    assert headers["Tus-Resumable"] == "1.0.0", CHECK
    assert headers["Authorization"] == f"Bearer {fake_tus.token}", CHECK
    assert headers["upload-length"] == "2500", CHECK
    assert headers["upload-metadata"] == "filename YS5qcGc=", CHECK
    assert up.client.url == fake_tus.url + "/files/", CHECK


def test_the_patch_request_reads_its_chunk_from_the_offset(fake_tus: FakeTus) -> None:
    up = uploader_for(fake_tus, bytes(range(256)) * 10, CountingSession())
    up.url, up.offset = fake_tus.url + "/files/x", 1200
    request = _SessionRequest(up)
    assert isinstance(request, TusRequest), CHECK
    assert request._url == up.url, CHECK
    assert request._request_headers["upload-offset"] == "1200", CHECK
    assert request._request_headers["Content-Type"] == "application/offset+octet-stream", CHECK
    assert request._request_headers["Authorization"] == f"Bearer {fake_tus.token}", CHECK
    assert request._content_length == 1000 and request.file.tell() == 1200, CHECK
    assert (request.status_code, request.response_headers) == (None, {}), CHECK
    request.add_checksum(b"")  # called by perform(); a no-op without upload_checksum


def test_upload_chunk_sends_through_our_request_and_takes_the_offset_from_it(
    fake_tus: FakeTus,
) -> None:
    session = CountingSession()
    up = uploader_for(fake_tus, b"\xff\xd8" + b"y" * 2498, session)
    up.url = up.create_url()
    up.offset = 0
    up.upload_chunk()
    # tuspy's upload_chunk() calls _do_request() (ours: the session, no tuspy retry) and reads
    # request.response_headers["upload-offset"]; were it to send by itself, it would bypass the
    # session and its timeout.
    assert session.methods == ["POST", "PATCH"], CHECK
    assert up.offset == 1000 and isinstance(up.request, _SessionRequest), CHECK
    fake_tus.fail_patches = 1
    with pytest.raises(TusUploadFailed) as failed:
        up.upload_chunk()
    assert failed.value.status_code == 500 and b"injected" in failed.value.response_content
    assert session.methods == ["POST", "PATCH", "PATCH"], CHECK  # not retried by tuspy
    assert up.offset == 1000, CHECK


def test_upload_chunk_still_has_the_shape_we_override() -> None:
    source = inspect.getsource(Uploader.upload_chunk)
    assert "self._do_request()" in source, CHECK
    assert 'self.request.response_headers.get("upload-offset")' in source, CHECK
    params = inspect.signature(TusRequest.__init__).parameters
    assert list(params) == ["self", "uploader"], CHECK


def test_communication_errors_keep_status_and_content() -> None:
    error = TusCommunicationError("m", 409, b"body")
    assert (str(error), error.status_code, error.response_content) == ("m", 409, b"body"), CHECK
    assert issubclass(TusUploadFailed, TusCommunicationError), CHECK
    assert TusCommunicationError(None, 503).status_code == 503, CHECK
