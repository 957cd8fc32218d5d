"""12 MP JPEGs for the end-to-end scenario: tuscam receives them and processes each capture
(Pillow verify, thumbnail, store, database row), as a camera operator's uploads would be.

A few base images are made with Pillow (smooth noise, so they compress like a photo: a few MB
each); every upload gets its own bytes through a unique JPEG comment, so none is a duplicate.
"""

from __future__ import annotations

import io
import struct
import time

from PIL import Image

from bench import loadgen
from bench.loadgen import Payload
from bench.memory import MB
from bench.peers import Server
from bench.procs import cpu_seconds

WIDTH, HEIGHT = 4000, 3000  # 12 MP


def base_jpeg(seed: int) -> bytes:
    channels = []
    for c in range(3):
        noise = Image.effect_noise((WIDTH // 16, HEIGHT // 16), 40 + 10 * ((seed + c) % 3))
        channels.append(noise.resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC))
    image = Image.merge("RGB", channels)
    fine = Image.effect_noise((WIDTH, HEIGHT), 12).convert("RGB")
    image = Image.blend(image, fine, 0.25)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=88)
    return out.getvalue()


def with_comment(jpeg: bytes, text: str) -> bytes:
    """The same image with a COM segment right after SOI: other bytes, same picture."""
    assert jpeg[:2] == b"\xff\xd8"
    body = text.encode()
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(body) + 2) + body + jpeg[2:]


def make_photos(count: int, bases: int = 3) -> list[Payload]:
    images = [base_jpeg(seed) for seed in range(bases)]
    payloads = []
    for i in range(count):
        data = with_comment(images[i % bases], f"tuscam bench photo {i} {time.time_ns()}")
        payloads.append(Payload(f"e2e-{i:04d}", len(data), data=data))
    return payloads


def run_e2e(server: Server, photos: list[Payload], concurrency: int) -> dict[str, object]:
    """Upload the photos (POST + one PATCH each) and count the capture statuses tuscam answers."""
    pids = server.pids()
    cpu_before = cpu_seconds(pids)
    run = loadgen.run_uploads(server, photos, concurrency=concurrency, chunk_size=64 << 20)
    cpu = cpu_seconds(pids) - cpu_before
    errors = run.errors + loadgen.verify(server, run.uploads)
    statuses: dict[str, int] = {}
    for u in run.uploads:
        status = u.headers.get("Tuscam-Capture-Status", "missing")
        statuses[status] = statuses.get(status, 0) + 1
        if status != "accepted":
            reason = u.headers.get("Tuscam-Capture-Reason", "")
            errors.append(f"{u.payload.name}: capture {status} {reason}".strip())
    latencies = [u.seconds for u in run.uploads]
    return {
        "photos": len(photos),
        "concurrency": concurrency,
        "mean_size_mb": sum(p.length for p in photos) / len(photos) / MB,
        "seconds": run.seconds,
        "uploads_per_s": len(run.uploads) / run.seconds if run.seconds else 0.0,
        "mb_per_s": run.bytes / run.seconds / MB if run.seconds else 0.0,
        "p50_ms": loadgen.percentile(latencies, 50) * 1000,
        "p95_ms": loadgen.percentile(latencies, 95) * 1000,
        "cpu_per_photo_ms": cpu / max(len(run.uploads), 1) * 1000,
        "statuses": statuses,
        "errors": errors[:10],
    }
