"""Random chunkings, cut connections and retried chunks always reconstruct the file exactly,
and the offset never runs ahead of the bytes stored (hypothesis)."""

from __future__ import annotations

import hashlib
import io
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from app.tus.config import TusConfig
from app.tus.handler import TusHandler
from app.tus.hooks import Hooks
from app.tus.storage import FinishedData
from tests.tus.conftest import Client, file_parts
from tests.tus.test_streaming import CutStream


def read_finished(done: FinishedData) -> bytes:
    with done.local_file() as path:
        return path.read_bytes()


step = st.tuples(
    st.integers(min_value=0, max_value=3000),
    st.sampled_from(["ok", "cut", "short", "retry", "stale", "checksum-bad"]),
)


@settings(max_examples=60, deadline=None)
@given(size=st.integers(min_value=0, max_value=6000), plan=st.lists(step, max_size=10))
def test_any_sequence_of_chunks_cuts_and_retries_rebuilds_the_file(
    size: int, plan: list[tuple[int, str]]
) -> None:
    data = bytes((i * 7 + size) % 251 for i in range(size))
    finished: list[bytes] = []
    with tempfile.TemporaryDirectory() as tmp:
        hooks = Hooks(finish=lambda info, done: finished.append(read_finished(done)) or {})
        store, locker = file_parts(Path(tmp), block_size=512)
        handler = TusHandler(store, locker, hooks, TusConfig())
        client = Client(handler)
        upload_id = client.create(size)
        stored = Path(tmp) / upload_id
        for chunk, action in plan:
            offset = client.offset(upload_id)
            assert stored.read_bytes() == data[:offset]  # never ahead of the bytes stored
            piece = data[offset : offset + chunk]
            if action == "cut":
                kept = len(piece) // 2
                r = client.patch(upload_id, offset, CutStream(piece, kept), len(piece))
                assert client.offset(upload_id) == offset + kept or (not piece and r.status == 204)
            elif action == "short":
                client.patch(upload_id, offset, io.BytesIO(piece[: len(piece) // 3]), len(piece))
            elif action == "retry":
                assert client.patch(upload_id, offset, piece).status == 204
                again = client.patch(upload_id, offset, piece)
                assert again.status == (204 if not piece else 409)
            elif action == "stale":
                assert client.patch(upload_id, offset + 1, piece).status in (409, 413)
            elif action == "checksum-bad":
                bad = "sha1 " + "A" * 27 + "="
                if piece and hashlib.sha1(piece).digest() != b"\0" * 20:
                    assert (
                        client.patch(upload_id, offset, piece, **{"Upload-Checksum": bad}).status
                        == 460
                    )
            else:
                assert client.patch(upload_id, offset, piece).status == 204
            assert client.offset(upload_id) >= offset
        offset = client.offset(upload_id)
        while offset < size or not finished:
            r = client.patch(upload_id, offset, data[offset : offset + 1000])
            assert r.status == 204, r
            offset = int(r.headers["Upload-Offset"])
        assert stored.read_bytes() == data
        assert finished == [data]
