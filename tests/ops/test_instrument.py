"""The pieces that observe tus from outside, on real parts: the metered locker around the file
locker, the hooks wrapper, the JSON formatter and its masking of credentials."""

from __future__ import annotations

import json
import logging
import runpy
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st

from app.ops import metrics
from app.ops.instrument import MeteredLocker, metadata_session_id, observed_hooks
from app.tus import FileLocker, FinishedData, Hooks, LockTimeout, UploadInfo
from tests.app.helpers import add_user, token_for
from tests.support.tus import capture_metadata, encode_metadata
from tuscam_gunicorn.jsonlog import JsonFormatter, scrub, scrub_query

UPLOAD_ID = "0123456789abcdef0123456789abcdef"
OCTETS = "application/offset+octet-stream"
ROOT = Path(__file__).resolve().parents[2]


def sample(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels or None) or 0.0


def info(**fields: object) -> UploadInfo:
    defaults = dict(
        id=UPLOAD_ID,
        owner="7",
        length=10,
        offset=10,
        metadata={"session_id": "12", "filename": "a.jpg"},
        metadata_header="",
        created_at=datetime.now(UTC),
        expires_at=None,
        is_partial=False,
        is_final=False,
    )
    return UploadInfo(**{**defaults, **fields})


def test_a_lock_timeout_is_counted_timed_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    locker = MeteredLocker(FileLocker(tmp_path))
    timeouts = sample("tuscam_tus_lock_timeouts_total")
    waits = sample("tuscam_tus_lock_wait_seconds_count")
    with locker.lock(UPLOAD_ID, 1) as held:
        assert held.release_requested() is False  # the inner lock, handed through
        with caplog.at_level(logging.INFO, "app.events"), pytest.raises(LockTimeout):
            with locker.lock(UPLOAD_ID, 0.2):
                pass
        with pytest.raises(LockTimeout):
            with locker.lock(UPLOAD_ID, 0):  # try-once: not a wait, not a timeout
                pass
    assert sample("tuscam_tus_lock_timeouts_total") == timeouts + 1
    assert sample("tuscam_tus_lock_wait_seconds_count") == waits + 2
    (record,) = [r for r in caplog.records if getattr(r, "event", "") == "lock-timeout"]
    assert record.levelno == logging.WARNING
    assert record.fields["upload_id"] == UPLOAD_ID and record.fields["duration_ms"] >= 200
    with locker.lock(UPLOAD_ID, 1):  # released on every path
        pass


def test_an_exception_inside_the_lock_releases_it(tmp_path: Path) -> None:
    locker = MeteredLocker(FileLocker(tmp_path))
    with pytest.raises(ZeroDivisionError), locker.lock(UPLOAD_ID, 1):
        1 / 0  # noqa: B018
    with locker.lock(UPLOAD_ID, 0):
        pass


def test_a_failing_finish_hook_is_counted_logged_and_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def finish(_info: UploadInfo, _data: FinishedData) -> dict[str, str]:
        raise RuntimeError("database went away")

    hooks = observed_hooks(Hooks(finish=finish))
    errors, finished = (
        sample("tuscam_finish_hook_errors_total"),
        sample("tuscam_tus_uploads_finished_total"),
    )
    with caplog.at_level(logging.INFO, "app.events"), pytest.raises(RuntimeError):
        hooks.finish(info(), Path("/nonexistent"))
    assert sample("tuscam_finish_hook_errors_total") == errors + 1
    assert sample("tuscam_tus_uploads_finished_total") == finished
    (record,) = [r for r in caplog.records if getattr(r, "event", "") == "hook-failed"]
    assert record.fields == {
        "hook": "finish",
        "error": "RuntimeError: database went away",
        "upload_id": UPLOAD_ID,
        "user": "7",
        "session_id": 12,
    }
    assert record.levelno == logging.ERROR


def test_finish_counts_the_capture_status_once() -> None:
    statuses = iter(["accepted", "duplicate", "rejected"])
    hooks = observed_hooks(Hooks(finish=lambda _i, _p: {"Tuscam-Capture-Status": next(statuses)}))
    before = {s: sample("tuscam_captures_total", status=s) for s in metrics.CAPTURE_STATUSES}
    for _ in range(3):
        hooks.finish(info(), Path("/nonexistent"))
    for status in metrics.CAPTURE_STATUSES:
        assert sample("tuscam_captures_total", status=status) == before[status] + 1


def test_progress_and_terminate_still_reach_the_apps_own_hooks() -> None:
    seen: list[str] = []
    hooks = observed_hooks(
        Hooks(
            post_receive=lambda i: seen.append("progress"),
            post_terminate=lambda i: seen.append("gone"),
        )
    )
    hooks.post_receive(info(offset=3))
    hooks.post_terminate(info())
    assert seen == ["progress", "gone"]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("filename YS5qcGc=,session_id MTI=", 12),
        ("session_id", None),
        ("session_id !!!", None),
        ("session_id eA==", None),  # "x"
        ("session_id wqU=", None),  # not ASCII
        (None, None),
    ],
)
def test_session_id_is_read_from_metadata_strictly(
    header: str | None, expected: int | None
) -> None:
    assert metadata_session_id(header) == expected


