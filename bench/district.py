"""The seed's week: does the district print 12,000 of its 16,851 cards, and how near the
best it could do?

One real run on a slice of the backlog: K stations (default 6) as their own processes
with printer and tray simulators here, the router as ``kiosk district route`` in its
own process, one private Mosquitto; a card takes ``--card-ms`` (default 200 ms for a
20 s card: time runs 100x). The field's faults come from kiosk.district.policysim's
seeded schedule, scaled the same way, played at the printers: jams (``CARD JAM`` at
the scheduled card, cleared when a person would have), the second station's feeder
empty then refilled, print heads too hot (``ERROR HEAD`` until cooled), and the
fourth station down (its process killed, started again, and its card in the printer
confirmed as an operator would). The slice keeps the week's shape: the same jam and
overheating rates, the two one-off outages shortened in proportion to the slice.

Printed, in simulated time: makespan and time to 12,000/16,851 of the slice, from the
real run, beside the policy-only simulation of the same slice (how close it came), the
lower bound and the two baselines on the same faults (a static split and an ideal pull
queue); then the whole week from the simulation, with the router's old policy too; then
the week with a share of KIA records (``--kia-share``, default 10 %) on KIA stations of
their own (``--kia-stations``, default 1) beside the E-KTP stations, each record only on a
station of its kind (issue 28; simulated only, until the stations and the router route by
document).

    python bench/district.py [--records 1200] [--stations 6] [--card-ms 200]
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from harness import DISTRICT, ROOT, World, stop
from rich.console import Console
from rich.table import Table

from kiosk.contract.signing import sign_record
from kiosk.district.client import DistrictClient
from kiosk.district.policysim import (
    CARD_S,
    Faults,
    Outage,
    Policy,
    Result,
    ideal_pull,
    lower_bound,
    mixed,
    schedule,
    simulate,
    static_split,
    stations,
)
from kiosk.sim.printer import PrinterSimulator
from kiosk.sim.samples import make_record
from kiosk.sim.tray import TraySimulator

BACKLOG, GOAL = 16_851, 12_000
OLD_POLICY = Policy(hold_ahead=None, release_after_s=300.0)  # before issue 18


class FaultPlayer:
    """Plays one station's part of the schedule at its printer, from the printer's own
    thread (``on_command``: called before each command acts, so an injection made here
    answers that very command)."""

    def __init__(self, name: str, faults: Faults, clock: Callable[[], float]) -> None:
        self.jams = faults.jams[name]
        self.outages = [o for o in faults.of(name) if o.kind in ("feeder", "overheat")]
        self.clock, self.printer = clock, None
        self.prints, self.jam_clears_at = 0, None
        self.refill_due = False

    def attach(self, printer: PrinterSimulator) -> None:
        self.printer = printer

    def __call__(self, command: str) -> None:
        now, printer = self.clock(), self.printer
        name = command.partition(";")[0]
        if self.jam_clears_at is not None and now >= self.jam_clears_at:
            self.jam_clears_at = None
            printer.clear_jam()
        if self.refill_due and not self._active(now, "feeder"):
            self.refill_due = False
            printer.load_cards(100_000)
        if name == "Ss" and self._active(now, "feeder") and printer.feeder > 0:
            printer.load_cards(-printer.feeder)
            self.refill_due = True
        if name in ("Ss", "Pem") and self._active(now, "overheat"):
            printer.inject(name, "ERROR HEAD")
        if name == "Se":
            self.prints += 1
            if self.prints in self.jams:
                printer.inject("Se", "CARD JAM")
                self.jam_clears_at = now + self.jams[self.prints]

    def _active(self, now: float, kind: str) -> bool:
        return any(o.kind == kind and o.start <= now < o.end for o in self.outages)


class District:
    """Broker, K stations with simulators and fault players, the router, an observer."""

    def __init__(self, names: list[str], faults: Faults, card_s: float,
                 policy: Policy) -> None:
        self.names, self.faults, self.speed = names, faults, CARD_S / card_s
        self.t0 = math.inf  # monotonic time of simulated 0 (the first inbox publish)
        self.world = World()
        self.players = {n: FaultPlayer(n, faults, self.sim_now) for n in names}
        self.printers = {n: PrinterSimulator(str(self.world.dir / f"printer-{n}"),
                                             card_seconds=card_s, feeder=100_000,
                                             on_command=self.players[n]) for n in names}
        for name, printer in self.printers.items():
            self.players[name].attach(printer)
        self.trays = {n: TraySimulator(str(self.world.dir / f"tray-{n}")) for n in names}
        for device in (*self.printers.values(), *self.trays.values()):
            device.start()
        self.stations: dict[str, subprocess.Popen] = {}
        self.router: subprocess.Popen | None = None
        try:
            self._start(policy)
        except BaseException:
            self.close()
            raise

    def _start(self, policy: Policy) -> None:
        self.stations = {name: self._station(name) for name in self.names}
        self.router = self._spawn("router", [
            "-m", "kiosk.district.cli", "route", "--url", self.world.broker.url,
            "--district", DISTRICT, "--db", str(self.world.dir / "router.db"),
            "--release-after", str((policy.release_after_s or 0) / self.speed),
            "--hold-ahead", str(policy.hold_ahead or 0)])
        self.client = DistrictClient(self.world.broker.url, district=DISTRICT).wait_connected()
        if not self.client.wait_for(self._ready, 60):
            raise RuntimeError(f"stations or router did not start; logs in {self.world.dir}")

    def sim_now(self) -> float:
        return (time.monotonic() - self.t0) * self.speed

    def _ready(self) -> bool:
        links = self.client.availability
        return links.get("_router") == "online" and all(
            links.get(n) == "online" and self.client.states.get(n, {}).get("printer_state")
            == "idle" for n in self.names)

    def _station(self, name: str) -> subprocess.Popen:
        config = self.world.dir / f"{name}.toml"
        config.write_text(
            f'[station]\ndistrict = "{DISTRICT}"\nid = "{name}"\n'
            f'spool = "{self.world.dir / f"{name}.db"}"\n'
            f'[mqtt]\nurl = "{self.world.broker.url}"\n'
            f'[printer]\nport = "{self.printers[name].path}"\npoll_s = 0.02\n'
            f'[tray]\nport = "{self.trays[name].path}"\n'
            f'[security]\ntrusted_keys = ["{self.world.public}"]\n')
        return self._spawn(name, ["-m", "kiosk", "run", "--config", str(config)])

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.world.dir / f"{name}.log", "ab")  # noqa: SIM115 - lives with the process
        return subprocess.Popen([sys.executable, *argv], stdout=log, stderr=log, cwd=ROOT,
                                start_new_session=True)

    def printed_at(self) -> list[float]:
        """Every card out of every printer, in simulated seconds, in order."""
        return sorted((card.printed_at - self.t0) * self.speed
                      for printer in self.printers.values() for card in printer.cards)

    def play_downtime(self, outage: Outage) -> None:
        """The station is down from start to end: killed (a power cut), started again, and
        its card that was in the printer settled as a person at the desk would: confirmed
        if it came out, printed again if it is still inside."""
        self._sleep_until(outage.start)
        process, printer = self.stations[outage.station], self.printers[outage.station]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        self._sleep_until(outage.end)
        inside = printer.picked - printer.printed - printer.rejected > 0
        self.stations[outage.station] = self._station(outage.station)
        self.client.wait_for(lambda: self.client.availability.get(outage.station) == "online",
                             30)
        uncertain = lambda: [e["record_id"] for e in self.client.events_of("job")  # noqa: E731
                             if e["station"] == outage.station and "uncertain" in e["reasons"]]
        if self.client.wait_for(lambda: bool(uncertain()), 2):
            for rid in dict.fromkeys(uncertain()):
                if inside:
                    self.client.command(outage.station, "reprint",
                                        {"record_id": rid, "reason": "still in the printer"})
                else:
                    self.client.command(outage.station, "confirm", {"record_id": rid})

    def _sleep_until(self, sim_t: float) -> None:
        time.sleep(max(0.0, sim_t / self.speed - (time.monotonic() - self.t0)))

    def card_seconds(self) -> float:
        """Simulated seconds a card held its printer here, pick to out (the panels'
        download included), on average: what the real run's card cost."""
        cards = [c for p in self.printers.values() for c in p.cards]
        return sum(c.printed_at - c.picked_at for c in cards) / len(cards) * self.speed

    def close(self) -> None:
        if hasattr(self, "client"):
            self.client.close()
        for process in (*self.stations.values(), self.router):
            if process is not None:
                stop(process)
        for device in (*self.printers.values(), *self.trays.values()):
            device.stop()
        self.world.close()


