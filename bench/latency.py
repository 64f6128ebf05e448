"""Publish → first byte of the job at the printer, and publish → `Ss` (the blank picked,
the card rendered), on an idle station.

The station runs as its own process (as under systemd); the printer simulator
runs here and stamps the arrival of each job's first command and each pick. Printed
beside the broker's own publish → delivery latency and one durable spool commit,
measured in the same run. Goals: first byte p50 within 3 × broker + one fsync;
publish → `Ss` p50 within broker + 10 ms (issue 18).

    python bench/latency.py [--records 40]
"""

from __future__ import annotations

import argparse
import time

from harness import World, broker_latency, fsync_commit, ms, percentile, stop
from rich.console import Console
from rich.table import Table

from kiosk.contract.signing import sign_record
from kiosk.district.client import DistrictClient
from kiosk.sim.printer import PrinterSimulator
from kiosk.sim.samples import make_record
from kiosk.sim.tray import TraySimulator


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=40)
    args = parser.parse_args()
    console = Console()
    world = World()
    printer = PrinterSimulator(str(world.dir / "printer"), card_seconds=0.05)
    tray = TraySimulator(str(world.dir / "tray"))
    printer.start()
    tray.start()
    station = world.start_station(world.station_toml(printer.path, tray.path))
    district = DistrictClient(world.broker.url).wait_connected()
    try:
        district.wait_for(lambda: district.availability.get("bench-01") == "online", 20)
        latencies, picks = measure(district, printer, world, args.records)
        broker = broker_latency(world.broker.port)
        commit = fsync_commit(world.dir)
    finally:
        district.close()
        stop(station)
        printer.stop()
        tray.stop()
        world.close()
    report(console, latencies, picks, broker, commit)


def measure(district, printer, world, count: int) -> tuple[list[float], list[float]]:
    """Publish → first byte and publish → `Ss` of each record, one at a time."""
    records = [sign_record(make_record(i), world.key) for i in range(1, count + 1)]
    latencies, picks = [], []
    for record in records:
        before = len(printer.job_first_byte_at)
        sent = district.publish_record("bench-01", record)
        district.wait_for(lambda before=before: len(printer.job_first_byte_at) > before, 10)
        latencies.append(printer.job_first_byte_at[before] - sent)
        rid = record["record_id"]
        district.wait_for(lambda rid=rid: district.final_state(rid) == "completed", 10)
        picks.append(printer.cards[before].picked_at - sent)  # the simulator's Ss
        time.sleep(0.05)  # idle station again
    return latencies, picks


def report(console: Console, latencies, picks, broker, commit) -> None:
    table = Table(title="publish → first printer byte and → Ss (idle station)")
    for column in ("figure", "p50", "p95", "n"):
        table.add_column(column)
    table.add_row("station: publish → first byte", ms(percentile(latencies, 50)),
                  ms(percentile(latencies, 95)), str(len(latencies)))
    table.add_row("station: publish → Ss (render included)", ms(percentile(picks, 50)),
                  ms(percentile(picks, 95)), str(len(picks)))
    table.add_row("baseline: broker publish → delivery", ms(percentile(broker, 50)),
                  ms(percentile(broker, 95)), str(len(broker)))
    table.add_row("baseline: one spool commit (fsync)", ms(percentile(commit, 50)),
                  ms(percentile(commit, 95)), str(len(commit)))
    goal = 3 * percentile(broker, 50) + percentile(commit, 50)
    table.add_row("goal: 3 × broker + one fsync (first byte)", ms(goal), "", "")
    table.add_row("goal: broker + 10 ms (Ss)", ms(percentile(broker, 50) + 0.010), "", "")
    console.print(table)
    verdict = "within" if percentile(latencies, 50) <= goal else "above"
    console.print(f"first byte p50 is {verdict} the goal "
                  f"({percentile(latencies, 50) / goal:.1f} × the goal)")
    over = percentile(picks, 50) - percentile(broker, 50)
    console.print(f"publish → Ss p50 is broker + {over * 1000:.2f} ms (goal: broker + 10 ms)")


if __name__ == "__main__":
    main()
