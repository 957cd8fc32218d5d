"""The check before sending, against the real server: a wrong session, a closed one, a bad token,
an account that may not upload, and a server down from the start are each one line and an exit
status, and nothing is created on the server."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.proxy import FaultProxy
from tests.support.server import LiveServer
from uploader.cli import main

Run = Callable[..., tuple[int, list[str], str]]


@pytest.fixture
def operator(live_server: LiveServer) -> tuple[str, int]:
    """(token, capture session id) of a fresh operator."""
    _name, token = live_server.new_operator("check")
    _assessment, session_id = live_server.new_capture_session(token, "preflight")
    return token, session_id


@pytest.fixture
def run(
    live_server: LiveServer,
    images: Callable[..., list[Path]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Run]:
    """Run the command on three images in this process: (exit status, stderr lines, stdout);
    afterwards, assert that nothing was created on the server (no upload, no capture)."""
    images(3)
    uploads = live_server.data_dir / "uploads"
    before = sorted(uploads.iterdir()) if uploads.exists() else []

    def run(token: str, session: int, *args: str, server: str | None = None) -> tuple:
        monkeypatch.setenv("TUSCAM_TOKEN", token)
        argv = [str(tmp_path / "photos"), "--server", server or live_server.url]
        argv += ["--session", str(session), "--state", str(tmp_path / "state.sqlite3"), *args]
        status = main(argv)
        out, err = capsys.readouterr()
        return status, err.splitlines(), out

    yield run
    after = sorted(uploads.iterdir()) if uploads.exists() else []
    assert after == before, "an upload was created on the server"


def test_a_wrong_session_is_one_line_and_exit_2(run: Run, operator: tuple[str, int]) -> None:
    token, _session_id = operator
    status, err, out = run(token, 999_999)
    assert status == 2 and out == ""
    assert err == [
        "tuscam-upload: error: there is no capture session 999999 you can upload to "
        "(404: There is no capture session 999999.): check --session"
    ]


def test_a_session_of_another_operator_is_like_a_missing_one(
    run: Run, operator: tuple[str, int], live_server: LiveServer
) -> None:
    _token, session_id = operator  # the session is assigned to the operator who made it
    _name, other_token = live_server.new_operator("other")
    status, err, _out = run(other_token, session_id)
    assert status == 2
    assert err == [
        f"tuscam-upload: error: there is no capture session {session_id} you can upload to "
        f"(404: There is no capture session {session_id}.): check --session"
    ]


def test_a_closed_session_is_one_line_and_exit_2(
    run: Run, operator: tuple[str, int], live_server: LiveServer
) -> None:
    token, session_id = operator
    closed = live_server.api(token).patch(f"/api/sessions/{session_id}", json={"ended": True})
    assert closed.status_code == 200
    status, err, _out = run(token, session_id)
    assert status == 2
    [line] = err
    assert line.startswith(f"tuscam-upload: error: capture session {session_id} is closed (ended ")
    assert line.endswith("): choose an open session, or have this one reopened")


def test_a_bad_token_is_one_line_and_exit_2(run: Run, operator: tuple[str, int]) -> None:
    _token, session_id = operator
    status, err, _out = run("not-a-token", session_id)
    assert status == 2
    [line] = err
    assert line.startswith("tuscam-upload: error: the server refused the API token (401: ")
    assert line.endswith(
        "it is wrong, expired or revoked: create a new one with "
        "`tuscam create-token USER` and set TUSCAM_TOKEN"
    )


def test_a_reviewer_may_see_the_session_but_is_stopped_before_sending(
    run: Run, operator: tuple[str, int], live_server: LiveServer
) -> None:
    _token, session_id = operator
    name = "rev-check"
    live_server.create_user(name, "reviewer")
    status, err, out = run(live_server.create_token(name), session_id, "--parallel", "1")
    assert status == 2
    # GET /api/sessions/<id> says may_upload: false, so not even a creation is tried.
    assert status == 2 and out == ""
    assert err == [
        f"tuscam-upload: error: you may not upload to capture session {session_id} "
        "(only its operator or an admin may; ask an admin to assign it to you)"
    ]


def test_json_gives_one_summary_with_the_error_code_and_message(
    run: Run, operator: tuple[str, int]
) -> None:
    token, _session_id = operator
    status, err, out = run(token, 999_999, "--json")
    assert status == 2 and err == []
    [line] = out.splitlines()
    summary = json.loads(line)["summary"]
    assert summary["error"] == "no-such-session"
    assert summary["message"].startswith("there is no capture session 999999 you can upload to")
    assert (summary["files"], summary["left"], summary["ok"]) == (3, 3, False)


def test_a_server_down_from_the_start_is_waited_for_then_exit_75(
    run: Run, operator: tuple[str, int], live_server: LiveServer
) -> None:
    token, session_id = operator
    with FaultProxy(live_server.port) as proxy:
        proxy.refuse()
        status, err, out = run(token, session_id, "--max-wait", "5s", server=proxy.url)
        assert proxy.connections == 0
    assert status == 75 and out == ""
    assert err == [
        "server unreachable (connection refused) — waiting, retrying in 1 s; nothing is lost",
        "tuscam-upload: gave up waiting: the server has been unreachable for 5 s "
        "(connection refused); 3 files left, nothing was sent; run the same command again "
        "to resume",
    ]
