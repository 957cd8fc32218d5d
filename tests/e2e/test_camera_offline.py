"""The camera page offline (service worker, per-user IndexedDB store, sent once when the server
is back), shared browsers and logout, stalled PATCHes, and phones in both orientations."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.e2e.conftest import CLIP_SIZE, Operator, ScenarioRunner
from tests.e2e.http_fault_proxy import HttpFaultProxy
from tests.e2e.test_camera_browser import captures_of
from tests.support.server import LiveServer, free_port

pytestmark = pytest.mark.browser


def test_photos_taken_offline_survive_a_browser_restart_and_arrive_once_when_the_server_returns(
    run_scenario: ScenarioRunner, live_server: LiveServer, operator: Operator, tmp_path: Path
) -> None:
    # The browser talks to a proxy on a fixed port: stopping it is the server going away (the
    # connection is refused), a new one on the same port is the server coming back.
    port = free_port()
    profile = str(tmp_path / "profile")
    with HttpFaultProxy(live_server.port, port=port) as proxy:
        visit = run_scenario("visit", base=proxy.url, profile=profile)
    base = f"http://127.0.0.1:{port}"

    offline = run_scenario("offline_photos", base=base, profile=profile)
    assert offline["pageStatus"] == 200 and offline["fromServiceWorker"] is True
    assert offline["state"]["waiting"] == "3"
    assert offline["state"]["title"].startswith("(3) Camera · ")
    assert "saved on this device" in offline["state"]["banner"]
    # Each row says the photo is safe and waiting; no "Failed to upload" toasts for it.
    assert set(offline["state"]["rows"]) <= {"waiting", "queued"}, offline["state"]["rows"]
    assert not any("Failed" in t for t in offline["state"]["toasts"]), offline["state"]["toasts"]
    assert captures_of(live_server, operator) == []

    proxies: list[HttpFaultProxy] = []

    def server_back(signal: str) -> None:
        assert signal == "waiting"
        proxies.append(HttpFaultProxy(live_server.port, port=port).__enter__())

    try:
        back = run_scenario(
            "restart_and_send", base=base, profile=profile, on_signal=server_back, timeout=300
        )
    finally:
        for proxy in proxies:
            proxy.close()
    assert back["fromServiceWorker"] is True
    assert back["before"]["waiting"] == "3"
    assert back["before"]["title"].startswith("(3) Camera · ")
    assert back["after"]["title"].startswith("Camera · ")  # no count when none wait
    # The fake camera shows a still clip: the server may mark identical photos as duplicates.
    assert sorted(back["after"]["rows"]) in (
        ["accepted"] * 3,
        ["accepted", "accepted", "duplicate"],
        ["accepted", "duplicate", "duplicate"],
    ), back["after"]["rows"]

    captures = captures_of(live_server, operator)
    assert len(captures) == 3
    assert len({c["upload_id"] for c in captures}) == 3
    for capture in captures:
        assert capture["session_id"] == operator.session_id
        assert capture["status"] in {"accepted", "duplicate"}
        assert capture["capture_trigger"] == "manual"
        assert capture["camera_settings"]["source"] == "webcam"
        assert capture["camera_settings"]["width"] == CLIP_SIZE[0]
        assert capture["camera_settings"]["operator"]["facingMode"] == "environment"
    assert visit["userId"]
    # Nothing was sent twice: one completed upload per photo; no Blob body went out.
    assert all(b["kind"] != "Blob" for b in back["after"]["xhrBodies"]), back["after"]["xhrBodies"]


def test_another_user_never_sends_them_and_logout_asks_then_clears(
    run_scenario: ScenarioRunner, live_server: LiveServer, operator: Operator
) -> None:
    other = f"admin-{operator.username}"
    other_password = live_server.create_user(other, "admin")
    result = run_scenario("other_user", otherUsername=other, otherPassword=other_password)

    assert result["storedA"] == 3
    assert result["asB"]["restored"] == 0
    assert result["asB"]["waiting"] == "0"
    assert not result["asB"]["title"].startswith("(")
    assert result["asB"]["xhrBodies"] == []  # B's page sent nothing at all to /files/
    assert result["dialogsAfterB"] == 0  # B had nothing waiting: no question
    # A's logout asked (3 photos); "Cancel" kept them and the session, "OK" cleared them.
    assert len(result["dialogs"]) == 2 and "3 photos" in result["dialogs"][0]
    assert result["afterCancel"] == {"url": "/", "stored": 3}
    assert result["storedAfterLogout"] == 0
    assert result["asAAgain"]["restored"] == 0
    assert captures_of(live_server, operator) == []


@pytest.fixture
def twelve_mib_image(tmp_path: Path) -> Path:
    """Noise PNG of ~12 MiB: the first 8 MiB go with the POST, the rest in a PATCH."""
    rng = random.Random(11)
    width, height = 2000, 2100
    path = tmp_path / "big-noise.png"
    Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3)).save(
        path, compress_level=0
    )
    return path


def test_a_stalled_patch_is_dropped_after_20_seconds_and_the_photo_arrives_once(
    run_scenario: ScenarioRunner,
    live_server: LiveServer,
    operator: Operator,
    twelve_mib_image: Path,
) -> None:
    started = time.monotonic()
    with HttpFaultProxy(live_server.port, stall_patches={1}, cut_after=300_000) as proxy:
        result = run_scenario("stall", base=proxy.url, file=str(twelve_mib_image))
    elapsed = time.monotonic() - started
    assert proxy.stalls == 1, proxy.requests
    assert result["outcome"]["status"] == "accepted"
    assert [s["method"] for s in result["stalls"]] == ["PATCH"]
    assert elapsed >= 20
    assert any(line.startswith("HEAD /files/") for line in proxy.requests), proxy.requests
    [capture] = captures_of(live_server, operator)
    assert capture["bytes"] == twelve_mib_image.stat().st_size
    kinds = {b["kind"] for b in result["state"]["xhrBodies"]}
    assert "Blob" not in kinds and "ArrayBuffer" in kinds, result["state"]["xhrBodies"]


@pytest.mark.parametrize("orientation", ["portrait", "landscape"])
def test_a_phone_in_either_orientation_has_no_sideways_scroll_and_the_shutter_on_screen(
    run_scenario: ScenarioRunner, live_server: LiveServer, operator: Operator, orientation: str
) -> None:
    result = run_scenario("phone_layout", phone=orientation)

    for state in (result["closed"], result["open"]):
        assert state["scrollWidth"] <= state["innerWidth"], state
    shutter = result["open"]["shutter"]
    assert shutter is not None
    height = result["open"]["innerHeight"]
    assert 0 <= shutter["top"] and shutter["bottom"] <= height, result["open"]
    assert 0 <= shutter["left"] and shutter["right"] <= result["open"]["innerWidth"]
    # Within thumb reach: not in the top third of the screen.
    assert shutter["top"] >= height / 3
    assert result["outcome"]["status"] == "accepted"
    assert len(captures_of(live_server, operator)) == 1
    for path in result["screenshots"]:
        assert Path(path).stat().st_size > 5_000
