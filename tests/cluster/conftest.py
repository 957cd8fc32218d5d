"""A cluster for the tests in this folder: PostgreSQL, SeaweedFS, three gunicorn nodes and nginx
round robin in front (tests/support/cluster.py). Nodes a test killed are started again after it."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.support.cluster import DEFAULT_STORAGE, Cluster, start_cluster
from tests.support.nginx import nginx_available
from tests.support.postgres import PostgresServer
from tests.support.server import ApiSession
from tests.support.tus import TusClient

STORAGE = DEFAULT_STORAGE


@pytest.fixture(scope="module")
def cluster(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    postgres: PostgresServer,
) -> Iterator[Cluster]:
    if not nginx_available():
        pytest.skip("nginx is not installed: apt-get install nginx-light (scripts/system-deps.sh)")
    database_url = postgres.create_database("c_" + secrets.token_hex(6))
    store = {}
    if STORAGE == "s3":
        store = {
            "seaweedfs": request.getfixturevalue("seaweedfs"),
            "bucket": request.getfixturevalue("s3_bucket"),
        }
    with start_cluster(
        tmp_path_factory.mktemp("cluster"), database_url, storage=STORAGE, **store
    ) as cluster:
        yield cluster


@pytest.fixture(autouse=True)
def all_nodes_running(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "cluster" in request.fixturenames:
        cluster: Cluster = request.getfixturevalue("cluster")
        for node in cluster.nodes:
            cluster.start_node(node.index)


@pytest.fixture
def operator(cluster: Cluster) -> tuple[str, int]:
    """A new operator's token and a capture session of theirs."""
    server = cluster.server()
    _name, token = server.new_operator()
    _aid, sid = server.new_capture_session(token)
    return token, sid


def tus_via(cluster: Cluster, token: str, node: int | None = None) -> TusClient:
    """A tus client through nginx, or straight to one node."""
    return TusClient(cluster.url if node is None else cluster.nodes[node].url, token)


def api_via(cluster: Cluster, token: str) -> ApiSession:
    return cluster.api(token)
