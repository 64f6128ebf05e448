"""The IPP driver's pace beside the Evolis driver's, in one run.

Two figures for each driver, the station running as its own process (``kiosk run``):

* publish → job at the printer, on an idle station: for Evolis the first command byte at
  the pty simulator, for IPP the moment CUPS starts the queue's backend (our simulated
  card printer, kiosk/sim/cups_backend.py), both on CLOCK_MONOTONIC;
* the gap between cards with a backlog: one card out of the printer → the next blank
  taken (card-printer.md, Pacing: "the printer never waits for the station").

Both simulators take the same time per card. The Evolis figures are the baseline, measured
in the same run.

    python bench/ipp.py [--records 15] [--card-s 0.5]
"""

from __future__ import annotations

import argparse
import time
from itertools import pairwise

from harness import STATION, World, ms, percentile, stop
from rich.console import Console
from rich.table import Table

from kiosk.contract.signing import sign_record
from kiosk.district.client import DistrictClient
from kiosk.sim.cups import CupsServer
from kiosk.sim.printer import PrinterSimulator
from kiosk.sim.samples import make_record
from kiosk.sim.tray import TraySimulator


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=15)
    parser.add_argument("--card-s", type=float, default=0.5)
    args = parser.parse_args()
    console = Console()
    figures = {"evolis": run_evolis(args.records, args.card_s),
               "ipp": run_ipp(args.records, args.card_s)}
    report(console, figures, args.card_s)


def run_evolis(count: int, card_s: float) -> dict[str, list[float]]:
    world = World()
    printer = PrinterSimulator(str(world.dir / "printer"), card_seconds=card_s, feeder=1000)
    tray = TraySimulator(str(world.dir / "tray"))
    printer.start()
    tray.start()
    station = world.start_station(world.station_toml(printer.path, tray.path, poll_s=0.2))
    try:
        idle = measure_idle(world, count, lambda: printer.job_first_byte_at)
        before = len(printer.cards)
        backlog(world, count, lambda: len(printer.cards) - before)
        cards = printer.cards[before:]
        gaps = [b.picked_at - a.printed_at for a, b in pairwise(cards)]
    finally:
        stop(station)
        printer.stop()
        tray.stop()
        world.close()
    return {"latency": idle, "gap": gaps}


def run_ipp(count: int, card_s: float) -> dict[str, list[float]]:
    world = World()
    cups = CupsServer(world.dir / "cups", card_seconds=card_s).start()
    tray = TraySimulator(str(world.dir / "tray"))
    tray.start()
    config = world.station_toml("/dev/null", tray.path)
    text = config.read_text().replace(
        '[printer]\nport = "/dev/null"\n',
        f'[printer]\ndriver = "ipp"\nuri = "{cups.uri}"\npoll_s = 0.2\n')
    config.write_text(text)
    station = world.start_station(config)
    try:
        idle = measure_idle(world, count, lambda: [t["start"] for t in cups.printer.times()])
        before = len(cups.printer.times())
        backlog(world, count, lambda: len(cups.printer.times()) - before)
        times = cups.printer.times()[before:]
        gaps = [b["picked"] - a["end"] for a, b in pairwise(times)]
    finally:
        stop(station)
        cups.stop()
        tray.stop()
        world.close()
    return {"latency": idle, "gap": gaps}


def measure_idle(world: World, count: int, starts) -> list[float]:
    """Publish → job at the printer, one record at a time on an idle station."""
    district = DistrictClient(world.broker.url).wait_connected()
    try:
        district.wait_for(lambda: district.availability.get(STATION) == "online", 20)
        latencies = []
        for index in range(1, count + 1):
            record = sign_record(make_record(index), world.key)
            before = len(starts())
            sent = district.publish_record(STATION, record)
            district.wait_for(lambda before=before: len(starts()) > before, 30)
            latencies.append(starts()[before] - sent)
            rid = record["record_id"]
            district.wait_for(lambda rid=rid: district.final_state(rid) == "completed", 30)
            time.sleep(0.3)  # idle again
        return latencies
    finally:
        district.close()


def backlog(world: World, count: int, printed) -> None:
    """*count* records at once; wait until all are out."""
    district = DistrictClient(world.broker.url).wait_connected()
    try:
        for index in range(1001, 1001 + count):
            district.publish_record(STATION, sign_record(make_record(index), world.key))
        district.wait_for(lambda: printed() >= count, 60 + count * 5)
    finally:
        district.close()


def report(console: Console, figures: dict, card_s: float) -> None:
    table = Table(title=f"IPP through CUPS beside Evolis (simulators at {card_s:g} s per card)")
    for column in ("figure", "p50", "p95", "n"):
        table.add_column(column)
    for label, key in (("publish → job at the printer (idle)", "latency"),
                       ("gap between cards, out → next pick (backlog)", "gap")):
        for driver, name in (("evolis", "baseline: Evolis"), ("ipp", "IPP via CUPS")):
            values = figures[driver][key]
            table.add_row(f"{name}: {label}", ms(percentile(values, 50)),
                          ms(percentile(values, 95)), str(len(values)))
    console.print(table)


if __name__ == "__main__":
    main()
