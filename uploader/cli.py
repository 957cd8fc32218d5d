"""The tuscam-upload command: upload a folder of images into a capture session over tus.

    TUSCAM_TOKEN=... tuscam-upload PATH... --server URL --session ID [--parallel N] ...

Exit status: 0 when every file landed (accepted, duplicate, or already uploaded), 1 when any
file was rejected or failed, 2 for a usage error or a problem of the whole run (token, session,
server), 75 when the server stayed unreachable for --max-wait, 130 when interrupted; after 75
and 130 the same command resumes.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import NoReturn

from uploader import errors
from uploader.errors import RunStopped
from uploader.files import IMAGE_PATTERNS, LocalFile, PathProblem, collect, format_size, parse_size
from uploader.preflight import check_session
from uploader.progress import BarReporter, JsonReporter, Reporter, Summary
from uploader.state import StateStore, default_state_path
from uploader.transfer import FileResult, Options, Transfer, plan
from uploader.wait import parse_duration

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_TEMPFAIL = 75  # sysexits.h EX_TEMPFAIL: try again later
TOKEN_ENV = "TUSCAM_TOKEN"


class UsageError(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tuscam-upload",
        description="Upload images to a tuscam capture session over tus, resumably.",
        epilog=f"The API token comes from ${TOKEN_ENV} or --token-file, never the command line. "
        "Exit status: 0 every file landed, 1 some file rejected or failed, 2 usage error or a "
        "wrong token, session or server, 75 the server stayed unreachable for --max-wait, "
        "130 interrupted (75 and 130: run the same command again to resume).",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (recursive)")
    p.add_argument("--server", required=True, metavar="URL", help="e.g. http://127.0.0.1:8000")
    p.add_argument("--session", required=True, type=int, metavar="ID", help="capture session id")
    p.add_argument("--trigger", default="bulk", help="capture_trigger metadata (default: bulk)")
    p.add_argument(
        "--type", default="photo", dest="capture_type", metavar="TYPE", help="capture_type (photo)"
    )
    p.add_argument("--parallel", type=int, default=4, metavar="N", help="uploads at once (4)")
    p.add_argument(
        "--chunk-size", default="4M", metavar="SIZE", help="bytes per PATCH: 512K, 8M ... (4M)"
    )
    p.add_argument(
        "--state",
        type=Path,
        metavar="FILE",
        help=f"resume state (default {default_state_path()})",
    )
    p.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="GLOB",
        help="file names to take from folders, repeatable (default: "
        + " ".join(IMAGE_PATTERNS)
        + ")",
    )
    p.add_argument("--dry-run", action="store_true", help="list what would be uploaded")
    p.add_argument("--json", action="store_true", help="one JSON object per file, then a summary")
    p.add_argument("--token-file", type=Path, metavar="FILE", help="read the API token from FILE")
    p.add_argument(
        "--timeout", type=float, default=60.0, metavar="S", help="seconds per request (60)"
    )
    p.add_argument(
        "--max-wait",
        default="1h",
        metavar="DURATION",
        help="how long to wait for an unreachable server before stopping with status 75: "
        "30s, 10m, 1h ... 0 waits forever (1h)",
    )
    p.add_argument(
        "--max-backoff",
        default="30s",
        metavar="DURATION",
        help="longest pause between two tries of an unreachable server (30s)",
    )
    # Refused on purpose: a token in argv is visible to every user of the machine (ps).
    p.add_argument("--token", help=argparse.SUPPRESS)
    return p


def read_token(args: argparse.Namespace) -> str:
    if args.token is not None:
        raise UsageError(f"--token is not accepted (argv is visible to others): set {TOKEN_ENV}")
    if args.token_file is not None:
        try:
            token = args.token_file.read_text().strip()
        except OSError as exc:
            raise UsageError(f"--token-file {args.token_file}: {exc.strerror}") from exc
        if not token:
            raise UsageError(f"--token-file {args.token_file} is empty")
        return token.splitlines()[0].strip()
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise UsageError(f"no API token: set {TOKEN_ENV} or pass --token-file FILE")
    return token


def make_options(args: argparse.Namespace, token: str) -> Options:
    if not args.server.startswith(("http://", "https://")):
        raise UsageError(f"--server {args.server!r} must be an http:// or https:// URL")
    if not 1 <= args.parallel <= 64:
        raise UsageError("--parallel must be between 1 and 64")
    if args.timeout <= 0:
        raise UsageError("--timeout must be more than 0 seconds")
    try:
        chunk_size = parse_size(args.chunk_size)
    except ValueError as exc:
        raise UsageError(f"--chunk-size: {exc}") from exc
    try:
        max_wait = parse_duration(args.max_wait)
        max_backoff = parse_duration(args.max_backoff)
    except ValueError as exc:
        raise UsageError(f"--max-wait/--max-backoff: {exc}") from exc
    if max_backoff <= 0:
        raise UsageError("--max-backoff must be more than 0 seconds")
    return Options(
        server=args.server.rstrip("/"),
        session_id=args.session,
        token=token,
        chunk_size=chunk_size,
        capture_trigger=args.trigger,
        capture_type=args.capture_type,
        read_timeout=args.timeout,
        max_wait=max_wait or None,
        max_backoff=max_backoff,
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        options = make_options(args, read_token(args))
        files = collect(args.paths, args.include)
        if not files:
            raise UsageError("no files to upload under " + " ".join(args.paths))
    except (UsageError, PathProblem) as exc:
        _usage_exit(parser, str(exc), as_json=args.json)
    state_path = args.state or default_state_path()
    if args.json:
        reporter: Reporter = JsonReporter()
    elif sys.stdout.isatty():
        reporter = BarReporter(args.parallel)
    else:
        reporter = Reporter()
    with StateStore(state_path) as state:
        transfer = Transfer(options, state, display=reporter)
        try:
            if args.dry_run:
                return dry_run(transfer, files, as_json=args.json)
            return upload_all(transfer, files, reporter, args.parallel)
        finally:
            transfer.close()


def _usage_exit(parser: argparse.ArgumentParser, message: str, *, as_json: bool) -> NoReturn:
    parser.print_usage(sys.stderr)
    print(f"tuscam-upload: error: {message}", file=sys.stderr)
    if as_json:
        print(json.dumps({"error": errors.USAGE, "message": message}))
    raise SystemExit(EXIT_USAGE)


def exit_status(summary: Summary) -> int:
    if summary.halt is not None:
        return EXIT_TEMPFAIL if summary.halt.code == errors.SERVER_UNREACHABLE else EXIT_USAGE
    if summary.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if summary.ok else EXIT_FAILED


def upload_all(
    transfer: Transfer, files: list[LocalFile], reporter: Reporter, parallel: int
) -> int:
    """Check the token and the session, then upload; the exit status. A problem of the whole
    run (before or during it) ends with one line saying what is wrong and what is left."""
    restore = _sigterm_as_interrupt()
    try:
        try:
            check_session(transfer)
        except RunStopped as exc:
            summary = Summary([], 0.0, not_started=len(files), halt=exc)
            reporter.stopped((exc.code, exc.message), len(files), started=False)
            return exit_status(summary)
        except KeyboardInterrupt:
            transfer.stop.set()
            problem = (errors.INTERRUPTED, "interrupted before sending anything")
            reporter.stopped(problem, len(files), started=False)
            return EXIT_INTERRUPTED
        summary = run(transfer, files, reporter, parallel)
    finally:
        restore()
    if summary.problem is not None:
        reporter.stopped(summary.problem, summary.left, started=True)
    return exit_status(summary)


def run(transfer: Transfer, files: list[LocalFile], reporter: Reporter, parallel: int) -> Summary:
    """Upload `files` with `parallel` threads; Ctrl-C (or SIGTERM) stops cleanly: requests in
    flight end (each is bounded by its timeout), nothing new starts, the state keeps every URL.
    A problem of the whole run (transfer.halt) stops it the same way."""
    started = time.monotonic()
    stop = transfer.stop
    reporter.begin(files)

    def job(file: LocalFile) -> FileResult:
        if transfer.stopping():
            return transfer.upload(file)  # says why without reading the file
        progress = reporter.file_started(file)
        try:
            result = transfer.upload(file, progress)
        finally:
            progress.close()
        reporter.file_done(result)
        return result

    restore = _sigterm_as_interrupt()
    pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="tuscam-upload")
    pending: set[Future[FileResult]] = {pool.submit(job, f) for f in files}
    results: list[FileResult] = []
    interrupted = False
    try:
        while pending:
            try:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
            except KeyboardInterrupt:
                if interrupted:
                    _quit_now()
                interrupted = True
                stop.set()
                pending = {f for f in pending if not f.cancel()}
                reporter.note("stopping: letting requests in flight end (Ctrl-C again to quit)")
                continue
            results.extend(f.result() for f in done if not f.cancelled())
            if transfer.halt is not None:
                pending = {f for f in pending if not f.cancel()}
    finally:
        pool.shutdown(wait=not interrupted or not pending, cancel_futures=True)
        restore()
    not_started = len(files) - len(results)
    summary = Summary(
        results, time.monotonic() - started, interrupted, not_started, halt=transfer.halt
    )
    reporter.end(summary)
    return summary


def _quit_now() -> NoReturn:
    """A second Ctrl-C: leave at once, without waiting for requests in flight. The state is
    consistent (every write is one statement); worker threads would hold a normal exit."""
    sys.stdout.flush()
    print("tuscam-upload: interrupted; run the same command again to resume", file=sys.stderr)
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)


def _sigterm_as_interrupt() -> Callable[[], object]:
    """Treat SIGTERM like Ctrl-C while uploading (only possible from the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, previous)


def dry_run(transfer: Transfer, files: list[LocalFile], *, as_json: bool) -> int:
    """List each file with its size and what the resume state says; contact no server."""
    total = 0
    for file in files:
        p = plan(transfer, file)
        total += file.size
        if as_json:
            print(
                json.dumps(
                    {
                        "path": str(file.path),
                        "bytes": file.size,
                        "sha256": p.sha256,
                        "state": p.state,
                        "upload_url": p.upload_url,
                        **p.extra,
                    }
                )
            )
        else:
            url = f"  {p.upload_url}" if p.upload_url else ""
            print(f"{format_size(file.size):>11}  {p.state:<32} {file.path}{url}")
    if not as_json:
        print(f"{len(files)} files, {format_size(total)} (dry run: nothing was sent)")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
