"""Camera page over emulated phone links: photo added -> capture accepted, against the physical
limit (bytes / upload bandwidth + one round trip). `python -m bench.camera_link [--reps 2]`."""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

from tests.support.server import start_live_server

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
# (name, photo bytes, round trip in ms, upload bits per second)
LINKS = [
    ("2 MB, 150 ms, 1.5 Mbit/s", 2_000_000, 150, 1_500_000),
    ("3 MB, 300 ms, 8 Mbit/s", 3_000_000, 300, 8_000_000),
]
GOAL = 1.10


def noise_png(path: Path, size: int, seed: int) -> Path:
    """A valid PNG of incompressible noise of about `size` bytes (what a photo costs on a link)."""
    rng = random.Random(seed)
    width = 1000
    height = max(1, size // (width * 3))
    Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3)).save(
        path, compress_level=0
    )
    return path


def limit_seconds(size: int, rtt_ms: int, bits: int) -> float:
    return size * 8 / bits + rtt_ms / 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.camera_link", description=__doc__)
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="camera-link-") as tmp_name:
        tmp = Path(tmp_name)
        with start_live_server(tmp / "server") as server:
            password = server.create_user("bench-camera", "operator")
            token = server.create_token("bench-camera")
            runs = []
            for rep in range(args.reps):
                for i, (name, size, rtt, bits) in enumerate(LINKS):
                    # A session and a photo of its own per run: no duplicate detection in play.
                    _, session_id = server.new_capture_session(token, label=f"link {i} {rep}")
                    photo = noise_png(tmp / f"photo-{i}-{rep}.png", size, seed=rep * 10 + i)
                    runs.append(
                        {
                            "link": name,
                            "bytes": photo.stat().st_size,
                            "rttMs": rtt,
                            "bitsPerSecond": bits,
                            "sessionId": session_id,
                            "file": str(photo),
                        }
                    )
            config = {
                "base": server.url,
                "username": "bench-camera",
                "password": password,
                "chromiumPath": CHROMIUM,
                "runs": runs,
            }
            proc = subprocess.run(
                ["node", str(ROOT / "bench" / "camera_link.mjs")],
                input=json.dumps(config),
                capture_output=True,
                text=True,
                cwd=ROOT,
                timeout=1200,
            )
            if proc.returncode != 0:
                print(proc.stdout, proc.stderr, server.log()[-3000:], sep="\n", file=sys.stderr)
                return 2
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    for r in results:
        print(f"# {r['link']}: {r['seconds']:.3f} s, in IndexedDB after {r.get('storedMs')} ms")
    print("| link | bytes | limit s | runs s | ratio (median) | goal |")
    print("| --- | --- | --- | --- | --- | --- |")
    failed = False
    for name, _, rtt, bits in LINKS:
        mine = [r for r in results if r["link"] == name]
        limit = limit_seconds(mine[0]["bytes"], rtt, bits)
        ratio = statistics.median(r["seconds"] for r in mine) / limit
        ok = ratio <= GOAL and all(r["status"] == "accepted" for r in mine)
        failed |= not ok
        times = ", ".join(f"{r['seconds']:.2f}" for r in mine)
        verdict = "ok" if ok else "FAILS"
        print(
            f"| {name} | {mine[0]['bytes']} | {limit:.2f} | {times} | {ratio:.2f}x | "
            f"<= {GOAL}x {verdict} |"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
