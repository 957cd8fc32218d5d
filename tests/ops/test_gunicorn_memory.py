"""A worker gives a big upload's buffers back to the system when they are freed
(tuscam_gunicorn/memory.py): checked in a fresh interpreter, with and without the setting, so
the test shows the difference it makes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Four PATCH buffers alive at once (four concurrent uploads), something small allocated beside
# each that outlives them; then the buffers are freed. Prints the MiB the process kept.
PROBE = """
import sys
from tuscam_gunicorn.memory import release_large_blocks

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

if sys.argv[1] == "fixed" and not release_large_blocks():
    print("no-mallopt")
    raise SystemExit
first = bytearray(10 << 20)  # mapped, then freed: glibc raises its threshold to 10 MiB
del first
before = rss()
buffers, kept = [], []
for _ in range(4):
    buffers.append(bytearray(8 << 20))
    kept.append(bytearray(64))
del buffers
print((rss() - before) >> 20)
"""


def kept_mib(mode: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def test_freed_upload_buffers_leave_the_worker() -> None:
    fixed = kept_mib("fixed")
    if fixed == "no-mallopt":
        pytest.skip("the C library is not glibc: no mallopt")
    assert int(fixed) < 2
    assert int(kept_mib("plain")) >= 7  # glibc keeps at least one buffer without the setting