def real_run(district: District, count: int, timeout_s: float) -> tuple[Result, float]:
    """Publish the slice into the inbox and wait for every card; (cards, publish time)."""
    records = [sign_record(make_record(i, seed=18), district.world.key)
               for i in range(1, count + 1)]
    client = district.client
    downtime = [threading.Thread(target=district.play_downtime, args=(o,), daemon=True)
                for o in district.faults.outages if o.kind == "offline"]
    district.t0 = time.monotonic()
    for thread in downtime:
        thread.start()
    pending = [client.publish(client.inbox_topic, record) for record in records]
    for info in pending:
        info.wait_for_publish(60)
    published = (time.monotonic() - district.t0) * district.speed
    ended = lambda: len({e["record_id"] for e in client.events_of("job")  # noqa: E731
                         if e["job_state"] in ("completed", "aborted")})
    client.wait_for(lambda: ended() >= count, timeout_s)
    for thread in downtime:
        thread.join(timeout=60)
    released = sum(1 for e in client.events_of("job")
                   if e["job_state"] == "canceled" and "released" in e["reasons"])
    return Result(district.printed_at()[:count], released=released), published


def busy(printer: PrinterSimulator, span: float) -> float:
    """Share of the run's wall time the printer spent printing cards."""
    return sum(card.printed_at - card.picked_at for card in printer.cards) / span


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.3f} h"


