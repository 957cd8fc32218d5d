"""A fault-injecting TCP proxy on 127.0.0.1 for tests: what a bad network does to an upload.

    with FaultProxy(live_server.port, cut_after=3_000_000) as proxy:
        url = f"http://127.0.0.1:{proxy.port}"   # talk to the server through the proxy
        ...
        assert proxy.bytes_up < 1.1 * size      # bytes forwarded client -> server

Faults, per client connection, all optional and changeable while running (plain attributes):
- `cut_after=N`: after N bytes client->server have been forwarded, close both sides (the
  request in flight is cut mid-body); `reset=True` closes with RST instead of FIN.
- `max_cuts=K`, `max_stalls=K`: apply the fault to the first K connections only.
- `stall_after=N`: after N bytes client->server, stop forwarding in both directions and keep
  the sockets open (a silent peer), until the proxy closes or `release_stalls()` is called.
- `throttle=B`: forward client->server at most B bytes per second.
- `cut_all()`: cut every open connection now.
- `refuse()` then `accept()`: the server gone, then back. `refuse()` stops listening (a new
  connection is refused, as by a host with nothing on the port) and cuts the open ones;
  `accept()` listens again on the same port.
Counters: `bytes_up`, `bytes_down`, `connections` (accepted), `cuts`, `stalls`.
Threads: one accept loop and two pumps per connection; `close()` stops and joins them all.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from types import TracebackType

_BLOCK = 65536
_POLL = 0.2  # seconds a pump waits on a socket before looking at the stop flags again


class _Link:
    """One client connection and its upstream connection."""

    def __init__(self, proxy: FaultProxy, client: socket.socket, server: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.server = server
        self.up = 0  # bytes client -> server on this link
        self.closed = threading.Event()
        self.stalled = threading.Event()
        self.released = threading.Event()
        self.lock = threading.Lock()
        self.pumps_done = 0

    def pump_done(self) -> None:
        """A direction ended; when both have, close the sockets."""
        with self.lock:
            self.pumps_done += 1
            both = self.pumps_done == 2
        if both:
            self.close()

    def close(self, *, reset: bool = False) -> None:
        with self.lock:
            if self.closed.is_set():
                return
            self.closed.set()
            for sock in (self.client, self.server):
                if reset:
                    # SO_LINGER with a zero timeout: close() sends RST, not FIN.
                    with contextlib.suppress(OSError):
                        sock.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                else:
                    # (A shutdown would send FIN first, and the peer would see a clean end.)
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()


class FaultProxy:
    """A TCP proxy from 127.0.0.1:`port` to `target_host`:`target_port` with injected faults."""

    def __init__(
        self,
        target_port: int,
        cut_after: int | None = None,
        *,
        reset: bool = False,
        max_cuts: int | None = None,
        stall_after: int | None = None,
        max_stalls: int | None = None,
        throttle: float | None = None,
        target_host: str = "127.0.0.1",
    ) -> None:
        self.target = (target_host, target_port)
        self.cut_after = cut_after
        self.reset = reset
        self.max_cuts = max_cuts
        self.stall_after = stall_after
        self.max_stalls = max_stalls
        self.throttle = throttle
        self.bytes_up = 0
        self.bytes_down = 0
        self.connections = 0
        self.cuts = 0
        self.stalls = 0
        self._lock = threading.Lock()
        self._links: list[_Link] = []
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = listener.getsockname()[1]
        self._listener: socket.socket | None = None
        self._listen(listener)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def reset_counters(self) -> None:
        with self._lock:
            self.bytes_up = self.bytes_down = self.connections = self.cuts = self.stalls = 0

    def cut_all(self) -> None:
        """Cut every open connection now (RST if `reset`)."""
        with self._lock:
            links = list(self._links)
        for link in links:
            link.close(reset=self.reset)

    def release_stalls(self) -> None:
        """Let stalled connections go on (faults stay configured for new bytes)."""
        with self._lock:
            links = list(self._links)
        for link in links:
            link.released.set()

    def refuse(self) -> None:
        """Stop listening and cut every open connection: connecting is refused until
        `accept()`."""
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            # shutdown() first: close() alone leaves the socket listening until the accept
            # loop's poll() lets go of it (Linux), and connections made meanwhile would pass.
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        self.cut_all()

    def accept(self) -> None:
        """Listen again on the same port after `refuse()`."""
        if self._listener is None:
            self._listen(socket.create_server(("127.0.0.1", self.port)))

    def close(self) -> None:
        self._stopping.set()
        self.refuse()
        for thread in list(self._threads):
            thread.join(timeout=5)

    # -- internals ---------------------------------------------------------------------------

    def _start(self, target: object, name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _listen(self, listener: socket.socket) -> None:
        listener.settimeout(_POLL)
        with self._lock:
            self._listener = listener
        self._start(self._accept_loop, "proxy-accept", listener)

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stopping.is_set():
            try:
                client, _addr = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            for sock in (client, server):
                sock.settimeout(_POLL)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            link = _Link(self, client, server)
            with self._lock:
                refused = self._listener is not listener  # refuse() ran meanwhile: cut it too
                if not refused:
                    self.connections += 1
                    self._links = [ln for ln in self._links if not ln.closed.is_set()]
                    self._links.append(link)
            if refused:
                link.close(reset=self.reset)
                return
            self._start(self._run_pump, "proxy-up", self._pump_up, link)
            self._start(self._run_pump, "proxy-down", self._pump_down, link)

    def _run_pump(self, pump: object, link: _Link) -> None:
        try:
            pump(link)  # type: ignore[operator]
        finally:
            link.pump_done()

    def _recv(self, link: _Link, sock: socket.socket) -> bytes | None:
        """Next bytes from `sock`; b"" at EOF; None when the link is (being) closed."""
        while not link.closed.is_set():
            if link.stalled.is_set() and not link.released.is_set():
                if self._stopping.wait(_POLL):
                    return None
                continue
            try:
                return sock.recv(_BLOCK)
            except TimeoutError:
                continue
            except OSError:
                return None
        return None

    def _pump_up(self, link: _Link) -> None:
        started = time.monotonic()
        sent = 0
        pending = b""  # bytes held back at a stall, sent once it is released
        while True:
            data, pending = pending or self._recv(link, link.client), b""
            if not data:
                self._half_close(link, link.server, data)
                return
            data, pending, fault = self._apply_faults(link, data)
            if data:
                if not self._send(link, link.server, data):
                    return
                link.up += len(data)
                sent += len(data)
                with self._lock:
                    self.bytes_up += len(data)
                if self.throttle:
                    ahead = sent / self.throttle - (time.monotonic() - started)
                    if ahead > 0 and self._stopping.wait(ahead):
                        return
            if fault == "cut":
                with self._lock:
                    self.cuts += 1
                link.close(reset=self.reset)
                return
            if fault == "stall":
                with self._lock:
                    self.stalls += 1
                link.stalled.set()
                while not (link.released.is_set() or link.closed.is_set()):
                    if self._stopping.wait(_POLL):
                        return

    def _apply_faults(self, link: _Link, data: bytes) -> tuple[bytes, bytes, str | None]:
        """Split `data` at the next fault boundary: (send now, hold back, fault after sending)."""
        cut, stall = self.cut_after, self.stall_after
        if cut is not None and link.up + len(data) >= cut:
            with self._lock:
                allowed = self.max_cuts is None or self.cuts < self.max_cuts
            if allowed:
                at = max(cut - link.up, 0)
                return data[:at], b"", "cut"
        if stall is not None and not link.stalled.is_set() and link.up + len(data) >= stall:
            with self._lock:
                allowed = self.max_stalls is None or self.stalls < self.max_stalls
            if allowed:
                at = max(stall - link.up, 0)
                return data[:at], data[at:], "stall"
        return data, b"", None

    def _pump_down(self, link: _Link) -> None:
        while True:
            data = self._recv(link, link.server)
            if not data:
                self._half_close(link, link.client, data)
                return
            if not self._send(link, link.client, data):
                return
            with self._lock:
                self.bytes_down += len(data)

    def _send(self, link: _Link, sock: socket.socket, data: bytes) -> bool:
        view = memoryview(data)
        while view and not link.closed.is_set():
            try:
                n = sock.send(view)
            except TimeoutError:
                continue
            except OSError:
                link.close()
                return False
            view = view[n:]
        return not link.closed.is_set()

    def _half_close(self, link: _Link, peer: socket.socket, data: bytes | None) -> None:
        if data is None:  # closed or failed: take the whole link down
            link.close()
            return
        # EOF from one side: pass it on, keep the other direction open until it ends too.
        try:
            peer.shutdown(socket.SHUT_WR)
        except OSError:
            link.close()
