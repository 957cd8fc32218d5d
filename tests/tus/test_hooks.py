"""Hooks: pre_create may refuse before anything is stored; finish runs exactly once per
upload, after the data is durable, even under retries and races; failures are retried."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from app.tus.config import TusConfig
from app.tus.handler import TusHandler
from app.tus.hooks import CreateContext, HookRefused, Hooks, UploadInfo
from app.tus.maintenance import reconcile
from app.tus.storage import FinishedData
from tests.tus.conftest import Client, make_handler, meta


class Recorder:
    """A finish hook that counts its calls and can be told to fail."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []
        self.failures = 0
        self.guard = threading.Lock()

    def __call__(self, info: UploadInfo, data: FinishedData) -> dict[str, str]:
        with self.guard:
            if self.failures:
                self.failures -= 1
                raise RuntimeError("database is down")
            with data.local_file() as path:
                self.calls.append((info.id, path.read_bytes()))
            return {"Tuscam-Capture-Id": str(len(self.calls)), "Tuscam-Capture-Status": "accepted"}


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def hooks(recorder: Recorder) -> Hooks:
    return Hooks(finish=recorder)


def test_pre_create_refusal_answers_its_status_and_stores_nothing(
    handler: TusHandler, client: Client, config: TusConfig, upload_dir: Path
) -> None:
    seen: list[CreateContext] = []

    def pre_create(ctx: CreateContext) -> None:
        seen.append(ctx)
        raise HookRefused(403, "You may not upload to session 7.")

    handler.hooks.pre_create = pre_create
    r = client.request(
        "POST", None, {"Upload-Length": "5", "Upload-Metadata": meta(session_id="7")}
    )
    assert r.status == 403 and b"session 7" in r.body
    assert seen == [
        CreateContext(
            owner="alice",
            is_admin=False,
            length=5,
            deferred=False,
            metadata={"session_id": "7"},
            is_partial=False,
            is_final=False,
        )
    ]
    assert [p for p in upload_dir.iterdir() if not p.name.startswith(".")] == []


def test_a_crashing_pre_create_is_a_500_not_an_upload(handler: TusHandler, client: Client) -> None:
    handler.hooks.pre_create = lambda ctx: 1 / 0
    assert client.request("POST", None, {"Upload-Length": "5"}).status == 500


def test_finish_runs_once_when_the_last_patch_is_retried(
    client: Client, recorder: Recorder
) -> None:
    upload_id = client.create(6)
    assert client.patch(upload_id, 0, b"abc").status == 204
    last = client.patch(upload_id, 3, b"def")
    assert last.status == 204 and last.headers["Tuscam-Capture-Id"] == "1"
    assert client.patch(upload_id, 3, b"def").status == 409  # the same chunk again
    again = client.patch(upload_id, 6, b"")
    assert again.status == 204 and again.headers["Tuscam-Capture-Id"] == "1"
    assert client.head(upload_id).headers["Tuscam-Capture-Status"] == "accepted"
    assert recorder.calls == [(upload_id, b"abcdef")]


def test_finish_runs_once_when_two_requests_race_for_the_last_chunk(
    client: Client, recorder: Recorder
) -> None:
    for _ in range(5):
        data = os.urandom(20_000)
        upload_id = client.create(len(data))
        assert client.patch(upload_id, 0, data[:10_000]).status == 204
        statuses = _race(client, upload_id, 10_000, data[10_000:])
        assert sorted(statuses) == [204, 409]
        assert [c for c in recorder.calls if c[0] == upload_id] == [(upload_id, data)]


def _race(client: Client, upload_id: str, offset: int, chunk: bytes) -> list[int]:
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def send() -> None:
        barrier.wait()
        statuses.append(client.patch(upload_id, offset, chunk).status)

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


def test_a_failing_finish_is_retried_by_the_next_head(client: Client, recorder: Recorder) -> None:
    upload_id = client.create(3)
    recorder.failures = 1
    r = client.patch(upload_id, 0, b"abc")
    assert r.status == 500 and b"HEAD" in r.body
    head = client.head(upload_id)
    assert head.status == 200 and head.headers["Tuscam-Capture-Id"] == "1"
    assert client.head(upload_id).headers["Tuscam-Capture-Id"] == "1"
    assert recorder.calls == [(upload_id, b"abc")]


