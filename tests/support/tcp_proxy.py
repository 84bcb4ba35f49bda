"""A small threaded TCP proxy for fault tests, like a one-toxic Toxiproxy.

Put it between one service and RabbitMQ (or any loopback server) and ``disable()`` it to make
the server unreachable for that service alone while everything else keeps working.
"""

from __future__ import annotations

import contextlib
import ipaddress
import selectors
import socket
import struct
import threading
from types import TracebackType

_CHUNK = 64 * 1024
_CONNECT_TIMEOUT = 5.0
_JOIN_TIMEOUT = 5.0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _reset(sock: socket.socket) -> None:
    """Close ``sock`` with a TCP RST, the way a dropped network link looks to the peer."""
    with contextlib.suppress(OSError):
        # l_onoff=1, l_linger=0: close() discards unsent data and sends RST instead of FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()


class _Link:
    """One proxied connection: a client socket, its upstream socket and the pump thread."""

    def __init__(self, proxy: TcpProxy, client: socket.socket) -> None:
        self._proxy = proxy
        self.client = client
        self.upstream: socket.socket | None = None
        # A socketpair wakes the pump's select() when another thread closes the link; closing
        # a socket another thread is selecting on does not reliably wake it.
        self._wake_r, self._wake_w = socket.socketpair()
        self._closing = threading.Event()
        self.thread = threading.Thread(target=self._run, name="tcp-proxy-link", daemon=True)

    def close(self) -> None:
        """Ask the pump thread to reset both sides and finish."""
        self._closing.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _run(self) -> None:
        try:
            self._pump()
        finally:
            # A cut link resets both sides; an ordinary close is passed on as a plain close so
            # the last bytes already forwarded are not discarded by the RST.
            end = _reset if self._closing.is_set() else _close
            end(self.client)
            if self.upstream is not None:
                end(self.upstream)
            self._wake_r.close()
            self._wake_w.close()
            self._proxy._forget(self)

    def _pump(self) -> None:
        try:
            self.upstream = socket.create_connection(
                (self._proxy.target_host, self._proxy.target_port), timeout=_CONNECT_TIMEOUT
            )
        except OSError:
            return  # target down: the client sees its connection closed at once
        self.upstream.settimeout(None)
        peer = {self.client: self.upstream, self.upstream: self.client}
        with selectors.DefaultSelector() as selector:
            selector.register(self.client, selectors.EVENT_READ)
            selector.register(self.upstream, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._closing.is_set():
                for key, _events in selector.select():
                    if key.fileobj is self._wake_r:
                        return
                    source = key.fileobj
                    assert isinstance(source, socket.socket)
                    try:
                        data = source.recv(_CHUNK)
                        if not data:
                            return  # either side closing ends the whole link
                        peer[source].sendall(data)
                    except OSError:
                        return


class TcpProxy:
    """Forward TCP connections from a loopback port to ``target_host:target_port``.

    ``disable()`` resets every open connection and resets new ones as soon as they are
    accepted (the port stays bound, so clients see "connection reset", not a hang);
    ``enable()`` forwards again.
    """

    def __init__(self, target_host: str, target_port: int, listen_port: int = 0) -> None:
        if not _is_loopback(target_host):
            raise ValueError(f"TcpProxy only targets loopback addresses, not {target_host!r}")
        self.target_host = target_host
        self.target_port = target_port
        self.listen_host = "127.0.0.1"
        self.port = listen_port
        self._enabled = True
        self._lock = threading.Lock()
        self._links: set[_Link] = set()
        self._total = 0
        self._listener: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Bind the listening port (a free one if 0) and start accepting."""
        if self._listener is not None:
            raise RuntimeError("TcpProxy is already running")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.listen_host, self.port))
            listener.listen(64)
        except OSError:
            listener.close()
            raise
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._wake_r, self._wake_w = socket.socketpair()
        self._accept_thread = threading.Thread(
            target=self._accept_loop,
            args=(listener, self._wake_r),
            name=f"tcp-proxy-{self.port}",
            daemon=True,
        )
        self._accept_thread.start()

    def stop(self) -> None:
        """Stop accepting, reset every open connection and wait for the threads to end."""
        listener, self._listener = self._listener, None
        if listener is None:
            return
        assert self._wake_w is not None and self._wake_r is not None
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._accept_thread is not None:
            self._accept_thread.join(_JOIN_TIMEOUT)
            self._accept_thread = None
        listener.close()
        self._wake_r.close()
        self._wake_w.close()
        self._wake_r = self._wake_w = None
        for link in self._close_links():
            link.thread.join(_JOIN_TIMEOUT)

    def __enter__(self) -> TcpProxy:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- faults ----------------------------------------------------------------------------

    def disable(self) -> None:
        """Cut the link: reset open connections and every new one until ``enable()``."""
        with self._lock:
            self._enabled = False
        for link in self._close_links():
            link.thread.join(_JOIN_TIMEOUT)

    def enable(self) -> None:
        """Forward new connections again."""
        with self._lock:
            self._enabled = True

    @property
    def enabled(self) -> bool:
        """Whether new connections are forwarded."""
        with self._lock:
            return self._enabled

    @property
    def active_connections(self) -> int:
        """How many connections are being forwarded right now."""
        with self._lock:
            return len(self._links)

    @property
    def total_connections(self) -> int:
        """How many connections were forwarded since start (reconnects count again)."""
        with self._lock:
            return self._total

    # -- internals -------------------------------------------------------------------------

    def _close_links(self) -> list[_Link]:
        with self._lock:
            links = list(self._links)
        for link in links:
            link.close()
        return links

    def _forget(self, link: _Link) -> None:
        with self._lock:
            self._links.discard(link)

    def _accept_loop(self, listener: socket.socket, wake: socket.socket) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(listener, selectors.EVENT_READ)
            selector.register(wake, selectors.EVENT_READ)
            while True:
                for key, _events in selector.select():
                    if key.fileobj is wake:
                        return
                    try:
                        client, _addr = listener.accept()
                    except OSError:
                        continue
                    with self._lock:
                        if not self._enabled:
                            link = None
                        else:
                            link = _Link(self, client)
                            self._links.add(link)
                            self._total += 1
                    if link is None:
                        _reset(client)
                    else:
                        link.thread.start()
