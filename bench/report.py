"""The benchmark report: a Markdown table per scenario (medians over repetitions), tuscam's ratio
to each server, and one PASS/FAIL line per goal of the performance issue.

Ratios are the median of per-repetition ratios: within a repetition the servers ran one after
the other under the same background load, so their ratio is steadier than a ratio of medians on
a shared, noisy machine.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from bench.loadgen import median
from bench.peers import DESCRIPTIONS, TUS_PEERS
from bench.scenarios import SCENARIOS, MemoryStep

THROUGHPUT = {"big": "mb_per_s", "parallel": "mb_per_s"}  # the rest: uploads_per_s


def metric_of(scenario: str) -> str:
    return THROUGHPUT.get(scenario, "uploads_per_s")


def _fmt(value: float, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.{digits}f}"


def _digits(summary: dict[str, Any]) -> int:
    value = summary["uploads_per_s"]
    return 2 if value == value and value < 10 else 0


def _runs(measurements: list[dict[str, Any]], scenario: str, server: str) -> list[dict[str, Any]]:
    return [m for m in measurements if m["scenario"] == scenario and m["server"] == server]


def summarize(measurements: list[dict[str, Any]], scenario: str, server: str) -> dict[str, Any]:
    runs = _runs(measurements, scenario, server)
    ok = [m for m in runs if not m["errors"]]
    keys = ("mb_per_s", "uploads_per_s", "p50_ms", "p95_ms", "cpu_per_gib", "peak_rss_mb")
    summary: dict[str, Any] = {k: median(m[k] for m in ok) for k in keys}
    summary["runs"] = len(runs)
    summary["failed"] = len(runs) - len(ok)
    summary["errors"] = [e for m in runs for e in m["errors"]][:5]
    return summary


def ratio(measurements: list[dict[str, Any]], scenario: str, other: str) -> float:
    """Median over repetitions of tuscam's metric / the other server's, both error-free."""
    key = metric_of(scenario)
    mine = {m["rep"]: m[key] for m in _runs(measurements, scenario, "tuscam") if not m["errors"]}
    theirs = {m["rep"]: m[key] for m in _runs(measurements, scenario, other) if not m["errors"]}
    return median(mine[r] / theirs[r] for r in mine if r in theirs and theirs[r])


def scenario_table(measurements: list[dict[str, Any]], scenario: str, servers: list[str]) -> str:
    unit = "MB/s" if metric_of(scenario) == "mb_per_s" else "uploads/s"
    latency = (
        "latency of each PATCH request"
        if SCENARIOS[scenario].latency == "request"
        else "latency of each upload (POST to last response)"
    )
    lines = [
        f"| server | MB/s | uploads/s | p50 ms | p95 ms | CPU s/GiB | peak RSS MB "
        f"| tuscam ÷ server ({unit}) | runs |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for server in servers:
        s = summarize(measurements, scenario, server)
        if not s["runs"]:
            continue
        r = "–" if server == "tuscam" else _fmt(ratio(measurements, scenario, server), 2) + "x"
        runs = f"{s['runs']}" + (f" ({s['failed']} failed)" if s["failed"] else "")
        lines.append(
            f"| {server} | {_fmt(s['mb_per_s'])} | {_fmt(s['uploads_per_s'], _digits(s))} "
            f"| {_fmt(s['p50_ms'], 1)} | {_fmt(s['p95_ms'], 1)} | {_fmt(s['cpu_per_gib'], 2)} "
            f"| {_fmt(s['peak_rss_mb'])} | {r} | {runs} |"
        )
    lines.append("")
    lines.append(f"Latency: {latency}. Peak RSS: the largest worker process.")
    failures = [(srv, summarize(measurements, scenario, srv)["errors"]) for srv in servers]
    for srv, errors in failures:
        for e in errors:
            lines.append(f"- {srv} error: {e}")
    return "\n".join(lines)


def _best_peer(measurements: list[dict[str, Any]], scenario: str) -> tuple[str, float] | None:
    key = metric_of(scenario)
    best = None
    for peer in TUS_PEERS:
        value = summarize(measurements, scenario, peer)[key]
        if not math.isnan(value) and (best is None or value > best[1]):
            best = (peer, value)
    return best


def goals(
    measurements: list[dict[str, Any]], memory: list[MemoryStep] | None
) -> list[tuple[str, str, str]]:
    """(PASS | FAIL | SKIP, goal, the figures behind the verdict)."""
    out: list[tuple[str, str, str]] = []

    def tus_goal(scenario: str, factor: float, text: str) -> None:
        tuscam = summarize(measurements, scenario, "tuscam")
        best = _best_peer(measurements, scenario)
        if not tuscam["runs"] or best is None:
            out.append(("SKIP", text, "not measured (tuscam and a tus peer are both needed)"))
            return
        if tuscam["failed"]:
            out.append(("FAIL", text, f"tuscam had errors: {tuscam['errors'][:2]}"))
            return
        r = ratio(measurements, scenario, best[0])
        verdict = "PASS" if r >= factor else "FAIL"
        unit = "MB/s" if metric_of(scenario) == "mb_per_s" else "uploads/s"
        out.append(
            (
                verdict,
                text,
                f"tuscam {_fmt(tuscam[metric_of(scenario)])} {unit}, best tus peer {best[0]} "
                f"{_fmt(best[1])}: {_fmt(r, 2)}x (needs {factor}x)",
            )
        )

    tus_goal("big", 1.5, "one 1 GiB upload: >= 1.5x the best tus peer")
    plain = summarize(measurements, "big", "plain-flask")
    tuscam_big = summarize(measurements, "big", "tuscam")
    text = "one 1 GiB upload: >= 0.9x the plain Flask streaming POST"
    if plain["runs"] and tuscam_big["runs"] and not tuscam_big["failed"]:
        r = ratio(measurements, "big", "plain-flask")
        out.append(
            (
                "PASS" if r >= 0.9 else "FAIL",
                text,
                f"tuscam {_fmt(tuscam_big['mb_per_s'])} MB/s, plain Flask "
                f"{_fmt(plain['mb_per_s'])}: {_fmt(r, 2)}x (needs 0.9x)",
            )
        )
    else:
        out.append(("SKIP", text, "not measured"))
    tus_goal("parallel", 1.3, "8 x 50 MiB parallel: >= 1.3x the best tus peer")
    tus_goal("photos", 1.5, "photos POST + PATCH: >= 1.5x the best tus peer in uploads/s")
    tuscam_ph = summarize(measurements, "photos", "tuscam")
    best = _best_peer(measurements, "photos")
    text = "photos POST + PATCH: p95 no worse than the best tus peer"
    if tuscam_ph["runs"] and best is not None and not tuscam_ph["failed"]:
        peer_p95 = summarize(measurements, "photos", best[0])["p95_ms"]
        lowest = min(summarize(measurements, "photos", p)["p95_ms"] for p in TUS_PEERS)
        out.append(
            (
                "PASS" if tuscam_ph["p95_ms"] <= peer_p95 else "FAIL",
                text,
                f"tuscam p95 {_fmt(tuscam_ph['p95_ms'], 1)} ms, {best[0]} "
                f"{_fmt(peer_p95, 1)} ms (lowest of the tus peers: {_fmt(lowest, 1)} ms)",
            )
        )
    else:
        out.append(("SKIP", text, "not measured"))
    tus_goal("photos-cwu", 1.3, "photos with creation-with-upload: >= 1.3x the best tus peer")
    if memory is None:
        out.append(("SKIP", "memory: flat per upload and for a 1 GiB upload", "not measured"))
    else:
        for step in memory:
            if step.kind == "per-upload":
                figure = f"{_fmt(step.per_upload_mb, 1)} MB per concurrent upload"
            else:
                figure = f"{_fmt(max(step.growth_mb.values()), 1)} MB above idle (largest worker)"
            errors = f"; errors: {step.errors[:2]}" if step.errors else ""
            out.append(
                (
                    "PASS" if step.passed else "FAIL",
                    f"memory, {step.label}: < {step.limit_mb:g} MB",
                    figure + errors,
                )
            )
    return out


def memory_table(memory: list[MemoryStep]) -> str:
    lines = [
        "| step | growth per worker MB | per concurrent upload MB | limit | verdict |",
        "| --- | --- | ---: | --- | --- |",
    ]
    for step in memory:
        per_worker = ", ".join(_fmt(v, 1) for v in step.growth_mb.values())
        limit = (
            f"< {step.limit_mb:g} MB per upload"
            if step.kind == "per-upload"
            else f"< {step.limit_mb:g} MB per worker"
        )
        lines.append(
            f"| {step.label} | {per_worker} | {_fmt(step.per_upload_mb, 1)} | {limit} "
            f"| {'PASS' if step.passed else 'FAIL'} |"
        )
    return "\n".join(lines)


def render(
    meta: dict[str, Any],
    measurements: list[dict[str, Any]],
    servers: Iterable[str],
    memory: list[MemoryStep] | None = None,
    e2e: dict[str, Any] | None = None,
    external: dict[str, str] | None = None,
) -> str:
    servers = list(servers)
    parts = [
        "# tuscam benchmarks",
        "",
        f"{meta.get('started', '')} — {meta.get('mode', '')}, {meta.get('reps', '?')} "
        f"repetition(s), servers alternating within each repetition; figures are medians. "
        f"MB = 10^6 bytes. {meta.get('machine', '')}",
        "",
        (
            f"Extra environment of tuscam: `{meta['tuscam_env']}`.\n"
            if meta.get("tuscam_env")
            else ""
        )
        + "Servers: "
        + "; ".join(f"**{s}** {DESCRIPTIONS.get(s, '')}" for s in servers)
        + ".",
        "",
    ]
    for key, scenario in SCENARIOS.items():
        if any(m["scenario"] == key for m in measurements):
            parts += [
                f"## {scenario.title}",
                "",
                meta.get("sizes", {}).get(key, ""),
                "",
                scenario_table(measurements, key, servers),
                "",
            ]
    if e2e:
        parts += [
            "## End to end: 12 MP JPEG photos with capture processing (tuscam only)",
            "",
            f"{e2e['photos']} photos of {_fmt(e2e['mean_size_mb'], 1)} MB on average, "
            f"{e2e['concurrency']} at a time, POST + PATCH: "
            f"**{_fmt(e2e['uploads_per_s'], 1)} photos/s**, {_fmt(e2e['mb_per_s'])} MB/s, "
            f"p50 {_fmt(e2e['p50_ms'])} ms, p95 {_fmt(e2e['p95_ms'])} ms, "
            f"server CPU {_fmt(e2e['cpu_per_photo_ms'])} ms per photo; "
            f"capture statuses {e2e['statuses']}.",
            "",
        ]
        parts += [f"- error: {e}" for e in e2e["errors"]]
        parts.append("")
    if memory:
        parts += ["## Memory of tuscam's workers (peak RSS growth)", "", memory_table(memory), ""]
    for key, output in (external or {}).items():
        parts += [f"## {key} (its own benchmark)", "", "```", output, "```", ""]
    parts += ["## Goals", ""]
    for verdict, goal, figures in goals(measurements, memory):
        parts.append(f"- **{verdict}** {goal} — {figures}")
    parts.append("")
    return "\n".join(parts)