def versus(value: float, base: float) -> str:
    return f"{(value / base - 1) * 100:+.2f} %"


def figures_table(title: str, count: int, goal: int, bound: float,
                  columns: dict[str, Result]) -> Table:
    table = Table(title=title)
    table.add_column("figure")
    for name in columns:
        table.add_column(name, justify="right")
    table.add_column("lower bound", justify="right")
    table.add_row("makespan", *(hours(r.makespan) for r in columns.values()), hours(bound))
    table.add_row(f"time to {goal:,} cards", *(hours(r.time_to(goal)) for r in columns.values()),
                  "")
    table.add_row("makespan vs lower bound", *(versus(r.makespan, bound)
                                               for r in columns.values()), "")
    table.add_row("cards printed", *(f"{len(r.done_at):,} of {count:,}"
                                     for r in columns.values()), "")
    table.add_row("records released (moved)", *(f"{r.released:,}" for r in columns.values()),
                  "")
    return table


def simulated(count: int, faults: Faults, policy: Policy, *, old: bool,
              card_s: float = CARD_S, **mix: object) -> dict[str, Result]:
    """The router's policy and the baselines; `mix`: `prints` and `mix` for two documents."""
    results = {"router (sim)": simulate(count, faults, policy=policy, card_s=card_s, **mix),
               "static split": static_split(count, faults, card_s=card_s, **mix),
               "ideal pull": ideal_pull(count, faults, card_s=card_s, **mix)}
    if old:
        results["old router (sim)"] = simulate(count, faults, policy=OLD_POLICY, card_s=card_s)
    return results


