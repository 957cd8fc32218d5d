"""The camera page in a real Chromium against a real gunicorn server: photos from a fake camera
reach the JSON API with their settings, uploads survive cut connections, going offline and a
reload, and the server's verdict is shown on the page."""

from __future__ import annotations

import hashlib
import io
import random
from pathlib import Path

import pytest
from PIL import Image

from tests.e2e.conftest import CLIP_SIZE, Operator, ScenarioRunner
from tests.e2e.http_fault_proxy import HttpFaultProxy
from tests.support.server import LiveServer

pytestmark = pytest.mark.browser


def upload_id_of(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def captures_of(live_server: LiveServer, operator: Operator) -> list[dict]:
    r = live_server.api(operator.token).get(f"/api/sessions/{operator.session_id}/captures")
    assert r.status_code == 200, r.text
    return r.json()["captures"]


@pytest.fixture
def big_image(tmp_path: Path) -> Path:
    """A 12 MiB PNG of noise (incompressible, a valid image): bigger than one 8 MiB chunk, so
    the POST carries the first chunk and PATCHes the rest."""
    rng = random.Random(7)
    width, height = 2000, 2100
    image = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    path = tmp_path / "noise.png"
    image.save(path, compress_level=0)
    assert path.stat().st_size > 12 * 1024 * 1024
    return path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_photo_taken_on_the_camera_page_becomes_a_capture_with_its_camera_settings(
    run_scenario: ScenarioRunner, live_server: LiveServer, operator: Operator
) -> None:
    result = run_scenario("photo")

    assert result["outcome"]["type"] == "upload-success"
    assert result["outcome"]["status"] == "accepted"
    assert "Accepted" in result["listText"]
    # A photo below the chunk size goes in one request: the POST that creates the upload.
    sent = [(b["method"], b["kind"]) for b in result["state"]["xhrBodies"]]
    assert sent == [("POST", "ArrayBuffer")], result["state"]["xhrBodies"]
    assert not result["state"]["title"].startswith("(")
    assert "Take a picture" in result["buttonNames"]  # every button has a name to be read out
    assert all(result["buttonNames"]), result["buttonNames"]
    width, height = CLIP_SIZE
    assert (result["track"]["width"], result["track"]["height"]) == (width, height)

    [capture] = captures_of(live_server, operator)
    assert capture["session_id"] == operator.session_id
    assert capture["upload_id"] == upload_id_of(result["outcome"]["uploadURL"])
    assert str(capture["id"]) == result["outcome"]["captureId"]
    assert capture["capture_trigger"] == "manual"
    assert capture["capture_type"] == "photo"
    assert capture["status"] == "accepted"
    settings = capture["camera_settings"]
    assert (settings["width"], settings["height"]) == (width, height)
    assert settings["source"] == "webcam"
    assert settings["deviceId"] and "label" in settings
    assert settings["operator"]["facingMode"] == "environment"
    assert (capture["width"], capture["height"]) == (width, height)

    # The photo shows what the camera saw: red on the left, blue on the right.
    r = live_server.api(operator.token).get(f"/captures/{capture['id']}/original")
    assert r.status_code == 200
    with Image.open(io.BytesIO(r.content)) as im:
        left = im.convert("RGB").getpixel((width // 4, height // 2))
        right = im.convert("RGB").getpixel((3 * width // 4, height // 2))
    assert left[0] > 180 and left[2] < 80, left
    assert right[2] > 180 and right[0] < 80, right


def test_a_file_sent_through_connections_cut_mid_patch_arrives_byte_exact(
    run_scenario: ScenarioRunner, live_server: LiveServer, operator: Operator, big_image: Path
) -> None:
    data = big_image.read_bytes()
    # PATCHes 1, 2 and 3 die after 300 kB each: three cuts in a row.
    with HttpFaultProxy(live_server.port, cut_patches={1, 2, 3}, cut_after=300_000) as proxy:
        result = run_scenario("proxy_upload", base=proxy.url, file=str(big_image))
    assert proxy.cuts == 3, proxy.requests
    assert any(line.startswith("HEAD /files/") for line in proxy.requests), proxy.requests
    assert result["outcome"]["status"] == "accepted", result["outcome"]
    # Interrupted PATCHes keep their bytes: the browser resumes, it does not start over.
    assert proxy.body_bytes_up < len(data) + 4 * 300_000

    upload_id = upload_id_of(result["outcome"]["uploadURL"])
    r = live_server.api(operator.token).get(f"/files/{upload_id}")
    assert r.status_code == 200
    assert sha256(r.content) == sha256(data)
    [capture] = captures_of(live_server, operator)
    assert capture["sha256"] == sha256(data)
    assert capture["bytes"] == len(data)
    # Every chunk went out as an ArrayBuffer, never a Blob (Safari 26 freezes on Blob bodies).
    kinds = [b["kind"] for b in result["state"]["xhrBodies"] if b["method"] in ("POST", "PATCH")]
    assert kinds and set(kinds) == {"ArrayBuffer"}, result["state"]["xhrBodies"]


def test_an_upload_interrupted_by_going_offline_resumes_when_the_network_returns(
    run_scenario: ScenarioRunner, live_server: LiveServer, operator: Operator, big_image: Path
) -> None:
    result = run_scenario("offline_resume", file=str(big_image))

    assert result["completedWhileOffline"] is False
    assert result["banner"]["hidden"] is False
    assert result["banner"]["role"] == "status"
    assert "offline" in result["banner"]["text"].lower()
    assert result["outcome"]["status"] == "accepted"
    assert result["patches"] >= 2  # the aborted one, then the rest after the network returned
    upload_id = upload_id_of(result["outcome"]["uploadURL"])
    r = live_server.api(operator.token).get(f"/files/{upload_id}")
    assert sha256(r.content) == sha256(big_image.read_bytes())
    assert len(captures_of(live_server, operator)) == 1


def test_a_photo_taken_offline_survives_a_reload_and_is_sent_once(
    run_scenario: ScenarioRunner, live_server: LiveServer, operator: Operator
) -> None:
    result = run_scenario("reload_restore")

    assert result["restored"]["fileId"] == result["fileId"]
    assert result["restored"]["ghost"] is False  # the photo itself came back, not just its name
    assert result["sentBeforeReload"] is False
    assert result["outcome"]["status"] == "accepted"
    [capture] = captures_of(live_server, operator)
    assert capture["capture_trigger"] == "manual"
    assert capture["upload_id"] == upload_id_of(result["outcome"]["uploadURL"])
    assert capture["camera_settings"]["width"] == CLIP_SIZE[0]


def test_a_rejected_capture_shows_the_servers_reason_on_a_phone(
    run_scenario: ScenarioRunner, live_server: LiveServer, operator: Operator
) -> None:
    result = run_scenario("rejected", phone=True)

    assert result["outcome"]["status"] == "rejected"
    reason = result["outcome"]["reason"]
    assert reason
    assert result["rowReason"] == reason
    assert "Rejected" in result["rowState"]
    [capture] = captures_of(live_server, operator)
    assert capture["status"] == "rejected"
    assert capture["reject_reason"].startswith(reason[:50])


def test_a_capture_refused_before_upload_shows_the_servers_message(
    run_scenario: ScenarioRunner, live_server: LiveServer, operator: Operator
) -> None:
    result = run_scenario("refused")

    outcome = result["outcome"]
    assert outcome["type"] == "upload-error" and outcome["status"] == "refused"
    assert 400 <= outcome["httpStatus"] < 500
    assert outcome["reason"] and "tus:" not in outcome["reason"]
    assert result["rowReason"] == outcome["reason"]
    assert captures_of(live_server, operator) == []


def test_the_timer_takes_photos_on_its_own_and_marks_them_as_timer_captures(
    run_scenario: ScenarioRunner, live_server: LiveServer, operator: Operator
) -> None:
    result = run_scenario("timer")

    assert result["outcome"]["status"] == "accepted"
    captures = captures_of(live_server, operator)
    assert captures and {c["capture_trigger"] for c in captures} == {"timer"}
    assert captures[0]["camera_settings"]["operator"]["timerSeconds"] == 5


def test_screenshots_of_the_camera_page_and_its_error_states_are_saved(
    run_scenario: ScenarioRunner,
) -> None:
    # Written by the scenarios above when they ran in this session; taken fresh here otherwise.
    from tests.e2e.conftest import ARTIFACTS

    wanted = ["camera-page.png", "camera-open.png"]
    if not all((ARTIFACTS / name).exists() for name in wanted):
        run_scenario("photo")
    for name in ["camera-page.png", "camera-open.png"]:
        path = ARTIFACTS / name
        assert path.stat().st_size > 10_000, name
        with Image.open(path) as im:
            assert im.width >= 1280


def test_the_page_takes_heic_files_picked_from_the_device(
    run_scenario: ScenarioRunner, live_server: LiveServer, operator: Operator
) -> None:
    result = run_scenario("heic_pick")

    assert result["added"]["source"]  # accepted by the page's file restrictions
    assert [b["method"] for b in result["state"]["xhrBodies"]] == ["POST"]  # and sent
    # The server's verdict on this fake HEIC is shown either way (a rejection with its reason).
    assert result["outcome"]["status"] in {"rejected", "refused", "accepted"}
