"""`python -m bench` (and `make bench`): the benchmark matrix of tuscam against its tus peers.

Every selected server is started once; for each scenario and repetition the servers run one
after another in a rotating order, so each repetition compares them under the same background
load. The report (Markdown, plus the raw figures as JSON) goes to stdout and bench/results/.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from bench import peers, photos, profile, report, scenarios
from bench.loadgen import Pool
from bench.peers import SERVERS

HERE = Path(__file__).resolve().parent
# Benchmarks of their own (other modules of bench/), run as subprocesses: their output goes into
# the report as it is, and a failure there does not stop the matrix.
EXTERNAL = {
    "capture-processing": (["bench/capture_processing.py", "--runs", "10"], ["--runs", "3"]),
    "gallery": (["-m", "bench.gallery", "--requests", "10"], ["--captures", "2000"]),
}
ALL_SCENARIOS = [*scenarios.SCENARIOS, "e2e", "memory", *EXTERNAL]
DEFAULT_SCENARIOS = ALL_SCENARIOS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1 repetition, smaller sizes")
    parser.add_argument(
        "--only",
        default=",".join(DEFAULT_SCENARIOS),
        help=f"comma-separated scenarios of {','.join(ALL_SCENARIOS)} (default: all)",
    )
    parser.add_argument(
        "--servers",
        default=",".join(SERVERS),
        help=f"comma-separated servers of {','.join(SERVERS)} (default: all)",
    )
    parser.add_argument("--reps", type=int, help="repetitions (default 3; 1 with --quick)")
    parser.add_argument(
        "--budget", type=float, default=900, help="seconds; no new repetition starts after it"
    )
    parser.add_argument("--out", type=Path, default=HERE / "results", help="report folder")
    parser.add_argument(
        "--tmp", type=Path, default=Path("/tmp"), help="where the data of the servers goes"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also py-spy tuscam's workers during one extra run of each scenario",
    )
    parser.add_argument(
        "--profile-gil",
        action="store_true",
        help="with --profile: sample only threads holding the GIL (CPU), not wall time",
    )
    parser.add_argument(
        "--tuscam-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for tuscam's gunicorn (repeatable), for experiments such as "
        "TUSCAM_TUS_FSYNC_EACH_PATCH=1 or LD_PRELOAD=libeatmydata.so",
    )
    args = parser.parse_args(argv)
    try:
        args.tuscam_env = dict(kv.split("=", 1) for kv in args.tuscam_env)
    except ValueError:
        parser.error("--tuscam-env takes KEY=VALUE")
    args.scenarios = [s for s in args.only.split(",") if s]
    args.server_names = [s for s in args.servers.split(",") if s]
    for s in args.scenarios:
        if s not in ALL_SCENARIOS:
            parser.error(f"unknown scenario {s!r}; known: {', '.join(ALL_SCENARIOS)}")
    for s in args.server_names:
        if s not in SERVERS:
            parser.error(f"unknown server {s!r}; known: {', '.join(SERVERS)}")
    if args.reps is None:
        args.reps = 1 if args.quick else 3
    return args


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def ensure_peers(names: list[str]) -> None:
    if {"tus-node", "tuspyserver"} & set(names):
        subprocess.run([str(HERE / "peers" / "install.sh")], check=True, stdout=sys.stderr)


def machine() -> str:
    load = os.getloadavg()
    return (
        f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average at start {load[0]:.2f}."
    )


def run_matrix(
    args: argparse.Namespace, pool: Pool, tmp: Path, deadline: float
) -> tuple[list[dict[str, object]], dict[str, str]]:
    names = list(args.server_names)
    matrix = [s for s in args.scenarios if s in scenarios.SCENARIOS]
    measurements: list[dict[str, object]] = []
    sizes: dict[str, str] = {}
    if not matrix:
        return measurements, sizes
    with contextlib.ExitStack() as stack:
        servers = {}
        for name in list(names):
            log(f"starting {name}")
            try:
                servers[name] = stack.enter_context(peers.start(name, tmp / name, args.tuscam_env))
                scenarios.warm_up(servers[name], pool)
            except (RuntimeError, OSError) as exc:
                # One server that cannot start (a peer not installed, a port taken) must not
                # cost the figures of the others; the report lists only the servers measured.
                log(f"{name} left out: {exc}")
                names.remove(name)
                servers.pop(name, None)
        for key in matrix:
            scenario = scenarios.SCENARIOS[key]
            sizes[key] = scenario.describe(args.quick) + "."
            payloads = scenarios.make_payloads(scenario, pool, args.quick)
            for rep in range(args.reps):
                if rep and time.monotonic() > deadline:
                    log(f"time budget spent: {key} stops after {rep} repetition(s)")
                    break
                order = names[rep % len(names) :] + names[: rep % len(names)]
                for name in order:
                    server = servers[name]
                    m = scenarios.measure(scenario, server, payloads, rep)
                    server.cleanup()
                    measurements.append(m.as_dict())
                    status = f"{len(m.errors)} ERRORS: {m.errors[:2]}" if m.errors else "ok"
                    log(
                        f"{key} rep {rep + 1} {name}: {m.mb_per_s:.0f} MB/s, "
                        f"{m.uploads_per_s:.0f} uploads/s, p95 {m.p95_ms:.0f} ms, "
                        f"CPU {m.cpu_per_gib:.2f} s/GiB, {status}"
                    )
            if args.profile and "tuscam" in servers:
                profile_scenario(args, servers["tuscam"], scenario, payloads)
    return measurements, sizes


def profile_scenario(
    args: argparse.Namespace, server: peers.Server, scenario: scenarios.Scenario, payloads: list
) -> None:
    out = args.out / f"profile-{args.stamp}" / scenario.key
    files = profile.record(
        server.worker_pids(),
        out,
        lambda: scenarios.measure(scenario, server, payloads, -1),
        gil=args.profile_gil,
    )
    server.cleanup()
    summary = profile.summarize(files)
    (out / "summary.txt").write_text(summary + "\n")
    log(f"profile of tuscam in {scenario.key}: {out / 'summary.txt'}")


def run_memory(args: argparse.Namespace, pool: Pool, tmp: Path) -> list[scenarios.MemoryStep]:
    log("memory: a fresh tuscam")
    with peers.start("tuscam", tmp / "tuscam-memory", args.tuscam_env) as server:
        scenarios.warm_up(server, pool)
        steps = scenarios.measure_memory(server, pool, args.quick)
    for step in steps:
        log(f"memory {step.label}: {step.growth_mb} -> {'PASS' if step.passed else 'FAIL'}")
    return steps


def run_e2e(args: argparse.Namespace, tmp: Path) -> dict[str, object]:
    count = 8 if args.quick else 24
    log(f"e2e: making {count} 12 MP JPEGs")
    pics = photos.make_photos(count)
    with peers.start("tuscam", tmp / "tuscam-e2e", args.tuscam_env) as server:
        result = photos.run_e2e(server, pics, concurrency=4)
    log(f"e2e: {result['uploads_per_s']:.2f} photos/s, statuses {result['statuses']}")
    return result


def run_external(args: argparse.Namespace) -> dict[str, str]:
    """The other benchmarks' own output, keyed by scenario."""
    outputs = {}
    for key, (argv, quick_argv) in EXTERNAL.items():
        if key not in args.scenarios:
            continue
        log(f"{key}: running {' '.join(argv)}")
        command = [sys.executable, *argv, *(quick_argv if args.quick else [])]
        try:
            done = subprocess.run(
                command, cwd=HERE.parent, capture_output=True, text=True, timeout=300
            )
            text = done.stdout.strip()
            if done.returncode:
                text += f"\n(exit status {done.returncode})\n{done.stderr.strip()[-2000:]}"
        except subprocess.TimeoutExpired:
            text = "(did not finish within 300 s)"
        outputs[key] = text
    return outputs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    deadline = started + args.budget
    args.stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    ensure_peers(args.server_names)
    tmp = Path(tempfile.mkdtemp(prefix="tuscam-bench-", dir=args.tmp))
    meta = {
        "started": dt.datetime.now().isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "reps": args.reps,
        "machine": machine(),
        "tuscam_env": args.tuscam_env,
    }
    memory = e2e = None
    external: dict[str, str] = {}
    try:
        pool = Pool()
        measurements, sizes = run_matrix(args, pool, tmp, deadline)
        meta["sizes"] = sizes
        if "tuscam" in args.server_names and "e2e" in args.scenarios:
            e2e = run_e2e(args, tmp)
        if "tuscam" in args.server_names and "memory" in args.scenarios:
            memory = run_memory(args, pool, tmp)
        external = run_external(args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    meta["seconds"] = round(time.monotonic() - started, 1)
    text = report.render(meta, measurements, args.server_names, memory, e2e, external)
    text += f"\nThe whole run took {meta['seconds']} s.\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"bench-{args.stamp}.md").write_text(text)
    raw = {
        "meta": meta,
        "measurements": measurements,
        "memory": [asdict(s) for s in memory or []],
        "e2e": e2e,
        "external": external,
    }
    (args.out / f"bench-{args.stamp}.json").write_text(json.dumps(raw, indent=2, default=str))
    log(f"report: {args.out / f'bench-{args.stamp}.md'}")
    verdicts = [v for v, _, _ in report.goals(measurements, memory)]
    return 1 if "FAIL" in verdicts else 0


if __name__ == "__main__":
    sys.exit(main())
