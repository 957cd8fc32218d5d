"""tus-js-client 4.3.1 (the client inside Uppy) in node against the real server: plain, resumed
after an abort, parallel (concatenation), data during creation, deferred length."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.server import LiveServer
from tests.support.tus import TusClient, sha256

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("tusjs_client.mjs")


@pytest.fixture(scope="module")
def node() -> str:
    node = shutil.which("node")
    if node is None or not (ROOT / "node_modules" / "tus-js-client").is_dir():
        if os.environ.get("CI"):
            pytest.fail("node and node_modules/tus-js-client are needed (npm ci)")
        pytest.skip("node or node_modules/tus-js-client missing: run `npm ci`")
    return node


@pytest.mark.parametrize("mode", ["plain", "resume", "parallel", "creation", "deferred"])
def test_tus_js_client_uploads_byte_exact(
    live_server: LiveServer, node: str, tmp_path: Path, mode: str
) -> None:
    _name, token = live_server.new_operator("js")
    _aid, sid = live_server.new_capture_session(token)
    data = os.urandom((1 << 20) + 4321)
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    result = subprocess.run(
        [node, str(SCRIPT), live_server.url + "/files/", token, str(path), str(sid), mode],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    tus = TusClient(live_server.url, token)
    url = tus.absolute(out["url"])
    assert tus.offset(url) == len(data)
    assert sha256(tus.download(url)) == sha256(data)
    assert out["headers"]["Tuscam-Capture-Status"] == "rejected"  # random bytes: not an image
    if mode == "resume":
        assert out["aborted_at"] and out["aborted_at"] < len(data)
