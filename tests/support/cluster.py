"""Several tuscam nodes on one machine, as a deployment on several machines would run: one
PostgreSQL, one object store (SeaweedFS's S3 gateway), N gunicorn nodes and nginx round robin.

The nodes share TUSCAM_SECRET_KEY, TUSCAM_DATABASE_URL and TUSCAM_STORAGE_URL and lock in
PostgreSQL. `storage="shared-dir"` runs them on one local data folder instead of S3 (the locks
still in PostgreSQL). Used by tests/cluster and by `make cluster` (scripts/cluster.py)."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import requests

from app.cli import upgrade_database
from tests.support.nginx import Nginx, start_nginx
from tests.support.seaweedfs import SeaweedFS
from tests.support.server import ApiSession, LiveServer, free_ports, start_live_server

Storage = Literal["s3", "shared-dir"]
DEFAULT_STORAGE: Storage = "s3"


@dataclass
class Node:
    """One gunicorn node: its folder, port and, while it runs, its server."""

    index: int
    base: Path
    port: int
    server: LiveServer | None = None
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    @property
    def upstream(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.upstream}"


@dataclass
class Cluster:
    nodes: list[Node]
    nginx: Nginx
    database_url: str
    env: dict[str, str]  # what every node shares
    seaweedfs: SeaweedFS | None
    workers: int
    threads: int

    @property
    def url(self) -> str:
        return self.nginx.url

    def node_of(self, response: requests.Response) -> int:
        """Which node answered a request sent through nginx (its X-Upstream header)."""
        upstream = response.headers.get("X-Upstream", "")
        for node in self.nodes:
            if node.upstream == upstream:
                return node.index
        raise AssertionError(f"no node answers at {upstream!r}")

    def server(self, index: int = 0) -> LiveServer:
        """A running node's server (for its helpers: users, tokens, the database)."""
        for node in self.nodes[index:] + self.nodes[:index]:
            if node.server is not None:
                return node.server
        raise RuntimeError("no node is running")

    def api(self, token: str | None = None) -> ApiSession:
        """Requests through nginx."""
        return ApiSession(self.url, token)

    def start_node(self, index: int) -> None:
        node = self.nodes[index]
        if node.server is not None:
            return
        node.stack = contextlib.ExitStack()
        node.server = node.stack.enter_context(
            start_live_server(
                node.base,
                workers=self.workers,
                threads=self.threads,
                env=self.env,
                database_url=self.database_url,
                port=node.port,
                migrate=False,  # start_cluster did
            )
        )

    def kill_node(self, index: int) -> None:
        """SIGKILL a node's master and workers at once, as a machine dying would."""
        node = self.nodes[index]
        if node.server is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.server.proc.pid, signal.SIGKILL)
        node.server.proc.wait()
        node.stack.close()
        node.server = None


@contextlib.contextmanager
def start_cluster(
    base: Path,
    database_url: str,
    *,
    seaweedfs: SeaweedFS | None = None,
    bucket: str | None = None,
    storage: Storage = DEFAULT_STORAGE,
    nodes: int = 3,
    workers: int = 2,
    threads: int = 4,
    host: str = "127.0.0.1",
    port: int | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[Cluster]:
    """Start the nodes on an existing database (and store), then nginx in front of them."""
    env = {
        "TUSCAM_SECRET_KEY": secrets.token_hex(32),
        "TUSCAM_DATABASE_URL": database_url,
        "TUSCAM_LOCKER": "postgres",
        "TUSCAM_PROXY_FIX": "1",  # behind nginx: Location headers name nginx's address
        **(env or {}),
    }
    if storage == "s3":
        if seaweedfs is None or bucket is None:
            raise ValueError("S3 storage needs a SeaweedFS and a bucket")
        env.update(seaweedfs.env())
        env["TUSCAM_STORAGE_URL"] = f"s3://{bucket}/{secrets.token_hex(4)}"
    else:
        shared = base / "shared-data"
        shared.mkdir(parents=True, exist_ok=True)
        env["TUSCAM_DATA_DIR"] = str(shared)
    members = [Node(i, base / f"node{i}", port) for i, port in enumerate(free_ports(nodes))]
    cluster: Cluster | None = None
    try:
        cluster = Cluster(
            nodes=members,
            nginx=None,  # type: ignore[arg-type]  # started once the nodes answer
            database_url=database_url,
            env=env,
            seaweedfs=seaweedfs,
            workers=workers,
            threads=threads,
        )
        upgrade_database(database_url)  # once: migrations running on three nodes would collide
        with ThreadPoolExecutor(len(members)) as pool:  # each waits for its workers: at once
            for started in [pool.submit(cluster.start_node, n.index) for n in members]:
                started.result()
        cluster.nginx = start_nginx([n.upstream for n in members], host=host, port=port)
        yield cluster
    finally:
        if cluster is not None and cluster.nginx is not None:
            cluster.nginx.stop()
        for node in members:  # all at once: each takes a few seconds to finish its requests
            if node.server is not None and node.server.proc.poll() is None:
                node.server.proc.send_signal(signal.SIGTERM)
        for node in members:
            node.stack.close()
            node.server = None
