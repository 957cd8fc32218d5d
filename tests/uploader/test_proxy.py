"""The fault-injecting proxy (tests/support/proxy.py) does what other suites rely on."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.support.proxy import FaultProxy


@pytest.fixture
def sink() -> Iterator[tuple[int, list[int]]]:
    """A TCP server that reads everything and answers b"ok" after 1000 bytes."""
    received: list[int] = []
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                total = 0
                try:
                    while chunk := conn.recv(65536):
                        total += len(chunk)
                        if total >= 1000 and total - len(chunk) < 1000:
                            conn.sendall(b"ok")
                except ConnectionResetError:
                    total = -total  # a reset, told apart from a clean end
                received.append(total)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], received
    stop.set()
    thread.join()
    listener.close()


def settled(received: list[int], count: int) -> list[int]:
    """The sink's list once it has `count` entries (it records a connection when it ends)."""
    deadline = time.monotonic() + 5
    while len(received) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return received


def _send(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := s.recv(100):
            reply += chunk
        return reply


def test_bytes_pass_both_ways_and_are_counted(sink: tuple[int, list[int]]) -> None:
    port, received = sink
    with FaultProxy(port) as proxy:
        assert _send(proxy.port, b"x" * 300_000) == b"ok"
        assert (proxy.bytes_up, proxy.bytes_down, proxy.connections) == (300_000, 2, 1)
    assert received == [300_000]


def test_a_connection_is_cut_after_n_bytes_up(sink: tuple[int, list[int]]) -> None:
    port, received = sink
    with FaultProxy(port, cut_after=50_000) as proxy:
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", proxy.port)) as s:
            for _ in range(100):
                s.sendall(b"y" * 10_000)
                time.sleep(0.001)
        assert proxy.bytes_up == 50_000 and proxy.cuts == 1
    assert settled(received, 1) == [50_000]


def test_reset_closes_with_rst(sink: tuple[int, list[int]]) -> None:
    port, received = sink
    with FaultProxy(port, cut_after=10, reset=True) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
            s.sendall(b"z" * 100)
            with pytest.raises(ConnectionResetError):
                for _ in range(50):
                    s.recv(10) or time.sleep(0.05)
                    s.sendall(b"z")
    # The server saw 10 bytes (and a reset if it was reading then).
    assert settled(received, 1) in ([-10], [10])


def test_max_cuts_lets_later_connections_through(sink: tuple[int, list[int]]) -> None:
    port, received = sink
    with FaultProxy(port, cut_after=500, max_cuts=1) as proxy:
        try:
            reply = _send(proxy.port, b"a" * 200_000)
        except OSError:
            reply = None
        assert reply != b"ok"
        assert _send(proxy.port, b"b" * 2000) == b"ok"
        assert proxy.cuts == 1 and proxy.connections == 2
    assert settled(received, 2) == [500, 2000]


def test_a_stalled_connection_goes_silent_until_released(sink: tuple[int, list[int]]) -> None:
    port, received = sink
    with FaultProxy(port, stall_after=500) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=0.5) as s:
            s.sendall(b"c" * 2000)
            with pytest.raises(TimeoutError):
                s.recv(10)
            assert proxy.stalls == 1
            time.sleep(0.2)  # nothing more passes, however long we wait
            assert proxy.bytes_up == 500
            proxy.release_stalls()
            s.settimeout(5)
            assert s.recv(10) == b"ok"
        # The pump counts bytes after passing them on, so the reply can come first.
        deadline = time.monotonic() + 5
        while proxy.bytes_up < 2000 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proxy.bytes_up == 2000
    assert settled(received, 1) == [2000]


def test_throttle_limits_the_rate_up(sink: tuple[int, list[int]]) -> None:
    port, _ = sink
    with FaultProxy(port, throttle=1_000_000) as proxy:
        started = time.monotonic()
        assert _send(proxy.port, b"d" * 400_000) == b"ok"
        assert time.monotonic() - started >= 0.3
        assert proxy.bytes_up == 400_000


def test_refuse_then_accept_is_a_server_gone_and_back_on_the_same_port(
    sink: tuple[int, list[int]],
) -> None:
    port, received = sink
    with FaultProxy(port) as proxy:
        held = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        held.sendall(b"e" * 10)
        deadline = time.monotonic() + 5
        while proxy.bytes_up < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
        proxy.refuse()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        assert held.recv(10) == b""  # the open connection was cut
        held.close()
        proxy.accept()
        assert _send(proxy.port, b"f" * 1500) == b"ok"
        assert proxy.connections == 2
    assert settled(received, 2) == [10, 1500]