_SECRET = st.text(st.characters(codec="ascii", categories=("L", "N")), min_size=8, max_size=40)


@given(secret=_SECRET, prefix=st.sampled_from(["Bearer ", "bearer  ", "Basic "]))
def test_no_authorization_value_survives_scrubbing(secret: str, prefix: str) -> None:
    assert secret not in scrub(f'header "Authorization: {prefix}{secret}" refused')


@given(
    secret=_SECRET, key=st.sampled_from(["password", "token", "api_key", "csrf_token", "SECRET"])
)
def test_no_credential_pair_survives_scrubbing(secret: str, key: str) -> None:
    assert secret not in scrub(f"form {key}={secret}&next=/")
    assert secret not in scrub(f'{{"{key}": "{secret}"}}')
    assert secret not in scrub_query(f"page=2&{key}={secret}")


def test_a_record_with_a_traceback_stays_one_json_line() -> None:
    try:
        raise ValueError("bad\nthing password=hunter22")
    except ValueError:
        record = logging.LogRecord(
            "app", logging.ERROR, __file__, 1, "it %s", ("failed",), sys.exc_info()
        )
    line = JsonFormatter().format(record)
    assert "\n" not in line and "hunter22" not in line
    doc = json.loads(line)
    assert doc["event"] == "log" and doc["message"] == "it failed" and doc["level"] == "error"
    assert "ValueError" in doc["exception"]


@pytest.mark.parametrize(
    ("env", "logger"),
    [
        ({}, "tuscam_gunicorn.accesslog.AccessLogger"),
        ({"TUSCAM_LOG_FORMAT": "text"}, "tuscam_gunicorn.accesslog.AccessLogger"),
        ({"TUSCAM_LOG_FORMAT": "JSON"}, "tuscam_gunicorn.jsonlog.JsonLogger"),
    ],
)
def test_the_log_format_selects_the_logger(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], logger: str
) -> None:
    monkeypatch.delenv("TUSCAM_LOG_FORMAT", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert runpy.run_path(str(ROOT / "gunicorn.conf.py"))["logger_class"] == logger


def test_an_unknown_log_format_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUSCAM_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="TUSCAM_LOG_FORMAT must be text or json"):
        runpy.run_path(str(ROOT / "gunicorn.conf.py"))


def test_bytes_count_what_arrived_once_even_through_concatenation(app: Flask) -> None:
    add_user(app, "concat-olga")
    token = token_for(app, "concat-olga")
    client = app.test_client()
    tus = {"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"}
    before = sample("tuscam_tus_bytes_received_total")
    created = sample("tuscam_tus_uploads_created_total")
    parts = []
    for body in (b"a" * 300, b"b" * 200):
        r = client.post(
            "/files/", headers={**tus, "Upload-Length": str(len(body)), "Upload-Concat": "partial"}
        )
        assert r.status_code == 201
        location = r.headers["Location"]
        r = client.patch(
            location,
            data=body[:100],
            headers={
                **tus,
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
            },
        )
        r = client.patch(
            location,
            data=body[100:],
            headers={**tus, "Upload-Offset": "100", "Content-Type": OCTETS},
        )
        assert r.status_code == 204
        parts.append(location.split("/files/", 1)[1])
    # A PATCH at a stale offset stores nothing and counts nothing.
    r = client.patch(
        "/files/" + parts[0],
        data=b"zz",
        headers={**tus, "Upload-Offset": "0", "Content-Type": OCTETS},
    )
    assert r.status_code == 409
    assert sample("tuscam_tus_bytes_received_total") == before + 500
    bearer = {"Authorization": f"Bearer {token}"}
    assessment = client.post("/api/assessments", json={"title": "t"}, headers=bearer).json["id"]
    session_id = client.post(
        f"/api/assessments/{assessment}/sessions", json={"label": "s"}, headers=bearer
    ).json["id"]
    final = "final;" + " ".join(f"/files/{p}" for p in parts)
    metadata = encode_metadata(capture_metadata(session_id, "joined.jpg"))
    r = client.post("/files/", headers={**tus, "Upload-Concat": final, "Upload-Metadata": metadata})
    assert r.status_code == 201, r.get_data(as_text=True)
    assert r.headers["Upload-Offset"] == "500"
    assert sample("tuscam_tus_bytes_received_total") == before + 500
    assert sample("tuscam_tus_uploads_created_total") == created + 3


@given(header=st.text(max_size=200) | st.binary(max_size=100).map(lambda b: b.decode("latin-1")))
def test_any_metadata_header_gives_a_session_id_or_none_and_never_raises(header: str) -> None:
    found = metadata_session_id(header)
    assert found is None or (isinstance(found, int) and found >= 0)
