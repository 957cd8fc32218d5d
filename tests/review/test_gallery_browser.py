"""The reviewer pages end to end: captures uploaded with tuspy to a real gunicorn server appear
in the gallery in Chromium, one more appears while the gallery is open, and a reviewer approves
one with a note from the keyboard, which the JSON API then shows. Screenshots are kept in
test-artifacts/review/."""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from tusclient import client as tus_client

from tests.support.images import jpeg_exif_oriented
from tests.support.server import LiveServer

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("gallery_e2e.mjs")
ARTIFACTS = ROOT / "test-artifacts" / "review"
CHROMIUM = Path(os.environ.get("TUSCAM_CHROMIUM", "/usr/bin/chromium"))
NASTY = "<script>alert(1)</script>.jpg"


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser_ready() -> None:
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} is missing: apt-get install -y chromium (or scripts/system-deps.sh)")
    if shutil.which("node") is None:
        _missing("node is missing (Node 20+ runs the browser tests)")
    if not (ROOT / "node_modules" / "playwright-core").is_dir():
        _missing("node_modules/playwright-core is missing: run `npm ci` in the repository root")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)


@pytest.fixture(scope="module")
def review_server(live_server: LiveServer) -> LiveServer:
    return live_server


def photo(text: str, color: tuple[int, int, int], *, exif: bool = False) -> bytes:
    """A 800x600 JPEG with a colour band and a label, so screenshots show real thumbnails."""
    im = Image.new("RGB", (800, 600), (235, 238, 242))
    draw = ImageDraw.Draw(im)
    draw.rectangle((0, 380, 800, 600), fill=color)
    draw.ellipse((300, 120, 500, 320), fill=tuple(c // 2 for c in color))
    draw.text((30, 30), text, fill=(20, 20, 20))
    tags = Image.Exif()
    if exif:
        tags[0x010F] = "TuscamTestMake"
        tags[0x0110] = "Field Cam 2"
        tags[0x8769] = {0x9003: "2025:06:07 08:09:10", 0x9011: "+02:00"}
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=88, exif=tags)
    return buf.getvalue()


def tuspy_upload(server: LiveServer, token: str, data: bytes, metadata: dict[str, str]) -> None:
    client = tus_client.TusClient(
        server.url + "/files/", headers={"Authorization": f"Bearer {token}"}
    )
    uploader = client.uploader(
        file_stream=io.BytesIO(data), chunk_size=256 * 1024, metadata=metadata
    )
    uploader.upload()


def test_uploaded_captures_appear_live_and_a_reviewer_approves_one_with_a_note(
    browser_ready: None, review_server: LiveServer
) -> None:
    server = review_server
    operator = f"op-{secrets.token_hex(3)}"
    server.create_user(operator, "operator")
    token = server.create_token(operator)
    _aid, session_id = server.new_capture_session(token, label="Pier 4 — west face")
    reviewer = f"rev-{secrets.token_hex(3)}"
    password = server.create_user(reviewer, "reviewer")

    settings = json.dumps({"zoom": 2, "facingMode": "environment", "note": "<b>bold?</b>"})
    uploads = [
        ("IMG_0001.jpg", photo("north", (31, 111, 235)), "manual"),
        ("IMG_0002.jpg", photo("east", (6, 118, 71)), "timer"),
        (NASTY, jpeg_exif_oriented(400, 200), "manual"),
        ("notes.jpg", b"not an image at all\n" * 50, "manual"),
    ]
    for name, data, trigger in uploads:
        tuspy_upload(
            server,
            token,
            data,
            {
                "filename": name,
                "filetype": "image/jpeg",
                "session_id": str(session_id),
                "capture_trigger": trigger,
                "camera_settings": settings,
            },
        )
    api = server.api(token)
    listed = api.get(f"/api/sessions/{session_id}/captures").json()["captures"]
    assert len(listed) == 4
    assert sorted(c["status"] for c in listed) == ["accepted", "accepted", "accepted", "rejected"]

    note = "Sharp; <i>markup</i> stays text"
    config = {
        "base": server.url,
        "username": reviewer,
        "password": password,
        "sessionId": session_id,
        "chromiumPath": str(CHROMIUM),
        "artifacts": str(ARTIFACTS),
        "note": note,
    }
    with subprocess.Popen(
        ["node", str(SCRIPT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    ) as proc:
        assert proc.stdin and proc.stdout and proc.stderr
        try:
            proc.stdin.write(json.dumps(config) + "\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
            result = json.loads(line) if line.startswith("{") else {"error": line}
            if result.get("step") == "ready":
                # The gallery is open: this capture must appear in it without a reload.
                tuspy_upload(
                    server,
                    token,
                    photo("live", (180, 35, 24), exif=True),
                    {
                        "filename": "IMG_0005_live.jpg",
                        "filetype": "image/jpeg",
                        "session_id": str(session_id),
                        "capture_trigger": "timer",
                        "camera_settings": json.dumps(
                            {"width": 1920, "height": 1080, "torch": False, "zoom": 1.5}
                        ),
                    },
                )
                proc.stdin.write("go\n")
                proc.stdin.flush()
                line = proc.stdout.readline()
                result = json.loads(line) if line.startswith("{") else {"error": line}
            proc.stdin.close()
            stderr = proc.stderr.read()
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert not result.get("error"), f"{result}\n{stderr}\n{server.log()[-3000:]}"

    ids = {c["filename"]: c["id"] for c in listed}
    assert sorted(result["initialCards"]) == sorted(ids.values())
    assert NASTY in result["filenames"]  # shown as text ...
    assert result["dialogs"] == []  # ... and never run
    assert result["lazy"] == ["lazy"] * 3  # three thumbnails; the rejected upload has none
    assert result["liveReloads"] == 0 and result["liveSeconds"] < 15
    assert "1 new capture arrived." in result["liveStatus"]
    live = api.get(f"/api/sessions/{session_id}/captures").json()["captures"][0]
    assert live["filename"] == "IMG_0005_live.jpg" and result["liveCard"] == live["id"]
    assert result["opened"] == live["id"] and result["afterK"] != live["id"]
    assert f"Approved capture {live['id']}." in result["flash"]
    approved = api.get(f"/api/captures/{live['id']}").json()
    assert approved["review_status"] == "approved"
    assert approved["reviewer_note"] == note
    # No console errors: a Content-Security-Policy violation would be one.
    assert "script-src 'self'" in result["csp"] and "default-src 'self'" in result["csp"]
    assert not [line for line in result["console"] if line.startswith(("error", "pageerror"))]
    for name in ["gallery.png", "capture.png", "after-approve.png"]:
        assert (ARTIFACTS / name).stat().st_size > 10_000, name
