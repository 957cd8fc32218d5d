"""`python -m bench.peers NAME [FOLDER]`: start one benchmark server in the foreground (for a
manual look, a profiler, or another load generator); Ctrl-C stops it."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from bench.peers import DESCRIPTIONS, SERVERS, start


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in SERVERS:
        print(f"usage: python -m bench.peers {{{','.join(SERVERS)}}} [FOLDER]", file=sys.stderr)
        return 2
    folder = Path(argv[1]) if len(argv) > 1 else Path(tempfile.mkdtemp(prefix="bench-peer-"))
    with start(argv[0], folder) as server:
        print(f"{DESCRIPTIONS[server.name]}\n  url: {server.url}\n  files: {server.files_dir}")
        print(f"  workers: {server.worker_pids()}")
        for name, value in server.headers.items():
            print(f"  header {name}: {value}")
        for name, value in server.metadata.items():
            print(f"  metadata {name}: {value}")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
