"""An HTTP/1.1 proxy on 127.0.0.1 that cuts chosen PATCH requests mid-body, for browser tests.

Every request gets a connection of its own: the proxy forwards it with `Connection: close` and
answers with `Connection: close`, so Chromium never reuses a socket. (Chromium silently re-sends
a request that dies on a reused keep-alive connection; the page would never see the cut.)

    with HttpFaultProxy(server_port, cut_patches={1, 2, 4}, cut_after=300_000) as proxy:
        page.goto(proxy.url + "/...")
        assert proxy.cuts == 3
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterable
from types import TracebackType

_BLOCK = 65536
_HOP_BY_HOP = {b"connection", b"keep-alive", b"proxy-connection", b"te", b"upgrade"}
_MAX_HEAD = 65536
_TCP_ESTABLISHED = 1  # tcpi_state in struct tcp_info (linux/tcp.h)


class ProxyError(Exception):
    pass


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """Read up to the blank line; return (head, bytes already read past it)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(_BLOCK)
        if not chunk:
            if data:
                raise ProxyError("connection closed inside a message head")
            return b"", b""
        data += chunk
        if len(data) > _MAX_HEAD:
            raise ProxyError("message head too long")
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _rewrite(head: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """Drop hop-by-hop headers and ask for `Connection: close`; return (first line, headers)."""
    first, *lines = head.split(b"\r\n")
    headers = []
    for line in lines:
        name, _, value = line.partition(b":")
        if name.strip().lower() not in _HOP_BY_HOP:
            headers.append((name.strip(), value.strip()))
    headers.append((b"Connection", b"close"))
    return first, headers


def _serialize(first: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    return first + b"\r\n" + b"".join(n + b": " + v + b"\r\n" for n, v in headers) + b"\r\n"


def _content_length(headers: list[tuple[bytes, bytes]]) -> int:
    for name, value in headers:
        if name.lower() == b"content-length":
            return int(value)
    for name, value in headers:
        if name.lower() == b"transfer-encoding" and value.lower() != b"identity":
            raise ProxyError("chunked request bodies are not supported by this test proxy")
    return 0


def _established(sock: socket.socket) -> bool:
    """The TCP state of the connection is still ESTABLISHED (the peer has not closed it); read
    from TCP_INFO, so unread data stays unread."""
    try:
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] == _TCP_ESTABLISHED
    except OSError:
        return False


class HttpFaultProxy:
    """Forwards to 127.0.0.1:`target_port`; PATCH number n (1-based) in `cut_patches` is cut after
    `cut_after` body bytes: both sockets are closed, no response reaches the browser. PATCH number
    n in `stall_patches` stops being forwarded after `cut_after` bytes: the connection stays open
    and silent (a half-open phone connection) until the browser gives up on it; then the server's
    side is closed too, as a real network's timeout would."""

    def __init__(
        self,
        target_port: int,
        *,
        cut_patches: Iterable[int] = (),
        stall_patches: Iterable[int] = (),
        cut_after: int = 300_000,
        port: int = 0,
    ) -> None:
        self.target_port = target_port
        self.cut_patches = set(cut_patches)
        self.stall_patches = set(stall_patches)
        self.stalls = 0
        self.cut_after = cut_after
        self.lock = threading.Lock()
        self.requests: list[str] = []  # "METHOD path status" (status "cut" when cut)
        self.patches = 0
        self.cuts = 0
        self.body_bytes_up = 0
        # A fixed port lets a test stop the proxy (the server "goes away") and start another on the
        # same origin, as a server coming back.
        self._listener = socket.create_server(("127.0.0.1", port))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept_loop, name="proxy-accept")

    def __enter__(self) -> HttpFaultProxy:
        self._acceptor.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._acceptor.join(timeout=5)
        self._listener.close()
        with self.lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()

    def _track(self, *socks: socket.socket) -> None:
        with self.lock:
            self._open.update(socks)

    def _serve(self, client: socket.socket) -> None:
        upstream = None
        try:
            client.settimeout(60)
            head, rest = _read_head(client)
            if not head:
                return
            first, headers = _rewrite(head)
            method, path = first.split(b" ")[:2]
            length = _content_length(headers)
            cut = stall = False
            if method == b"PATCH":
                with self.lock:
                    self.patches += 1
                    cut = self.patches in self.cut_patches
                    stall = self.patches in self.stall_patches
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=60)
            self._track(client, upstream)
            upstream.sendall(_serialize(first, headers))
            limit = min(length, self.cut_after) if cut or stall else length
            self._forward_body(client, upstream, rest, limit)
            if stall:
                with self.lock:
                    self.stalls += 1
                    self.requests.append(f"{method.decode()} {path.decode()} stalled")
                self._hold(client)
                return  # the finally closes both sides
            if cut:
                with self.lock:
                    self.cuts += 1
                    self.requests.append(f"{method.decode()} {path.decode()} cut")
                return  # the finally closes both sides mid-body
            self._relay_response(upstream, client, f"{method.decode()} {path.decode()}")
        except (OSError, ProxyError):
            pass
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.close()
                    with self.lock:
                        self._open.discard(sock)

    def _forward_body(
        self, client: socket.socket, upstream: socket.socket, rest: bytes, limit: int
    ) -> None:
        sent = 0
        pending = rest
        while sent < limit:
            if not pending:
                pending = client.recv(_BLOCK)
                if not pending:
                    raise ProxyError("client closed inside the body")
            piece = pending[: limit - sent]
            upstream.sendall(piece)
            sent += len(piece)
            pending = pending[len(piece) :]
            with self.lock:
                self.body_bytes_up += len(piece)

    def _hold(self, client: socket.socket) -> None:
        """Read nothing more (the browser's send buffer stays full) until the browser closes."""
        while not self._stop.is_set() and _established(client):
            self._stop.wait(0.25)

    def _relay_response(self, upstream: socket.socket, client: socket.socket, what: str) -> None:
        head, rest = _read_head(upstream)
        if not head:
            raise ProxyError("no response from the server")
        first, headers = _rewrite(head)
        with self.lock:
            status = first.split(b" ")[1].decode()
            self.requests.append(f"{what} {status}")
        client.sendall(_serialize(first, headers) + rest)
        # The server was asked to close: its response ends where the stream ends.
        while chunk := upstream.recv(_BLOCK):
            client.sendall(chunk)
