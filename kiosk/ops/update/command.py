"""The station's side of the district's ``update`` command (the loop calls it on `StartUpdate`).

The command (mqtt.md's request/response, sent by ``kiosk district update``) carries
``{url, sha256, size, version, platform}``. ``accept`` checks the arguments and starts
the updater *outside* the station's unit — ``systemd-run --unit kiosk-update-VERSION``
— because the updater restarts that unit and must outlive it; the reply is immediate
(``ok`` with ``updating``, or ``ok: false`` with a precise ``error``). The outcome comes
later as an ``update`` event: the updater appends it to ``update-events.jsonl`` beside
the spool, and ``UpdateEvents.take`` hands the station each event once, to publish
through its outbox (at start, and on its periodic tick).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kiosk.contract.update import problem as update_problem
from kiosk.ops.update.updater import EVENTS_FILE

KIOSK = "/opt/kiosk/current/venv/bin/kiosk"
Launcher = Callable[[Sequence[str], str], None]  # (argv, version)


def systemd_run(argv: Sequence[str], version: str) -> None:
    """Start *argv* as a transient unit of its own (it survives the station's restart)."""
    subprocess.run(["systemd-run", "--quiet", "--collect", f"--unit=kiosk-update-{version}",
                    *argv], check=True, timeout=30, capture_output=True)


def accept(args: Any, *, config: str, launcher: Launcher = systemd_run,
           kiosk: str = KIOSK, busy: Callable[[], bool] = lambda: False) -> dict:
    """The reply to ``update``; starts the updater when the arguments are good."""
    problem = update_problem(args)
    if problem:
        return {"ok": False, "error": "bad-arguments", "detail": problem}
    if busy():
        return {"ok": False, "error": "busy", "detail": "an update is already running"}
    command = [kiosk, "update", "--config", config, "--sha256", args["sha256"],
               "--version", args["version"], args["url"]]
    try:
        launcher(command, args["version"])
    except (OSError, subprocess.SubprocessError) as error:
        return {"ok": False, "error": "cannot-start", "detail": str(error)[:300]}
    return {"ok": True, "detail": f"updating to {args['version']}"}


class UpdateEvents:
    """The update events the updater left for the station to publish.

    ``take()`` reads them; the station puts them in its outbox, commits, then calls
    ``done()``, which removes those from the file (a crash between the two publishes
    them twice, never loses one: the district keeps the last outcome per version).
    """

    def __init__(self, spool: str | os.PathLike[str]) -> None:
        self.path = Path(spool).parent / EVENTS_FILE
        self._taken = 0

    def take(self) -> list[dict]:
        try:
            lines = self.path.read_bytes().splitlines()
        except OSError:
            return []
        events = []
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line torn by power loss: atomic writes make this rare
            if isinstance(event, dict):
                events.append(event)
        self._taken = len(lines)
        return events

    def done(self) -> None:
        """The events taken are in the outbox (committed): remove them from the file."""
        try:
            lines = self.path.read_bytes().splitlines()
        except OSError:
            return
        rest = lines[self._taken:]
        temp = self.path.with_name(f".{self.path.name}.tmp")
        temp.write_bytes(b"".join(line + b"\n" for line in rest))
        os.replace(temp, self.path)
        self._taken = 0
