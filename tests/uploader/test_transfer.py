"""Upload rules against a fake tus server: chunks, metadata, retries, refusals, resume."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.proxy import FaultProxy
from tests.uploader.conftest import FakeTus
from uploader.files import collect
from uploader.state import StateStore
from uploader.transfer import Options, Transfer

FAST = (0.0, 0.01, 0.02, 0.05)


@pytest.fixture
def transfer_for(state_path: Path) -> Iterator[Callable[..., Transfer]]:
    """Transfer(fake server or `url`, chunks of 1000 bytes, quick retries, **options)."""
    made: list[Transfer] = []

    def make(fake: FakeTus, url: str | None = None, **options: object) -> Transfer:
        opts = Options(
            server=url or fake.url,
            session_id=42,
            token=fake.token,
            chunk_size=1000,
            retry_delays=FAST,
            **options,  # type: ignore[arg-type]
        )
        made.append(Transfer(opts, StateStore(state_path)))
        return made[-1]

    yield make
    for transfer in made:
        transfer.close()
        transfer.state.close()


def test_a_file_goes_up_in_chunks_with_the_capture_metadata(
    fake_tus: FakeTus, transfer_for: Callable[..., Transfer], images: Callable[..., list[Path]]
) -> None:
    [path] = images(1, pad_to=4500)
    transfer = transfer_for(fake_tus)
    seen: list[int] = []
    result = transfer.upload(collect([path])[0], seen.append)
    assert result.status == "accepted" and result.capture_id == 1
    [up] = fake_tus.uploads.values()
    assert bytes(up.data) == path.read_bytes()
    assert up.metadata == {
        "filename": "img_000.jpg",
        "filetype": "image/jpeg",
        "session_id": "42",
        "capture_trigger": "bulk",
        "capture_type": "photo",
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }
    assert fake_tus.requests["PATCH"] == 5  # 4500 bytes in chunks of 1000
    assert seen[-1] == 4500 and seen == sorted(seen)
    assert result.sent == 4500 and result.upload_url == f"{fake_tus.url}/files/{up.id}"


def test_a_file_already_done_is_skipped_without_asking_the_server(
    fake_tus: FakeTus, transfer_for: Callable[..., Transfer], images: Callable[..., list[Path]]
) -> None:
    [path] = images(1)
    transfer = transfer_for(fake_tus)
    assert transfer.upload(collect([path])[0]).status == "accepted"
    before = sum(fake_tus.requests.values())
    again = transfer.upload(collect([path])[0])
    assert again.status == "skipped" and again.capture_id == 1 and again.from_state
    assert sum(fake_tus.requests.values()) == before


def test_server_errors_are_retried_and_the_upload_completes(
    fake_tus: FakeTus, transfer_for: Callable[..., Transfer], images: Callable[..., list[Path]]
) -> None:
    [path] = images(1, pad_to=3000)
    fake_tus.fail_patches = 2
    result = transfer_for(fake_tus).upload(collect([path])[0])
    assert result.status == "accepted"
    assert fake_tus.requests["PATCH"] == 3 + 2
    assert bytes(next(iter(fake_tus.uploads.values())).data) == path.read_bytes()


def test_retries_end_when_the_server_keeps_failing(
    fake_tus: FakeTus, transfer_for: Callable[..., Transfer], images: Callable[..., list[Path]]
) -> None:
    [path] = images(1)
    fake_tus.fail_patches = 100
    result = transfer_for(fake_tus).upload(collect([path])[0])
    assert (result.status, result.error) == ("failed", "server-error")
    assert "500: injected failure" in (result.reason or "")
    assert fake_tus.requests["PATCH"] == len(FAST) + 1


@pytest.mark.parametrize("status", [400, 413])
def test_a_refused_creation_is_reported_with_the_servers_message_and_not_retried(
    fake_tus: FakeTus,
    transfer_for: Callable[..., Transfer],
    images: Callable[..., list[Path]],
    status: int,
) -> None:
    [path] = images(1)
    fake_tus.refuse_post = (status, "This file is not for us.")
    transfer = transfer_for(fake_tus)
    result = transfer.upload(collect([path])[0])
    assert (result.status, result.error) == ("failed", "refused")
    assert result.reason == f"{status}: This file is not for us."
    assert fake_tus.requests["POST"] == 1
    assert transfer.halt is None  # the next file is tried


@pytest.mark.parametrize(
    ("status", "code"),
    [(403, "not-allowed"), (404, "no-such-session"), (409, "session-closed")],
)
def test_a_creation_refused_for_the_session_stops_the_run(
    fake_tus: FakeTus,
    transfer_for: Callable[..., Transfer],
    images: Callable[..., list[Path]],
    status: int,
    code: str,
) -> None:
    first, second = collect(images(2))
    fake_tus.refuse_post = (status, "Capture session 42 is closed to you.")
    transfer = transfer_for(fake_tus)
    result = transfer.upload(first)
    assert (result.status, result.error) == ("interrupted", code)
    assert transfer.halt is not None and transfer.halt.code == code
    assert f"({status}: Capture session 42 is closed to you.)" in transfer.halt.message
    assert transfer.upload(second).error == code
    assert fake_tus.requests["POST"] == 1  # every other file would be refused alike


def test_a_wrong_token_stops_the_run_saying_what_to_do(
    fake_tus: FakeTus, transfer_for: Callable[..., Transfer], images: Callable[..., list[Path]]
) -> None:
    [path] = images(1)
    transfer = transfer_for(fake_tus)
    fake_tus.token = "another"
    result = transfer.upload(collect([path])[0])
    assert (result.status, result.error) == ("interrupted", "bad-token")
    assert "(401: Log in or send a token.)" in (result.reason or "")
    assert "TUSCAM_TOKEN" in (result.reason or "")
    assert transfer.halt is not None and transfer.halt.code == "bad-token"


def test_a_rejected_image_is_reported_and_stays_rejected_from_state(
    fake_tus: FakeTus, transfer_for: Callable[..., Transfer], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg at all")
    transfer = transfer_for(fake_tus)
    result = transfer.upload(collect([bad])[0])
    assert result.status == "rejected"
    assert result.reason == "not an image: cannot identify image file"
    again = transfer.upload(collect([bad])[0])
    assert again.status == "rejected" and again.from_state and again.reason == result.reason


def test_the_result_is_asked_from_the_api_when_the_headers_are_missing(
    fake_tus: FakeTus, transfer_for: Callable[..., Transfer], images: Callable[..., list[Path]]
) -> None:
    [path] = images(1)
    fake_tus.capture_headers = False
    result = transfer_for(fake_tus).upload(collect([path])[0])
    assert (result.status, result.capture_id) == ("accepted", 1)
    assert fake_tus.requests["GET"] == 1


def test_a_partial_upload_resumes_from_the_servers_offset(
    fake_tus: FakeTus, transfer_for: Callable[..., Transfer], images: Callable[..., list[Path]]
) -> None:
    [path] = images(1, pad_to=5000)
    transfer = transfer_for(fake_tus)
    stop_after = 2

    def progress(offset: int) -> None:
        nonlocal stop_after
        if offset:
            stop_after -= 1
            if stop_after == 0:
                transfer.stop.set()

    first = transfer.upload(collect([path])[0], progress)
    assert first.status == "interrupted" and first.upload_url
    transfer.stop.clear()
    fake_tus.requests.clear()
    second = transfer.upload(collect([path])[0])
    assert second.status == "accepted" and second.upload_url == first.upload_url
    assert second.resumed_from == 2000 and second.sent == 3000
    assert fake_tus.requests["POST"] == 0 and fake_tus.requests["PATCH"] == 3


def test_a_stored_url_the_server_forgot_starts_the_file_over(
    fake_tus: FakeTus, transfer_for: Callable[..., Transfer], images: Callable[..., list[Path]]
) -> None:
    [path] = images(1, pad_to=3000)
    transfer = transfer_for(fake_tus)
    file = collect([path])[0]
    key = transfer.key(file, transfer.sha256(file))
    transfer.state.set_url(key, file.size, f"{fake_tus.url}/files/{'0' * 32}")
    result = transfer.upload(file)
    assert result.status == "accepted" and result.restarted
    assert result.upload_url != f"{fake_tus.url}/files/{'0' * 32}"
    assert fake_tus.requests["POST"] == 1 and fake_tus.requests["HEAD"] == 1
    assert fake_tus.requests["PATCH"] == 3


def test_a_complete_upload_whose_response_was_lost_is_not_sent_again(
    fake_tus: FakeTus, transfer_for: Callable[..., Transfer], images: Callable[..., list[Path]]
) -> None:
    [path] = images(1)
    transfer = transfer_for(fake_tus)
    file = collect([path])[0]
    transfer.upload(file)
    key = transfer.key(file, transfer.sha256(file))
    url = transfer.state.get(key).upload_url  # type: ignore[union-attr]
    transfer.state.set_url(key, file.size, url)  # as if killed before the outcome was saved
    fake_tus.requests.clear()
    result = transfer.upload(file)
    assert (result.status, result.capture_id, result.sent) == ("accepted", 1, 0)
    assert fake_tus.requests == {"HEAD": 1}


def test_every_request_has_a_timeout_so_a_silent_server_cannot_hang_the_upload(
    fake_tus: FakeTus, transfer_for: Callable[..., Transfer], images: Callable[..., list[Path]]
) -> None:
    [path] = images(1, pad_to=3000)
    with FaultProxy(int(fake_tus.url.rsplit(":", 1)[1]), stall_after=1500, max_stalls=1) as proxy:
        transfer = transfer_for(fake_tus, proxy.url, read_timeout=0.3)
        done = threading.Event()
        result = None

        def run() -> None:
            nonlocal result
            result = transfer.upload(collect([path])[0])
            done.set()

        threading.Thread(target=run, daemon=True).start()
        assert done.wait(20), "the upload hung on a stalled connection"
    assert result is not None and result.status == "accepted"
    assert proxy.stalls == 1


def test_a_file_whose_connections_keep_failing_while_the_server_answers_fails_in_plain_words(
    fake_tus: FakeTus, transfer_for: Callable[..., Transfer], images: Callable[..., list[Path]]
) -> None:
    [path] = images(1, pad_to=3000)
    port = int(fake_tus.url.rsplit(":", 1)[1])
    # Every connection goes silent once 1200 bytes went up: the POST passes, each PATCH stalls;
    # a new connection (the server is asked whether it is there) answers at once.
    with FaultProxy(port, stall_after=1200) as proxy:
        transfer = transfer_for(fake_tus, proxy.url, read_timeout=0.3)
        result = transfer.upload(collect([path])[0])
    assert (result.status, result.error) == ("failed", "connection-failed")
    assert (
        result.reason == f"sending failed {len(FAST) + 1} times; last: no answer within the timeout"
    )
    assert transfer.server_wait.outages == 0 and transfer.halt is None
