"""``kiosk update``: the steps of an update, the rollback, and the recovery of a half-done switch.

    verify     signature, digest, platform, spool schema: nothing is touched before
    card       wait until no card is in the printer (spool, read-only)
    unpacked   releases/.VERSION.unpack, then renamed to releases/VERSION
    journal    switch.json {from, to, phase: "switching"}
    switched   ``current`` renamed to point at the new release
    restarted  the unit restarted (it starts ``current``)
    healthy    judged within health_s (health.py); the journal says "committed"
    committed  the journal removed, releases pruned to the new and the previous
A release that is not healthy in time: ``rollback-journal`` (phase "rolling-back"),
``rolled-back-link`` (``current`` back), ``rolled-back-restart`` (the old one restarted).

The updater may be killed at any step (power loss, kill -9): ``recover`` (run by every
``kiosk update`` first, and by ``kiosk update --recover`` at boot) finishes a switch whose
release was judged healthy and undoes any other, so exactly one
release runs afterwards and ``current`` names it. The tests stop the updater at each step
with ``KIOSK_UPDATE_CRASH_AT=STEP`` (SIGKILL of itself).

Each outcome is an ``update`` event (version, outcome, detail) appended to
``update-events.jsonl`` beside the spool, for the station to publish through its outbox
at its next start (docs/releases.md), and printed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kiosk.contract.signing import Verifier
from kiosk.ops.update import bundle as bundles
from kiosk.ops.update import spoolcheck
from kiosk.ops.update.bundle import BundleError, Manifest
from kiosk.ops.update.health import Verdict, health_path, printer_unreached, wait_healthy
from kiosk.ops.update.layout import Layout, atomic_write
from kiosk.ops.update.platform import PlatformError, check
from kiosk.ops.update.supervisor import Supervisor, SupervisorError

STEPS = ("verified", "card", "unpacked", "journal", "switched", "restarted", "healthy",
         "committed", "rollback-journal", "rolled-back-link", "rolled-back-restart")
CRASH_ENV = "KIOSK_UPDATE_CRASH_AT"
EVENTS_FILE = "update-events.jsonl"
KEEP_EVENTS = 50


def crash_hook(step: str) -> None:
    """Kill this process at *step* when KIOSK_UPDATE_CRASH_AT names it (the tests' power cut)."""
    if os.environ.get(CRASH_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class Settings:
    root: Path
    spool: Path
    keys: Verifier
    health_s: float = 120.0
    settle_s: float = 10.0
    stale_s: float = 5.0
    card_wait_s: float = 900.0

    @property
    def health_file(self) -> Path:
        return health_path(self.spool)

    @property
    def events_file(self) -> Path:
        return self.spool.parent / EVENTS_FILE


@dataclass
class Outcome:
    version: str | None
    outcome: str  # updated | rolled-back | refused | current | failed | installed
    detail: str
    seconds: float = 0.0
    previous: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome in ("updated", "current", "installed")

    def event(self) -> dict:
        return {"type": "update", "version": self.version, "outcome": self.outcome,
                "detail": self.detail, "previous": self.previous,
                "seconds": round(self.seconds, 1), "ts": time.time(), **self.extra}


class Updater:
    def __init__(self, settings: Settings, supervisor: Supervisor, *,
                 write: bundles.Write = os.write, step: Callable[[str], None] = crash_hook,
                 say: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings, self.supervisor = settings, supervisor
        self.layout = Layout(settings.root)
        self.write, self.step = write, step
        self.say = say or (lambda line: print(line, flush=True))  # the journal, as it goes
        self.clock, self.sleep = clock, sleep
        self.printer_optional = False  # set before a switch: health.printer_unreached

    # -- the checks: nothing is touched ----------------------------------------------------

    def check(self, path: Path) -> Manifest:
        """Verify *path* for this station; raises BundleError, PlatformError or SpoolRefused."""
        manifest = bundles.verify(path, self.settings.keys)
        check(manifest.interpreter, manifest.platform)
        old = self.layout.current_version()
        spoolcheck.check_migration(spoolcheck.schema_version(self.settings.spool),
                                   manifest.spool_opens, manifest.spool_writes,
                                   self._spool_opens_of(old))
        return manifest

    def _spool_opens_of(self, version: str | None) -> tuple[int, int] | None:
        if version is None:
            return None
        try:
            doc = json.loads((self.layout.release(version) / "manifest.json").read_bytes())
            low, high = doc["spool"]["opens"]
            return int(low), int(high)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    # -- the update ---------------------------------------------------------------------

    def update(self, path: Path, *, announced: str | None = None) -> Outcome:
        """Install *path*; *announced* is the version the district said it is (the outcome
        names it even when the bundle cannot be read, and a bundle of another is refused)."""
        started = self.clock()
        recovered = self.recover()
        if recovered is not None:
            self.say(f"kiosk update: {recovered.detail}")
        try:
            manifest = self.check(path)
            if announced is not None and manifest.version != announced:
                raise BundleError("not-announced", f"the bundle is {manifest.version}, the"
                                  f" district announced {announced}")
        except (BundleError, PlatformError, spoolcheck.SpoolRefused) as error:
            return self.refuse(announced, f"{path.name}: {error}", self.clock() - started)
        self.step("verified")
        old = self.layout.current_version()
        if old == manifest.version:
            return self._report(Outcome(manifest.version, "current",
                                        f"{manifest.version} is already running",
                                        self.clock() - started, old))
        self.say(f"kiosk update: {manifest.describe()} verified; running: {old or 'none'}")
        card_stays = f"a card stayed in the printer for {self.settings.card_wait_s:g} s"
        if not self._wait_for_card():
            return self.refuse(manifest.version, card_stays, self.clock() - started)
        self.step("card")
        try:
            self._unpack(path, manifest)
        except (BundleError, OSError) as error:
            return self.refuse(manifest.version, f"unpacking failed, nothing changed: {error}",
                               self.clock() - started)
        self.step("unpacked")
        if not self._wait_for_card():  # a card may have started while it unpacked
            shutil.rmtree(self.layout.release(manifest.version), ignore_errors=True)
            return self.refuse(manifest.version, card_stays, self.clock() - started)
        return self._switch(manifest.version, old, started)

    def refuse(self, version: str | None, detail: str, seconds: float = 0.0) -> Outcome:
        return self._report(Outcome(version, "refused", detail, seconds,
                                    self.layout.current_version()))

    def _wait_for_card(self) -> bool:
        deadline = self.clock() + self.settings.card_wait_s
        told = False
        while spoolcheck.card_in_printer(self.settings.spool):
            if self.clock() >= deadline:
                return False
            if not told:
                self.say("kiosk update: a card is in the printer; waiting for it to finish")
                told = True
            self.sleep(0.5)
        return True

    def _unpack(self, path: Path, manifest: Manifest) -> None:
        self.layout.releases.mkdir(parents=True, exist_ok=True)
        self.layout.remove_staging()
        staging = self.layout.staging(manifest.version)
        bundles.unpack(path, manifest, staging, write=self.write)
        target = self.layout.release(manifest.version)
        if target.exists():  # an earlier copy of this version, not running: replaced
            shutil.rmtree(target)
        os.rename(staging, target)

    def _switch(self, new: str, old: str | None, started: float) -> Outcome:
        """Switch to *new*, judge it, go back to *old* unless healthy."""
        if old is None:  # the first install: no unit runs yet, nothing to judge or go back to
            self.layout.point_at(new)
            return self._report(Outcome(new, "installed", f"{new} installed as the first"
                                        " release; start the unit (systemctl start kiosk)",
                                        self.clock() - started))
        self.printer_optional = printer_unreached(self.settings.health_file)
        self.layout.write_journal(phase="switching", to=new, **{"from": old})
        self.step("journal")
        self.layout.point_at(new)
        self.step("switched")
        self._restart()
        self.step("restarted")
        switched = self.clock()
        verdict = self._judge(new)
        if verdict.healthy:
            self.layout.write_journal(phase="committed", to=new, **{"from": old})
            self.step("healthy")
            self.layout.clear_journal()
            self.step("committed")
            self.layout.prune({new, old} - {None})
            return self._report(Outcome(new, "updated", verdict.detail, self.clock() - started,
                                        old, {"health_s": round(verdict.seconds, 1)}))
        self.say(f"kiosk update: {new} {verdict.detail}; going back to {old}")
        back = self._roll_back(new, old)
        return self._report(Outcome(new, "rolled-back", f"{verdict.detail}; {old} runs again"
                                    f" ({back.detail})", self.clock() - started, old,
                                    {"rollback_s": round(self.clock() - switched
                                                         - verdict.seconds, 1)}))

    def _roll_back(self, new: str, old: str) -> Verdict:
        self.layout.write_journal(phase="rolling-back", to=new, **{"from": old})
        self.step("rollback-journal")
        self.layout.point_at(old)
        self.step("rolled-back-link")
        self._restart()
        self.step("rolled-back-restart")
        verdict = self._judge(old)
        self.layout.clear_journal()
        self.layout.prune({new, old})
        return verdict

    def _restart(self) -> None:
        try:
            self.supervisor.restart()
        except SupervisorError as error:  # judged below: the unit will not be healthy
            self.say(f"kiosk update: {error}")

    def _judge(self, version: str) -> Verdict:
        s = self.settings
        return wait_healthy(self.supervisor, s.health_file, version, health_s=s.health_s,
                            settle_s=s.settle_s, stale_s=s.stale_s, clock=self.clock,
                            sleep=self.sleep, printer_optional=self.printer_optional)

    # -- recovery -------------------------------------------------------------------------

    def recover(self, *, restart: bool = True) -> Outcome | None:
        """Finish or undo a switch an earlier updater left half done; None if there was none."""
        journal = self.layout.read_journal()
        self.layout.remove_staging()
        if journal is None:
            return None
        old, new = journal.get("from"), journal.get("to")
        current = self.layout.current_version()
        if journal.get("phase") == "committed" and new and self.layout.release(new).is_dir():
            if current != new:  # cannot happen (committed follows the switch), but be sure
                self.layout.point_at(new)
                if restart:
                    self._restart()
            outcome = Outcome(new, "updated", f"an update to {new} was judged healthy before"
                              " the updater stopped: finished", 0.0, old)
        elif old and self.layout.release(old).is_dir():
            if current != old:
                self.layout.point_at(old)
            if restart:
                self._restart()
            outcome = Outcome(new, "rolled-back",
                              f"an update to {new} stopped during its switch (phase"
                              f" {journal.get('phase', '?')}); {old} restored", 0.0, old)
        else:
            outcome = Outcome(new, "failed", f"an update to {new} stopped during its switch"
                              " and there is no previous release: it stays", 0.0, None)
        self.layout.clear_journal()
        self.layout.prune({v for v in (old, new, self.layout.current_version()) if v})
        return self._report(outcome)

    # -- reporting ------------------------------------------------------------------------

    def _report(self, outcome: Outcome) -> Outcome:
        record_event(self.settings.events_file, outcome.event())
        self.say(f"kiosk update: {outcome.outcome}: {outcome.detail}")
        return outcome


def record_event(path: Path, event: dict) -> None:
    """Append *event* to the file the station reports at its next start (the last 50 kept)."""
    try:
        lines = path.read_bytes().splitlines()[-(KEEP_EVENTS - 1):]
    except FileNotFoundError:
        lines = []
    except OSError:
        return
    lines.append(json.dumps(event, sort_keys=True).encode())
    # Said on stdout (the journal) already; a full disk must not stop a rollback.
    with contextlib.suppress(OSError):
        atomic_write(path, b"\n".join(lines) + b"\n")


def fetch(url: str, directory: Path, *, timeout: float = 60.0) -> Path:
    """Download *url* into *directory* (the bundle is verified after, like a local file)."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / ".download.bundle"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(target, "wb") as out:
            shutil.copyfileobj(response, out, bundles.CHUNK)
    except OSError as error:
        target.unlink(missing_ok=True)
        raise BundleError("unreadable", f"{url}: {error}") from None
    return target
