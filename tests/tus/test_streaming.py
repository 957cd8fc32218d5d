"""Request bodies: read in blocks, never past Content-Length or Upload-Length, and what
arrived before a client stopped (disconnect, short body, silence) is kept."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

from app.tus.body import BodyTimeout
from app.tus.config import TusConfig
from app.tus.filestore import FileStore
from tests.tus.conftest import OCTETS, Client, make_handler


class CutStream(io.RawIOBase):
    """Delivers `cut` bytes of data, then fails like a dropped connection."""

    def __init__(self, data: bytes, cut: int, error: Exception | None = None) -> None:
        self.data, self.cut, self.pos = data, cut, 0
        self.error = error or ConnectionResetError("peer reset")
        self.reads: list[int] = []

    def read(self, size: int = -1) -> bytes:
        self.reads.append(size)
        if self.pos >= self.cut:
            raise self.error
        chunk = self.data[self.pos : min(self.cut, self.pos + size)]
        self.pos += len(chunk)
        return chunk

    readinto = None  # type: ignore[assignment]  # exercise the read() path


class SilentStream(io.RawIOBase):
    """Delivers its data, then stays silent: every read times out (BodyTimeout)."""

    def __init__(self, data: bytes, poll: float = 0.02) -> None:
        self.data, self.poll = data, poll

    def read(self, size: int = -1) -> bytes:
        if self.data:
            chunk, self.data = self.data[:size], self.data[size:]
            return chunk
        time.sleep(self.poll)
        raise BodyTimeout()

    readinto = None  # type: ignore[assignment]


class CountingStream(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.sizes: list[int] = []

    def readinto(self, buffer) -> int:  # noqa: ANN001
        self.sizes.append(len(buffer))
        return super().readinto(buffer)


@pytest.mark.parametrize(
    "error",
    [ConnectionResetError("reset"), TimeoutError("timed out"), OSError("broken"), None],
    ids=["reset", "socket-timeout", "oserror", "short-body"],
)
def test_a_body_cut_short_keeps_the_bytes_that_arrived(
    client: Client, config: TusConfig, error: Exception | None, upload_dir: Path
) -> None:
    upload_id = client.create(100)
    data = bytes(range(100))
    stream = CutStream(data, 37, error) if error else io.BytesIO(data[:37])
    r = client.patch(upload_id, 0, stream, 100)
    assert r.status == 400 and b"resume from 37" in r.body
    assert client.offset(upload_id) == 37
    assert client.patch(upload_id, 37, data[37:]).status == 204
    assert (upload_dir / upload_id).read_bytes() == data


def test_the_body_is_read_in_blocks_and_never_past_content_length(
    client: Client, store: FileStore
) -> None:
    upload_id = client.create(20_000)
    stream = CountingStream(b"a" * 10_000 + b"NEXT REQUEST")
    assert client.patch(upload_id, 0, stream, 10_000).status == 204
    assert max(stream.sizes) <= store.block_size
    assert stream.read() == b"NEXT REQUEST"  # the bytes after the body are left alone


def test_a_chunked_body_is_read_to_its_end(client: Client) -> None:
    upload_id = client.create(10_000)
    r = client.patch(upload_id, 0, io.BytesIO(b"z" * 9_000))  # no Content-Length
    assert r.status == 204 and r.headers["Upload-Offset"] == "9000"


def test_a_chunked_body_past_the_length_stores_up_to_it_and_answers_413(
    client: Client, config: TusConfig, upload_dir: Path
) -> None:
    upload_id = client.create(5_000)
    r = client.patch(upload_id, 0, io.BytesIO(b"q" * 6_000))
    assert r.status == 413
    assert client.offset(upload_id) == 5_000
    assert (upload_dir / upload_id).stat().st_size == 5_000


def test_a_chunked_body_on_a_deferred_upload_stops_at_tus_max_size(tmp_path) -> None:  # noqa: ANN001
    client = Client(make_handler(tmp_path, TusConfig(max_size=1000)))
    upload_id = client.create(None)
    r = client.patch(upload_id, 0, io.BytesIO(b"d" * 1500))
    assert r.status == 413 and client.offset(upload_id) == 1000


def test_a_silent_client_is_dropped_after_the_idle_timeout_keeping_its_bytes(
    client: Client, config: TusConfig
) -> None:
    upload_id = client.create(100)
    started = time.monotonic()
    r = client.patch(upload_id, 0, SilentStream(b"x" * 30), 100)
    elapsed = time.monotonic() - started
    assert r.status == 408
    assert config.body_idle_timeout <= elapsed < config.body_idle_timeout + 1.5
    assert client.offset(upload_id) == 30


def test_headers_are_validated_before_a_byte_is_read(client: Client) -> None:
    upload_id = client.create(10)
    stream = CountingStream(b"abc")
    r = client.request("PATCH", upload_id, {"Content-Type": OCTETS, "Upload-Offset": "+0"}, stream)
    assert r.status == 400 and stream.sizes == []
    r = client.request(
        "PATCH",
        upload_id,
        {"Content-Type": OCTETS, "Upload-Offset": "0", "Content-Length": "11"},
        stream,
    )
    assert r.status == 413 and stream.sizes == []
