"""The seam between the updater and what runs the station: systemd, or a small local supervisor.

``SystemdSupervisor`` calls ``systemctl`` (restart without waiting, ``show`` for the main
PID). ``LocalSupervisor`` speaks to ``kiosk.ops.update.supervise``, a process that runs
the unit's command the way systemd does (sd_notify READY and WATCHDOG, restart always)
and answers on a unix socket: the tests' systemd, made of real processes.
"""

from __future__ import annotations

import json
import socket
import subprocess
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class UnitStatus:
    active: bool          # running and ready (systemd: ActiveState=active for Type=notify)
    pid: int | None       # its main process
    starts: int           # processes started so far (a restart or a crash adds one)


class Supervisor(Protocol):
    def restart(self) -> None: ...
    def status(self) -> UnitStatus: ...


class SupervisorError(Exception):
    """The supervisor could not be asked (systemctl failed, the socket is gone)."""


class SystemdSupervisor:
    def __init__(self, unit: str = "kiosk.service") -> None:
        self.unit = unit

    def restart(self) -> None:
        self._systemctl("restart", "--no-block", self.unit)

    def status(self) -> UnitStatus:
        out = self._systemctl("show", self.unit, "-p", "ActiveState,MainPID,NRestarts")
        fields = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        pid = int(fields.get("MainPID") or 0)
        return UnitStatus(fields.get("ActiveState") == "active", pid or None,
                          int(fields.get("NRestarts") or 0))

    @staticmethod
    def _systemctl(*args: str) -> str:
        try:
            done = subprocess.run(["systemctl", *args], capture_output=True, text=True,
                                  timeout=60, check=True)
        except (OSError, subprocess.SubprocessError) as error:
            raise SupervisorError(f"systemctl {' '.join(args)}: {error}") from None
        return done.stdout


class LocalSupervisor:
    """Client of ``python -m kiosk.ops.update.supervise`` listening on *path*."""

    def __init__(self, path: str) -> None:
        self.path = path

    def restart(self) -> None:
        self.ask("restart")

    def status(self) -> UnitStatus:
        reply = self.ask("status")
        return UnitStatus(reply["active"], reply["pid"], reply["starts"])

    def ask(self, op: str, timeout: float = 60.0) -> dict:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(self.path)
                sock.sendall(json.dumps({"op": op}).encode() + b"\n")
                data = b""
                while not data.endswith(b"\n"):
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    data += chunk
        except OSError as error:
            raise SupervisorError(f"supervisor at {self.path}: {error}") from None
        try:
            return json.loads(data)
        except ValueError:
            raise SupervisorError(f"supervisor at {self.path}: no answer to {op}") from None


def from_spec(spec: str) -> Supervisor:
    """``systemd:UNIT`` (the default, ``systemd:kiosk.service``) or ``local:SOCKET``."""
    kind, _, arg = spec.partition(":")
    if kind == "systemd":
        return SystemdSupervisor(arg or "kiosk.service")
    if kind == "local" and arg:
        return LocalSupervisor(arg)
    raise ValueError(f"--supervisor {spec!r}: use systemd:UNIT or local:SOCKET")