def test_a_failing_finish_is_retried_by_the_next_patch(client: Client, recorder: Recorder) -> None:
    upload_id = client.create(3)
    recorder.failures = 1
    assert client.patch(upload_id, 0, b"abc").status == 500
    r = client.patch(upload_id, 3, b"")
    assert r.status == 204 and r.headers["Tuscam-Capture-Id"] == "1"


def test_reconcile_finishes_uploads_complete_on_disk(
    handler: TusHandler, client: Client, recorder: Recorder
) -> None:
    done = client.create(2)
    assert client.patch(done, 0, b"ok").status == 204
    pending = client.create(3)
    recorder.failures = 1
    assert client.patch(pending, 0, b"abc").status == 500
    unfinished = client.create(9)
    partial = client.create(1, **{"Upload-Concat": "partial"})
    assert client.patch(partial, 0, b"p").status == 204
    assert reconcile(handler) == 1
    assert reconcile(handler) == 0
    assert [c[0] for c in recorder.calls] == [done, pending]
    assert handler.stored_headers(pending) == {
        "Tuscam-Capture-Id": "2",
        "Tuscam-Capture-Status": "accepted",
    }
    assert handler.stored_headers(unfinished) == {}


def test_the_data_is_durable_before_the_finish_hook_runs(
    handler: TusHandler, client: Client, recorder: Recorder
) -> None:
    events: list[str] = []
    make_durable = handler.store.make_durable

    def spy(upload_id: str) -> None:
        events.append("fsync")
        make_durable(upload_id)

    handler.store.make_durable = spy  # type: ignore[method-assign]
    handler.hooks.finish = lambda info, data: events.append("finish") or {}
    upload_id = client.create(1)
    assert client.patch(upload_id, 0, b"x").status == 204
    assert events == ["fsync", "finish"]


def test_finish_headers_are_made_safe_for_a_response(handler: TusHandler, client: Client) -> None:
    handler.hooks.finish = lambda info, data: {"Tuscam-Capture-Reason": "bad\r\nX-Evil: 1 é"}
    upload_id = client.create(1)
    r = client.patch(upload_id, 0, b"x")
    assert r.headers["Tuscam-Capture-Reason"] == "bad??X-Evil: 1 ?"


def test_post_receive_is_throttled_and_reports_progress(
    handler: TusHandler, client: Client
) -> None:
    seen: list[int] = []
    handler.hooks.post_receive = lambda info: seen.append(info.offset)
    upload_id = client.create(100_000)
    assert client.patch(upload_id, 0, os.urandom(100_000)).status == 204  # 25 blocks
    assert 1 <= len(seen) <= 2 and seen == sorted(seen)


def test_a_failing_post_receive_does_not_break_the_upload(
    handler: TusHandler, client: Client
) -> None:
    handler.hooks.post_receive = lambda info: 1 / 0
    upload_id = client.create(3)
    assert client.patch(upload_id, 0, b"abc").status == 204


def test_too_many_unfinished_uploads_is_429(upload_dir: Path) -> None:
    client = Client(make_handler(upload_dir, TusConfig(max_unfinished_per_owner=2)))
    first = client.create(5)
    client.create(5)
    assert client.request("POST", None, {"Upload-Length": "5"}).status == 429
    assert client.request("POST", None, {"Upload-Length": "0"}).status == 201  # done at once
    assert Client(client.handler, "bob").request("POST", None, {"Upload-Length": "5"}).status == 201
    assert client.patch(first, 0, b"12345").status == 204  # one finished: room again
    assert client.request("POST", None, {"Upload-Length": "5"}).status == 201


def test_upload_info_is_what_hooks_see(handler: TusHandler, client: Client) -> None:
    upload_id = client.create(4, meta(filename="ü.jpg", flag=None))
    info = handler.upload_info(upload_id)
    assert info is not None
    assert (info.owner, info.length, info.offset) == ("alice", 4, 0)
    assert info.metadata == {"filename": "ü.jpg", "flag": None}
    assert info.metadata_header == meta(filename="ü.jpg", flag=None)
    assert handler.upload_info("../x") is None and handler.upload_info("0" * 32) is None
