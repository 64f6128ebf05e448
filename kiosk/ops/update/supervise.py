"""A small supervisor of real processes, systemd's part in the tests (and on a bench).

    python -m kiosk.ops.update.supervise --socket S [--watchdog-s W] [--start-timeout-s T]
        [--restart-s R] -- COMMAND...

It runs COMMAND as ``Type=notify`` with ``Restart=always``: NOTIFY_SOCKET and
WATCHDOG_USEC are set; the process is active after READY=1; one that does not become
ready within the start timeout, or stops pinging WATCHDOG=1 for W seconds, is killed
(SIGABRT, then SIGKILL: its whole process group) and started again after R seconds, like
one that exits. COMMAND is resolved at each start, so a switched ``current`` symlink
takes effect at the next (re)start. On the socket, one JSON line per request:
``{"op": "status"|"restart"|"stop"|"start"|"quit"}`` → ``{"active", "pid", "starts"}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


class Unit:
    def __init__(self, argv: list[str], notify_path: str, *, watchdog_s: float,
                 start_timeout_s: float, restart_s: float, stop_timeout_s: float = 10.0) -> None:
        self.argv, self.notify_path = argv, notify_path
        self.watchdog_s, self.start_timeout_s = watchdog_s, start_timeout_s
        self.restart_s, self.stop_timeout_s = restart_s, stop_timeout_s
        self.child: subprocess.Popen | None = None
        self.ready = False
        self.wanted = True
        self.starts = 0
        self.started_at = self.last_ping = 0.0
        self.restart_at = 0.0

    def start(self) -> None:
        env = {**os.environ, "NOTIFY_SOCKET": self.notify_path,
               "WATCHDOG_USEC": str(int(self.watchdog_s * 1e6))}
        self.ready = False
        self.starts += 1
        self.started_at = self.last_ping = time.monotonic()
        try:
            self.child = subprocess.Popen(self.argv, env=env, start_new_session=True)
        except OSError as error:  # e.g. current points nowhere: like a process that exits
            print(f"supervise: cannot start {self.argv[0]}: {error}", file=sys.stderr)
            self.child = None
            self.restart_at = time.monotonic() + self.restart_s

    def stop(self) -> None:
        self.wanted = False
        self._end(signal.SIGTERM, self.stop_timeout_s)

    def _end(self, first: int, grace: float) -> None:
        child, self.child, self.ready = self.child, None, False
        if child is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, first)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)  # the whole group: nothing of it stays
        child.wait()
        self.restart_at = time.monotonic() + self.restart_s

    def on_notify(self, message: str) -> None:
        lines = message.splitlines()
        if "READY=1" in lines:
            self.ready = True
        if "WATCHDOG=1" in lines or "READY=1" in lines:
            self.last_ping = time.monotonic()

    def tick(self) -> None:
        now = time.monotonic()
        if self.child is not None and self.child.poll() is not None:
            self.child, self.ready = None, False
            self.restart_at = now + self.restart_s
        if self.child is None:
            if self.wanted and now >= self.restart_at:
                self.start()
            return
        late = now - self.started_at > self.start_timeout_s
        starved = now - self.last_ping > self.watchdog_s
        if (late and not self.ready) or (starved and self.ready):
            self._end(signal.SIGABRT, 1.0)

    def status(self) -> dict:
        pid = self.child.pid if self.child else None
        return {"active": bool(self.child and self.ready), "pid": pid, "starts": self.starts}


def serve(unit: Unit, control: socket.socket, notify: socket.socket) -> None:
    unit.start()
    while True:
        readable, _, _ = select.select([control, notify], [], [], 0.05)
        if notify in readable:
            unit.on_notify(notify.recv(4096).decode(errors="replace"))
        if control in readable:
            conn, _ = control.accept()
            with conn:
                if not _answer(unit, conn):
                    return
        unit.tick()


def _answer(unit: Unit, conn: socket.socket) -> bool:
    conn.settimeout(5)
    try:
        op = json.loads(conn.makefile("rb").readline()).get("op")
    except (OSError, ValueError, AttributeError):
        return True
    if op == "restart":
        unit._end(signal.SIGTERM, unit.stop_timeout_s)
        unit.wanted = True
        unit.start()
    elif op == "stop":
        unit.stop()
    elif op == "start":
        unit.wanted = True
        if unit.child is None:
            unit.start()
    elif op == "quit":
        unit.stop()
    with contextlib.suppress(OSError):
        conn.sendall(json.dumps(unit.status()).encode() + b"\n")
    return op != "quit"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kiosk.ops.update.supervise")
    parser.add_argument("--socket", required=True)
    parser.add_argument("--watchdog-s", type=float, default=30.0)
    parser.add_argument("--start-timeout-s", type=float, default=60.0)
    parser.add_argument("--restart-s", type=float, default=0.2)
    parser.add_argument("command", nargs="+")
    args = parser.parse_args(argv)
    path = Path(args.socket)
    notify_path = str(path.with_name(path.name + ".notify"))
    for stale in (path, Path(notify_path)):
        stale.unlink(missing_ok=True)
    control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    control.bind(str(path))
    control.listen(8)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    unit = Unit(args.command, notify_path, watchdog_s=args.watchdog_s,
                start_timeout_s=args.start_timeout_s, restart_s=args.restart_s)
    stop = lambda *_: (unit.stop(), sys.exit(0))  # noqa: E731
    signal.signal(signal.SIGTERM, stop)
    try:
        serve(unit, control, notify)
    finally:
        unit.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
