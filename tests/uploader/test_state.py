"""The resume state: what it remembers, and that threads and processes can share it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from uploader.state import StateStore, UploadKey, default_state_path

ROOT = Path(__file__).resolve().parents[2]


def key(path: str = "/p/a.jpg", sha: str = "ab" * 32, server: str = "http://s") -> UploadKey:
    return UploadKey.make(server, 7, path, sha)


def test_a_url_is_remembered_then_replaced_by_the_outcome(state_path: Path) -> None:
    with StateStore(state_path) as state:
        assert state.get(key()) is None
        state.set_url(key(), 10, "http://s/files/1")
        rec = state.get(key())
        assert rec is not None and rec.upload_url == "http://s/files/1" and not rec.done
        state.mark_done(key(), 10, "http://s/files/1", 5, "accepted", None)
        rec = state.get(key())
        assert rec is not None and rec.done and rec.capture_id == 5
        assert rec.capture_status == "accepted"
        state.set_url(key(), 10, None)  # starting over clears the outcome too
        rec = state.get(key())
        assert rec is not None and rec.upload_url is None and not rec.done
        assert rec.capture_status is None


def test_the_key_is_server_session_path_and_content(state_path: Path) -> None:
    with StateStore(state_path) as state:
        state.mark_done(key(), 10, "u", 1, "accepted", None)
        assert state.get(key(server="http://s/")) is not None  # trailing slash is the same
        assert state.get(key(server="http://other")) is None
        assert state.get(key(sha="cd" * 32)) is None  # the file changed
        assert state.get(UploadKey.make("http://s", 8, "/p/a.jpg", "ab" * 32)) is None
        state.forget(key())
        assert state.get(key()) is None


def test_the_state_survives_reopening_and_uses_wal(state_path: Path) -> None:
    with StateStore(state_path) as state:
        state.set_url(key(), 10, "http://s/files/1")
    with StateStore(state_path) as state:
        rec = state.get(key())
        assert rec is not None and rec.upload_url == "http://s/files/1"
    with sqlite3.connect(state_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_hashes_are_cached_by_path_size_and_mtime(state_path: Path) -> None:
    with StateStore(state_path) as state:
        state.remember_sha256(Path("/p/a"), 10, 111, "ab" * 32)
        assert state.cached_sha256(Path("/p/a"), 10, 111) == "ab" * 32
        assert state.cached_sha256(Path("/p/a"), 10, 112) is None
        assert state.cached_sha256(Path("/p/a"), 11, 111) is None


def test_default_location_follows_xdg_state_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_state_path() == tmp_path / "tuscam-upload" / "state.sqlite3"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert default_state_path() == Path.home() / ".local/state/tuscam-upload/state.sqlite3"


def test_many_threads_write_at_once_without_losing_a_row(state_path: Path) -> None:
    errors: list[BaseException] = []
    with StateStore(state_path) as state:

        def work(t: int) -> None:
            try:
                for i in range(100):
                    k = key(f"/p/{t}/{i}.jpg")
                    state.set_url(k, i, f"u{t}-{i}")
                    state.mark_done(k, i, f"u{t}-{i}", i, "accepted", None)
                    assert state.get(k) is not None
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert errors == []
        assert state.count() == 800


WRITER = """
import sys
from uploader.state import StateStore, UploadKey
path, name = sys.argv[1], sys.argv[2]
with StateStore(path) as state:
    for i in range(150):
        k = UploadKey.make("http://s", 1, f"/p/{name}/{i}", "ab" * 32)
        state.set_url(k, i, "u")
        state.mark_done(k, i, "u", i, "accepted", None)
        shared = UploadKey.make("http://s", 1, "/p/shared", "ab" * 32)
        state.set_url(shared, i, f"{name}-{i}")
"""


def test_several_processes_share_one_state_file(state_path: Path) -> None:
    StateStore(state_path).close()
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(state_path), f"w{n}"], cwd=ROOT)
        for n in range(3)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    with StateStore(state_path) as state:
        assert state.count() == 3 * 150 + 1
        shared = state.get(UploadKey.make("http://s", 1, "/p/shared", "ab" * 32))
        assert shared is not None and shared.upload_url in {f"w{n}-149" for n in range(3)}
