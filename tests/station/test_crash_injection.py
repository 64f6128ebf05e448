"""Crash injection: ``kill -9`` of the station at 100 chosen moments of one long run.

The station runs as its own process (`StationProcess`) against a real Mosquitto and the
printer simulator. Each of the 100 rounds arms one kill, (re)starts the station, sends it
two more records and waits for the kill:

* at a step of the card sequence or of the connect sequence: the printer simulator's
  ``on_command`` hook sends SIGKILL the moment that command arrives (before the printer
  acts on it) or a few milliseconds later (while the station handles the reply);
* during a spool commit: the station runs under ``strace``, whose syscall fault injection
  sends SIGKILL as the station enters its Nth ``fdatasync`` (SQLite's WAL commit), N drawn
  from the seeded plan: the moment is chosen, not sampled, so it lands on a fast disk as on a
  slow one (strace's count is per thread; every commit of the station is on its loop thread);
* at a random moment after the process starts (start-up, recovery, spooling, printing).

After every restart the district resolves any ``uncertain`` card by looking at the printer's
output (``confirm`` if it came out, ``reprint`` if not), then the round checks: every record
sent so far is spooled and completed (none lost), no record was printed twice, the ledger
balances and the outbox is empty.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from kiosk.district.client import DistrictClient
from kiosk.sim.printer import PrinterSimulator
from kiosk.station.spool import Spool
from tests.conftest import STATION, StationProcess, wait_until
from tests.support.rigs import CARD, CONNECT, k_panel, once_each, step_of

KILLS = int(os.environ.get('KIOSK_KILLS', 100))
# A round's commits: 14 to 25 for two records printed (the loop batches what arrives
# together); a commit round keeps sending records until its planned commit comes.
COMMITS_IN_PLAN = 20
TRACED = re.compile(r"(?:(\d+) +)?(.*)")  # an strace line: [thread id] call


def strace_path() -> str:
    path = shutil.which("strace")
    if path is None:
        pytest.fail("strace is missing: the crash proof kills the station inside a chosen commit "
                    "with it. Install it with 'apt-get install strace' (or run scripts/setup).",
                    pytrace=False)
    return path


def killed_at_commit(command: list[str], commit: int, trace: Path) -> list[str]:
    """*command* under strace, which SIGKILLs it on entering its *commit*-th fdatasync."""
    return [strace_path(), "-f", "-q", "-e", "signal=none", "-o", str(trace),
            "-e", "trace=fdatasync", "-e", f"inject=fdatasync:signal=KILL:when={commit}",
            *command]


def commits_before_kill(trace: Path) -> int:
    """How many commits the killed thread entered (strace counts per thread, and another
    thread's sync may be under way at that moment, printed as ``<unfinished ...>``); the
    last one never returned (``= ?``, on its line or on its ``resumed`` line)."""
    entered: Counter[str] = Counter()
    killed = []
    for line in trace.read_text().splitlines():
        # strace puts the thread id first once it traces more than one, else nothing
        tid, call = TRACED.fullmatch(line).groups()  # type: ignore[union-attr]
        if call.startswith("fdatasync("):
            entered[tid] += 1
        if "fdatasync" in call and call.rstrip().endswith("= ?"):
            killed.append(tid)
    assert len(killed) == 1, f"not exactly one commit cut short: {killed}\n{trace.read_text()}"
    return entered[killed[0]]


class Killer:
    """Arms one SIGKILL of the station process, by step, by commit or by clock."""

    def __init__(self, printer: PrinterSimulator) -> None:
        self.pid: int | None = None
        self.step: str | None = None
        self.delay = 0.0
        self.previous = ""
        self.landed: str | None = None
        self.lock = threading.Lock()
        printer.on_command = self.on_command

    def arm_step(self, step: str, delay: float) -> None:
        with self.lock:
            self.step, self.delay, self.landed = step, delay, None

    def on_command(self, text: str) -> None:
        step = step_of(text, self.previous)
        self.previous = text.split(";")[0]
        with self.lock:
            if self.step != step or self.pid is None:
                return
            self.step, pid = None, self.pid
        self.landed = f"step {step}"
        if self.delay:
            threading.Timer(self.delay, _kill, (pid,)).start()
        else:
            _kill(pid)

    def disarm(self) -> None:
        with self.lock:
            self.step = None


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # already dead
        os.kill(pid, signal.SIGKILL)


def schedule(rng: random.Random) -> list[tuple[str, str | int | None]]:
    """100 kills: each step four times, the rest split between commits (each at its chosen
    commit number) and the clock."""
    steps = [("step", step) for step in CONNECT + CARD for _ in range(KILLS // 25)]
    rest = KILLS - len(steps)
    commits = [("commit", rng.randint(1, COMMITS_IN_PLAN)) for _ in range(rest - rest // 2)]
    plan = steps + commits + [("clock", None)] * (rest // 2)
    rng.shuffle(plan)
    return plan


class District:
    """The district's side of the run: records sent, uncertain cards resolved by looking."""

    def __init__(self, client: DistrictClient, printer: PrinterSimulator, signed) -> None:
        self.client, self.printer, self.signed = client, printer, signed
        self.records: dict[str, dict] = {}
        self.panels: dict[bytes, str] = {}
        self.resolved: Counter[str] = Counter()
        self._seen_uncertain: set[tuple[str, int]] = set()

    def send(self, count: int) -> None:
        for _ in range(count):
            record = self.signed(len(self.records) + 1)
            self.records[record["record_id"]] = record
            self.panels[k_panel(record)] = record["record_id"]
            self.client.publish(self.client.topic(STATION, "jobs"), record)

    def printed(self) -> Counter[str]:
        return Counter(self.panels[card.panels["k"]] for card in self.printer.cards)

    def last(self, rid: str) -> dict | None:
        """The station's latest word on *rid*: boots in the order first heard from, events
        of one boot by their seq (a redelivered event may arrive after a later one)."""
        boots: dict[str, dict[int, dict]] = {}
        for event in self.client.job_events(rid):
            boots.setdefault(event["boot_id"], {}).setdefault(event["seq"], event)
        if not boots:
            return None
        latest = boots[list(boots)[-1]]
        return latest[max(latest)]

    def resolve_uncertain(self) -> None:
        for rid in self.records:
            last = self.last(rid)
            if not last or last["reasons"] != ["uncertain"]:
                continue
            key = (last["boot_id"], last["seq"])
            if key in self._seen_uncertain:
                continue
            self._seen_uncertain.add(key)
            came_out = self.printed()[rid] > 0
            name, args = ("confirm", {}) if came_out else ("reprint", {"reason": "not out"})
            reply = self.client.command(STATION, name, {"record_id": rid, **args})
            if not reply["ok"] and reply.get("error") in ("not-uncertain", "not-reprintable"):
                # The printer's counters decided it meanwhile (the station says so; the
                # uncertain event seen here may be a late redelivery from an earlier boot).
                continue
            assert reply["ok"] is True, (rid, name, reply)
            self.resolved[name] += 1

    def decided_by_counters(self) -> int:
        """Cards found in the printer at a restart that its counters decided."""
        seen: set[tuple[str, int]] = set()
        count = 0
        for rid in self.records:
            for event in self.client.job_events(rid):
                if (event["boot_id"], event["seq"]) not in seen:
                    seen.add((event["boot_id"], event["seq"]))
                    count += "decided by the printer's counters" in event["detail"]
        return count

    def all_completed(self) -> bool:
        self.resolve_uncertain()
        return all((self.last(rid) or {}).get("job_state") == "completed" for rid in self.records)


@pytest.fixture
def crash_printer(tmp_path):
    sim = PrinterSimulator(str(tmp_path / "crash-printer"), card_seconds=0.05,
                           receive_timeout=0.8, feeder=10_000)
    sim.start()
    yield sim
    sim.stop()


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_kill_9_at_100_moments_loses_nothing_and_prints_nothing_twice(
    tmp_path, station_settings, district, signed, crash_printer
):
    station_settings["printer"]["port"] = crash_printer.path
    rng = random.Random(16851)
    killer = Killer(crash_printer)
    desk = District(district, crash_printer, signed)
    station = StationProcess(station_settings, tmp_path)
    spool_path = station_settings["station"]["spool"]
    landed: Counter[str] = Counter()
    station.start()  # once, so the broker keeps a session (records queue while it is dead)
    assert district.wait_for(lambda: district.availability.get(STATION) == "online", 20)
    station.kill()
    plain, trace = station.command, tmp_path / "strace.log"
    started = time.monotonic()
    for number, (kind, step) in enumerate(schedule(rng)):
        if kind == "step":
            killer.arm_step(step, rng.choice((0.0, rng.uniform(0.001, 0.03))))
        if kind == "commit":
            station.command = killed_at_commit(plain, step, trace)
        station.start()
        station.command = plain
        killer.pid = station.process.pid
        desk.send(2)
        if kind == "commit":
            _feed_until_dead(station, desk, 60)
        if kind == "clock":
            time.sleep(rng.uniform(0.0, 1.5))
            _kill(station.process.pid)
            killer.landed = "clock"
        assert _died(station, 30), f"round {number}: {kind} {step} never came\n{_log(station)}"
        if kind == "commit":
            died_of = station.process.returncode
            assert died_of in (-signal.SIGKILL, 128 + signal.SIGKILL), (number, died_of)
            entered = commits_before_kill(trace)
            assert entered == step, f"round {number}: planned commit {step}, strace: {entered}"
            killer.landed = "commit (fdatasync)"
        killer.disarm()
        landed[killer.landed or "?"] += 1
        after_restart(station, district, desk, spool_path, number)
    station.terminate()
    printed = desk.printed()
    elapsed = time.monotonic() - started
    print(f"\n{sum(landed.values())} kills in {elapsed:.0f} s: "
          + ", ".join(f"{name} {n}" for name, n in sorted(landed.items()))
          + f"\nrecords {len(desk.records)}, cards printed {sum(printed.values())}, "
          f"uncertain resolved by a person: {dict(desk.resolved)}, by the printer's counters:"
          f" {desk.decided_by_counters()}; blanks taken by the printer "
          f"{crash_printer.picked}, picks booked {_ledger(spool_path).picks}")
    # Every planned kill landed where it was planned: none missed, none by luck.
    assert sum(landed.values()) == KILLS and "?" not in landed, landed


def after_restart(station: StationProcess, district, desk: District, spool_path: str,
                  number: int) -> None:
    """Restart, let the district resolve what is uncertain, then check everything."""
    # The broker publishes the Will of a station that had connected (not asserted: a kill
    # during start-up comes before any connection).
    district.wait_for(lambda: district.availability.get(STATION) != "online", 5)
    station.start()
    assert district.wait_for(lambda: district.availability.get(STATION) == "online", 20)
    assert wait_until(desk.all_completed, 60), (
        f"round {number}: " + str({rid: once_each(district.job_events(rid))[-3:]
                                   for rid in desk.records if not _done(desk, rid)})
        + "\n" + _log(station))
    reader = Spool(spool_path)
    try:
        missing = [rid for rid in desk.records if reader.job(rid) is None]
        assert not missing, f"round {number}: records lost {missing}"
        assert wait_until(lambda: reader.outbox() == [], 10), f"round {number}: outbox"
        ledger = reader.ledger()
        assert ledger.balanced, f"round {number}: {ledger}"
    finally:
        reader.close()
    twice = {rid: n for rid, n in desk.printed().items() if n > 1}
    assert not twice, f"round {number}: printed twice {twice}"
    station.kill()  # the next round starts its own process


def _done(desk: District, rid: str) -> bool:
    return (desk.last(rid) or {}).get("job_state") == "completed"


def _died(station: StationProcess, timeout: float) -> bool:
    try:
        station.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


def _feed_until_dead(station: StationProcess, desk: District, timeout: float) -> None:
    """A record a second until the station reaches its planned commit (or *timeout*)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not _died(station, 1.0):
        desk.send(1)


def _ledger(path: str):
    reader = Spool(path)
    try:
        return reader.ledger()
    finally:
        reader.close()


def _log(station: StationProcess) -> str:
    text = Path(station.log).read_text(errors="replace")
    return text[-3000:]


def test_a_blank_taken_by_ss_before_a_kill_stays_on_the_ledger(
    tmp_path, station_settings, district, signed, crash_printer
):
    """README: "No reply to Ss counts as a pick (the blank may be gone)". A station killed
    while ``Ss`` is in the printer never hears the reply; the printer took a blank all the
    same. The printer's counters (read before the pick, again at restart) show the blank
    taken and no card printed: the station books it spoiled and prints the card again by
    itself, saying so in the job event; the ledger must count every blank taken."""
    station_settings["printer"]["port"] = crash_printer.path
    killer = Killer(crash_printer)
    desk = District(district, crash_printer, signed)
    station = StationProcess(station_settings, tmp_path).start()
    assert district.wait_for(lambda: district.availability.get(STATION) == "online", 20)
    killer.pid = station.process.pid
    killer.arm_step("Ss", 0.0)
    desk.send(1)
    assert _died(station, 20)
    station.start()
    try:
        assert wait_until(desk.all_completed, 30)
        assert desk.resolved == Counter()  # nobody had to look
        details = [e["detail"] for e in district.job_events(next(iter(desk.records)))]
        assert any("decided by the printer's counters" in d for d in details), details
    finally:
        assert station.terminate() == 0
    ledger = _ledger(station_settings["station"]["spool"])
    assert ledger.balanced and ledger.printed == 1
    assert ledger.picks == crash_printer.picked, (ledger, crash_printer.picked)
