"""Talking to systemd: the sd_notify datagrams of a ``Type=notify`` service.

systemd gives the service a unix datagram socket in ``NOTIFY_SOCKET`` (a path,
or ``@name`` for an abstract socket) and, with ``WatchdogSec=``, the watchdog
period in ``WATCHDOG_USEC`` (for the process in ``WATCHDOG_PID`` when set).
The protocol is newline-separated ``KEY=value`` lines in one datagram; this
module is those few lines of socket code, so the package needs no binding.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

WATCHDOG = "WATCHDOG=1"
# What `systemctl status kiosk` shows after these states, unless the message says otherwise.
_STATUS_FOR = {"READY=1": "running", "STOPPING=1": "stopping"}


class Notifier:
    """The service's side of sd_notify; without ``NOTIFY_SOCKET`` every call does nothing.

    Wiring: ``notifier = Notifier.from_environment()``, then
    ``Station(config, notify=notifier.notify)``. The station calls
    ``notify("READY=1")`` once started, ``notify("WATCHDOG=1")`` after every loop
    step and ``notify("STOPPING=1")`` at shutdown; ``status(text)`` sets the line
    ``systemctl status`` shows. Watchdog pings are sent at most every half
    watchdog period (the loop steps far more often), and only from the thread
    that runs the loop: a hung loop sends none, and systemd restarts the service.
    """

    def __init__(self, address: str | None, *, watchdog_usec: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.address = _socket_address(address) if address else None
        self.watchdog_s = watchdog_usec / 1e6 if watchdog_usec else None
        self._clock = clock
        self._last_ping: float | None = None
        self._socket: socket.socket | None = None
        self._failed = False

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """A notifier for what systemd put in the environment (``os.environ`` by default)."""
        env = os.environ if environ is None else environ
        return cls(env.get("NOTIFY_SOCKET") or None, watchdog_usec=_watchdog_usec(env))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, message: str) -> bool:
        """Send *message* (``KEY=value`` lines); True if a datagram left."""
        if message == WATCHDOG:
            if not self._ping_due():
                return False
        elif message in _STATUS_FOR:
            message = f"{message}\nSTATUS={_STATUS_FOR[message]}"
        return self._send(message)

    def status(self, text: str) -> bool:
        """The one-line status ``systemctl status`` shows (newlines become spaces)."""
        return self._send("STATUS=" + " ".join(text.splitlines()))

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _ping_due(self) -> bool:
        if self.watchdog_s is None:
            return False  # no watchdog configured for this process: nothing to feed
        now = self._clock()
        if self._last_ping is not None and now - self._last_ping < self.watchdog_s / 2:
            return False
        self._last_ping = now
        return True

    def _send(self, message: str) -> bool:
        if self.address is None:
            return False
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._socket.sendto(message.encode(), self.address)
        except OSError as error:
            # Never let a vanished socket take the station down; say it once.
            if not self._failed:
                log.warning("cannot notify systemd at %r: %s", self.address, error)
                self._failed = True
            return False
        return True


def _socket_address(value: str) -> str | bytes:
    if value.startswith("@"):
        return b"\0" + value[1:].encode()  # Linux abstract namespace
    return value


def _watchdog_usec(env: Mapping[str, str]) -> int | None:
    """The watchdog period if it is meant for this process (sd_watchdog_enabled's rule)."""
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    return usec if usec > 0 else None
