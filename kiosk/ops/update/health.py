"""Health of a release: the file a running station writes, and the updater's judgement of it.

A running station (``kiosk run``) writes ``health.json`` beside its spool (the unit may
write only there) at least once a second while its loop runs: the loop thread's sd_notify
calls pass through ``HealthReporter``, which adds what the loop can see::

    {"release", "version", "pid", "ready": READY=1 sent (spool opened and migrated, core started),
     "broker": connected, "printer": "reached" | "fault" | "connecting", "reasons", "ts"}

The updater judges a release healthy when, within ``health_s``, the unit is active (systemd
ready), and the health file is the unit's main process, of the new version, ready,
connected to the broker, printer reached or its fault reported, and fresh (a hung loop
stops writing, as it stops feeding the watchdog) — and all of that holds for ``settle_s``
without the process changing. A printer the running release could not reach either (its
last report before the switch says ``connecting``: unplugged, switched off) is not held
against the new one: rolling back would not bring it back.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiosk import __version__
from kiosk.ops.update.supervisor import Supervisor, SupervisorError

FILE = "health.json"
CONNECTING = "connecting-to-device"
CRASH_LOOP = 3  # restarts while judged: a release that keeps exiting is not waited for
Facts = Callable[[], dict[str, Any]]


def health_path(spool: str | os.PathLike[str]) -> Path:
    return Path(spool).parent / FILE


class HealthReporter:
    """Wraps the station's notify callback; writes the health file from the loop's thread.

        reporter = HealthReporter(health_path(config.station.spool), release_name(),
                              notifier.notify)
        station = Station(config, notify=reporter.notify)
        reporter.facts = station_facts(station)
    """

    def __init__(self, path: Path, release: str, forward: Callable[[str], Any], *,
                 period_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.path, self.release, self.forward = path, release, forward
        self.period_s, self.clock = period_s, clock
        self.facts: Facts = lambda: {}
        self.ready = False
        self._written_at: float | None = None

    def notify(self, message: str) -> Any:
        if message.startswith("READY=1"):
            self.ready = True
        if message.startswith("STOPPING=1"):
            self.ready = False
            self._write()
        elif self.ready and (self._written_at is None
                             or self.clock() - self._written_at >= self.period_s):
            self._write()
        return self.forward(message)

    def _write(self) -> None:
        doc = {"release": self.release, "version": __version__, "pid": os.getpid(),
               "ready": self.ready, "broker": False, "printer": "connecting", "reasons": [],
               "ts": time.time()}
        try:
            doc.update(self.facts())
        except Exception as error:  # the report must never stop the station
            doc["facts_error"] = str(error)[:200]
        # A full disk: the updater sees a stale report and keeps the old release.
        with contextlib.suppress(OSError):
            _replace(self.path, json.dumps(doc).encode())
        self._written_at = self.clock()


def _replace(path: Path, data: bytes) -> None:
    """Write *path* whole (a reader sees the old report or the new), without fsync: it is
    rewritten every second for as long as the station runs, a report lost to a power cut
    reads as stale (the updater keeps the old release), and an fsync a second would wear
    the SD card and stall the loop behind the spool's own syncs."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def release_name() -> str:
    """The release this process runs: VERSION of releases/VERSION/venv (read at start, as
    ``current`` may be switched while it runs), else the package's version."""
    venv = Path(os.path.realpath(sys.prefix))
    if venv.name == "venv" and venv.parent.parent.name == "releases":
        return venv.parent.name
    return __version__


def station_facts(station: Any) -> Facts:
    """What the loop can see of the broker and the printer (read in the loop's thread)."""

    def facts() -> dict[str, Any]:
        reasons = list(station.core.state_document()["printer_state_reasons"])
        printer = "connecting" if CONNECTING in reasons else (
            "reached" if reasons in (["none"], []) else "fault")
        return {"broker": bool(station.link.connected), "printer": printer,
                "reasons": reasons}

    return facts


@dataclass(frozen=True)
class Verdict:
    healthy: bool
    detail: str
    seconds: float


def read_report(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def assess(status: Any, report: dict[str, Any] | None, version: str, *, stale_s: float,
           now: float, printer_optional: bool = False) -> str | None:
    """None when healthy, else why not (one line)."""
    if not status.pid:
        return "the unit is not running"
    if not status.active:
        return "the unit did not report ready (sd_notify READY=1)"
    if report is None or report.get("pid") != status.pid:
        return "no health report from the unit's process"
    if report.get("release") != version:
        return f"the running process is release {report.get('release')!r}, not {version!r}"
    age = now - float(report.get("ts") or 0)
    if age > stale_s:
        return f"its health report is {age:.0f} s old: the loop is hung (watchdog not fed)"
    if not report.get("ready"):
        return "it has not finished starting"
    if not report.get("broker"):
        return "it has not reached the broker"
    if report.get("printer") == "connecting" and not printer_optional:
        return "it has neither reached the printer nor reported its fault"
    return None


def printer_unreached(path: Path) -> bool:
    """Whether the running release, before the switch, had not reached the printer either
    (unplugged, switched off): then the new one is not held to it."""
    report = read_report(path)
    return bool(report and report.get("ready") and report.get("printer") == "connecting")


def wait_healthy(supervisor: Supervisor, path: Path, version: str, *, health_s: float,
                 settle_s: float, stale_s: float, printer_optional: bool = False,
                 poll_s: float = 0.2,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> Verdict:
    """Wait up to *health_s* for *version* to be healthy for *settle_s* on end."""
    start = clock()
    since: float | None = None
    pid: int | None = None
    why = "not judged yet"
    problems: list[str] = []  # each thing found wrong, in order, once
    first_starts: int | None = None
    status = None
    while clock() - start < health_s:
        try:
            status = supervisor.status()
        except SupervisorError as error:
            status, why = None, str(error)
        if status is not None:
            first_starts = status.starts if first_starts is None else first_starts
            why = assess(status, read_report(path), version, stale_s=stale_s,
                         now=time.time(), printer_optional=printer_optional) or ""
            if not why and since is not None and status.pid == pid:
                if clock() - since >= settle_s:
                    return Verdict(True, f"healthy (pid {pid})", clock() - start)
            elif not why:
                since, pid = clock(), status.pid
            else:
                since = None
                restarts = status.starts - first_starts
                if why not in problems:
                    problems.append(why)
                if restarts >= CRASH_LOOP:  # systemd would go on restarting it: no need to wait
                    return Verdict(False, f"not healthy: {_seen(problems, restarts)}",
                                   clock() - start)
        sleep(poll_s)
    restarts = status.starts - first_starts if status and first_starts is not None else 0
    return Verdict(False, f"not healthy within {health_s:g} s: {_seen(problems, restarts)}",
                   clock() - start)


def _seen(problems: list[str], restarts: int) -> str:
    said = "; ".join(problems[-3:]) or "never judged"
    return said + (f" (restarted {restarts} times)" if restarts else "")
