"""`make cluster`: tuscam as several machines would run it, on this one: PostgreSQL and SeaweedFS
in temporary folders, three gunicorn nodes, nginx round robin in front. Ctrl-C stops it all.

Everything it stores is temporary and removed on exit. Usage:
    .venv/bin/python scripts/cluster.py [--host 127.0.0.1] [--port 8000] [--nodes 3]
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.cluster import DEFAULT_STORAGE, start_cluster  # noqa: E402
from tests.support.postgres import start_postgres  # noqa: E402
from tests.support.seaweedfs import start_seaweedfs  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="nginx's address (HOST)")
    parser.add_argument("--port", type=int, default=8000, help="nginx's port (PORT)")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per node")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker")
    parser.add_argument(
        "--storage",
        choices=("s3", "shared-dir"),
        default=DEFAULT_STORAGE,
        help="uploads and captures in SeaweedFS over S3, or in one local folder",
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    # Ctrl-C even when started from a shell that ignores SIGINT for background jobs.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    with contextlib.ExitStack() as stack:
        try:
            say("starting PostgreSQL")
            postgres = start_postgres()
            stack.callback(postgres.stop)
            stack.callback(say, "stopping PostgreSQL")
            database_url = postgres.create_database("tuscam")
            store: dict[str, object] = {}
            if args.storage == "s3":
                say("starting SeaweedFS (S3)")
                weed = start_seaweedfs()
                stack.callback(weed.destroy)
                stack.callback(say, "stopping SeaweedFS (it can take half a minute)")
                store = {"seaweedfs": weed, "bucket": weed.create_bucket("tuscam")}
            base = Path(tempfile.mkdtemp(prefix="tuscam-cluster-"))
            stack.callback(shutil.rmtree, base, ignore_errors=True)
            say(f"starting {args.nodes} nodes and nginx")
            cluster = stack.enter_context(
                start_cluster(
                    base,
                    database_url,
                    storage=args.storage,
                    nodes=args.nodes,
                    workers=args.workers,
                    threads=args.threads,
                    host=args.host,
                    port=args.port,
                    **store,  # type: ignore[arg-type]
                )
            )
            password = secrets.token_urlsafe(12)
            cluster.server().create_user("admin", "admin", password)
        except KeyboardInterrupt:
            say("interrupted while starting; stopping what was started")
            return 130
        except Exception as exc:  # noqa: BLE001 - a newcomer needs the reason, not a traceback
            say(f"could not start the cluster: {exc}")
            return 1
        print(
            f"\ntuscam cluster on {cluster.url}/ (nginx, round robin over "
            f"{', '.join(n.url for n in cluster.nodes)})\n"
            f"  storage:    {describe_storage(cluster.env)}\n"
            f"  database:   {database_url}\n"
            f"  log in at {cluster.url}/auth/login as\n"
            f"    username: admin\n"
            f"    password: {password}\n"
            "  Responses carry X-Upstream: the node that answered.\n"
            "  Everything is temporary. Ctrl-C stops the cluster.\n",
            flush=True,
        )
        try:
            while True:
                time.sleep(1)
                for node in cluster.nodes:
                    if node.server is not None and node.server.proc.poll() is not None:
                        say(f"node {node.index} ({node.url}) exited; see {node.server.log_path}")
                        node.server = None
        except KeyboardInterrupt:
            say("stopping nginx and the nodes")
    say("stopped")
    return 0


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM (a supervisor, `kill`) stops as cleanly as Ctrl-C."""
    raise KeyboardInterrupt


def describe_storage(env: dict[str, str]) -> str:
    if "TUSCAM_STORAGE_URL" in env:
        return f"{env['TUSCAM_STORAGE_URL']} at {env.get('TUSCAM_S3_ENDPOINT_URL', '')}"
    return f"one folder for all nodes: {env['TUSCAM_DATA_DIR']}"


def say(message: str) -> None:
    print(f"cluster: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