def mixed_week(console: Console, names: list[str], args: argparse.Namespace,
               policy: Policy) -> None:
    """The week with a share of KIA records on KIA stations of their own."""
    kia_names = stations(args.kia_stations, "kia")
    prints = {**{n: ("ektp",) for n in names}, **{n: ("kia",) for n in kia_names}}
    faults = schedule([*names, *kia_names], seed=args.seed)
    mix = mixed(BACKLOG, args.kia_share)
    week = simulated(BACKLOG, faults, policy, old=False, prints=prints, mix=mix)
    bound = lower_bound(BACKLOG, faults, prints=prints, mix=mix)
    console.print(figures_table(
        f"The week, simulated, two documents: 16,851 records, {mix.count('kia'):,} of them "
        f"KIA on {len(kia_names)} KIA station(s) beside {len(names)} E-KTP stations",
        BACKLOG, GOAL, bound, week))
    wrong = sum(mix[i] not in prints[station] for result in week.values()
                for i, station in result.printed_by.items())
    console.print(f"records printed on a station of another kind: {wrong}; the bound is the "
                  "larger of each document's own (its records on its stations)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1200,
                        help="records in the real run's slice (default 1200, 7 %% of the week)")
    parser.add_argument("--stations", type=int, default=6)
    parser.add_argument("--card-ms", type=float, default=200.0,
                        help="real milliseconds per 20 s card (default 200: 100x)")
    parser.add_argument("--hold-ahead", type=int, default=Policy().hold_ahead)
    parser.add_argument("--release-after", type=float, default=Policy().release_after_s,
                        help="simulated seconds (scaled for the real run)")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--no-faults", action="store_true",
                        help="the same run without faults (what the machine itself costs)")
    parser.add_argument("--kia-share", type=float, default=0.10,
                        help="share of KIA records in the mixed week (default 0.10)")
    parser.add_argument("--kia-stations", type=int, default=1,
                        help="KIA stations beside the E-KTP ones in the mixed week (default 1)")
    parser.add_argument("--old-week", action="store_true",
                        help="also simulate the old policy on the whole week (about a minute)")
    args = parser.parse_args()
    console = Console(width=150)
    names = stations(args.stations)
    policy = Policy(args.hold_ahead or None, args.release_after or None)
    share = args.records / BACKLOG
    slice_faults = schedule(names, seed=args.seed, scale=share)
    if args.no_faults:
        slice_faults = Faults(slice_faults.stations, {n: {} for n in names}, ())
    slice_goal = math.ceil(args.records * GOAL / BACKLOG)
    console.print(f"slice: {args.records:,} of {BACKLOG:,} records ({share:.1%}), "
                  f"{args.stations} stations, a 20 s card in {args.card_ms:g} ms; "
                  f"router holds {policy.hold_ahead} ahead, releases after "
                  f"{policy.release_after_s} s (simulated)")
    card_s = args.card_ms / 1000
    started = time.monotonic()
    district = District(names, slice_faults, card_s, policy)
    try:
        real, published = real_run(district, args.records, timeout_s=600)
        card = district.card_seconds()
        console.print("cards per station: " + ", ".join(
            f"{n} {len(p.cards)}" for n, p in district.printers.items()) + "; printers busy "
            + ", ".join(f"{busy(p, real.makespan / district.speed):.0%}"
                        for p in district.printers.values())
            + f"; a card held its printer {card:.1f} s (simulated) against {CARD_S:g} s nominal")
    finally:
        district.close()
    wall = time.monotonic() - started
    sims = simulated(args.records, slice_faults, policy, old=True, card_s=card)
    bound = lower_bound(args.records, slice_faults, card)
    console.print(figures_table(
        f"The slice: one real run beside the simulation of it, all with the run's card of"
        f" {card:.1f} s (simulated hours; {slice_goal:,} is 12,000/16,851 of it)",
        args.records, slice_goal, bound, {"real run": real, **sims}))
    model = sims["router (sim)"]
    nominal = simulate(args.records, slice_faults, policy=policy)
    console.print(f"real run vs its simulation: makespan {versus(real.makespan, model.makespan)},"
                  f" time to {slice_goal:,} "
                  f"{versus(real.time_to(slice_goal), model.time_to(slice_goal))}; at the nominal"
                  f" 20 s card the simulation gives {hours(nominal.makespan)}; the backlog"
                  f" was in the inbox after {published:.0f} s (simulated); the run took"
                  f" {wall:.0f} s of wall time")
    week_faults = schedule(names, seed=args.seed)
    week = simulated(BACKLOG, week_faults, policy, old=args.old_week)
    console.print(figures_table("The week, simulated: 16,851 records", BACKLOG, GOAL,
                                lower_bound(BACKLOG, week_faults), week))
    mixed_week(console, names, args, policy)
    console.print(f"one machine with {os.cpu_count()} CPUs: broker, router, {args.stations}"
                  " stations rendering cards, their simulators and this observer")


if __name__ == "__main__":
    main()
