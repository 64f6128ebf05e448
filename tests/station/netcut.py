"""A TCP relay between a client (the station) and a server (the broker) that can cut the line.

It stands for the uplink: the broker stays up while the path to it fails. One thread
and one selector carry every connection on loopback. Three ways to fail:

* ``reset()``: every current connection ends at once, both sides see a reset (RST), as
  when a NAT box or a 4G modem drops its state. New connections are accepted again.
* ``stall()``: bytes stop flowing both ways but no socket closes, as when a cable is
  pulled far away: only keepalives can tell. ``flow()`` lets them through again
  (what was sent meanwhile is lost, as it would be on a dead path).
* ``refuse()``: new connections are closed at once (until ``flow()``), as when the
  uplink is down for a while; combine with ``reset()`` for an outage.
* ``mute_client()``: what the client sends is swallowed while what the server sends
  still arrives (until ``flow()``): the client's PUBACKs are lost, as on a half-dead path.

Usage::

    with NetCut(broker.port) as cut:
        settings["mqtt"]["url"] = cut.url
        ...
        cut.reset()                  # the station reconnects through the relay
        assert cut.accepted >= 2
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import threading
from dataclasses import dataclass, field

CHUNK = 1 << 16


@dataclass
class _Pair:
    """One relayed connection: what each side still has to receive."""

    client: socket.socket
    server: socket.socket
    to_server: bytearray = field(default_factory=bytearray)
    to_client: bytearray = field(default_factory=bytearray)

    def peer(self, sock: socket.socket) -> socket.socket:
        return self.server if sock is self.client else self.client

    def outbox(self, sock: socket.socket) -> bytearray:
        """Bytes waiting to be written to *sock*."""
        return self.to_server if sock is self.server else self.to_client


class NetCut:
    """Relays 127.0.0.1:``port`` to 127.0.0.1:*target_port*; see the module docstring."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.port = int(self._listener.getsockname()[1])
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._pairs: dict[socket.socket, _Pair] = {}
        self._lock = threading.Lock()
        self._requests: list[tuple[str, threading.Event]] = []
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._stalled = False
        self._refusing = False
        self._client_muted = False
        self._stop = False
        self.accepted = 0
        self.resets = 0
        self._thread = threading.Thread(target=self._run, name="netcut", daemon=True)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._pairs) // 2

    def start(self) -> NetCut:
        self._thread.start()
        return self

    def close(self) -> None:
        self._ask("stop")
        self._thread.join(timeout=5)

    def __enter__(self) -> NetCut:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- faults (any thread) -------------------------------------------------------------

    def reset(self) -> None:
        """End every current connection with a reset on both sides."""
        self._ask("reset")

    def stall(self) -> None:
        """Stop carrying bytes without closing anything."""
        self._ask("stall")

    def refuse(self) -> None:
        """Close new connections at once."""
        self._ask("refuse")

    def mute_client(self) -> None:
        """Swallow what clients send; the server's bytes still reach them."""
        self._ask("mute-client")

    def flow(self) -> None:
        """Carry bytes and accept connections again."""
        self._ask("flow")

    def _ask(self, request: str) -> None:
        """Have the relay thread do *request*; returns once it is done."""
        done = threading.Event()
        with self._lock:
            self._requests.append((request, done))
        self._wake_w.send(b"!")
        if self._thread.is_alive():
            done.wait(5)

    # -- the relay thread ------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop:
            for key, mask in self._selector.select(timeout=0.5):
                sock = key.fileobj
                if sock is self._wake_r:
                    self._serve_requests()
                elif sock is self._listener:
                    self._accept()
                elif sock in self._pairs:
                    self._carry(sock, mask)  # type: ignore[arg-type]
        for sock in list(self._pairs):
            self._drop(sock, abort=False)
        self._selector.close()
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()

    def _serve_requests(self) -> None:
        with contextlib.suppress(BlockingIOError):
            self._wake_r.recv(4096)
        with self._lock:
            requests, self._requests = self._requests, []
        for request, done in requests:
            if request == "reset":
                self.resets += len(self._pairs) // 2
                for sock in list(self._pairs):
                    self._drop(sock, abort=True)
            elif request == "stall":
                self._stalled = True
            elif request == "refuse":
                self._refusing = True
            elif request == "mute-client":
                self._client_muted = True
            elif request == "flow":
                self._stalled = self._refusing = self._client_muted = False
            elif request == "stop":
                self._stop = True
            done.set()

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        if self._refusing:
            _abort(client)
            return
        try:
            server = socket.create_connection(self.target, timeout=2)
        except OSError:
            _abort(client)
            return
        pair = _Pair(client, server)
        for sock in (client, server):
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._pairs[sock] = pair
            self._selector.register(sock, selectors.EVENT_READ)
        self.accepted += 1

    def _carry(self, sock: socket.socket, mask: int) -> None:
        pair = self._pairs[sock]
        if mask & selectors.EVENT_READ:
            try:
                data = sock.recv(CHUNK)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                data = b""
            if data == b"":
                self._drop(sock, abort=False)
                return
            muted = self._client_muted and sock is pair.client
            if data and not self._stalled and not muted:  # a stalled line swallows it
                pair.outbox(pair.peer(sock)).extend(data)
                self._flush(pair.peer(sock), pair)
        if mask & selectors.EVENT_WRITE and sock in self._pairs:
            self._flush(sock, pair)

    def _flush(self, sock: socket.socket, pair: _Pair) -> None:
        pending = pair.outbox(sock)
        try:
            sent = sock.send(pending) if pending else 0
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._drop(sock, abort=False)
            return
        del pending[:sent]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if pending else 0)
        self._selector.modify(sock, events)

    def _drop(self, sock: socket.socket, *, abort: bool) -> None:
        pair = self._pairs.get(sock)
        if pair is None:
            return
        if not abort:  # a polite close: what the peer sent last still gets there
            for end in (pair.client, pair.server):
                with contextlib.suppress(OSError):
                    end.send(pair.outbox(end))
        for end in (pair.client, pair.server):
            with self._lock:
                self._pairs.pop(end, None)
            self._selector.unregister(end)
            if abort:
                _abort(end)
            else:
                end.close()


def _abort(sock: socket.socket) -> None:
    """Close with a reset (SO_LINGER 0), not a polite FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
