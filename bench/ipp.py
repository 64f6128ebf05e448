"""The IPP driver's pace at the station's default settings, beside its baselines, in one run.

card-printer.md, Pacing: "the printer never waits for the station". A backlog of
records printed through a private cupsd whose backend is the simulated card printer
(kiosk/sim/cups_backend.py, fixed time per card), the station running as its own
process (``kiosk run``) with no [printer] key but ``driver`` and ``uri``. Two figures:

* the gap between cards: one card's end at the printer → the next card's start there
  (the backend's own CLOCK_MONOTONIC stamps);
* the printer's busy share: time printing / time from the first start to the last end.

Baselines in the same run: CUPS fed the same number of jobs at once by ``lp`` (CUPS's
own gap: the floor the station is held to, plus 50 ms), and the Evolis driver against
the pty simulator at the same time per card (its gap: card out → next pick).

    python bench/ipp.py [--records 10] [--card-s 1.0]
"""

from __future__ import annotations

import argparse
import subprocess
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

TARGET_OVER_CUPS_S = 0.050
TARGET_BUSY = 0.99


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=10)
    parser.add_argument("--card-s", type=float, default=1.0)
    args = parser.parse_args()
    figures = {"lp": run_lp(args.records, args.card_s),
               "ipp": run_ipp(args.records, args.card_s),
               "evolis": run_evolis(args.records, args.card_s)}
    report(Console(), figures, args.card_s)


def pace(spans: list[tuple[float, float]]) -> dict[str, object]:
    """Gaps (next start − end) and busy share of (start, end) spans at the printer."""
    gaps = [b[0] - a[1] for a, b in pairwise(spans)]
    busy = sum(end - start for start, end in spans) / (spans[-1][1] - spans[0][0])
    return {"gap": gaps, "busy": busy, "n": len(spans)}


def run_lp(count: int, card_s: float) -> dict[str, object]:
    world = World()
    cups = CupsServer(world.dir / "cups", card_seconds=card_s).start()
    try:
        document = world.dir / "card.png"
        from PIL import Image

        Image.new("RGB", (1011, 637), "white").save(document)
        for _ in range(count):  # all at once, as fast as lp goes
            subprocess.run(["lp", "-h", cups.host, "-d", cups.queue, "-o",
                            "document-format=image/png", str(document)],
                           check=True, capture_output=True)
        cups.printer.wait_for_cards(count, 60 + count * card_s * 3)
        spans = [(t["start"], t["end"]) for t in cups.printer.times()]
    finally:
        cups.stop()
        world.close()
    return pace(spans)


def run_evolis(count: int, card_s: float) -> dict[str, list[float]]:
    world = World()
    printer = PrinterSimulator(str(world.dir / "printer"), card_seconds=card_s, feeder=1000)
    tray = TraySimulator(str(world.dir / "tray"))
    printer.start()
    tray.start()
    station = world.start_station(world.station_toml(printer.path, tray.path))
    try:
        wait_online(world)
        backlog(world, count, lambda: len(printer.cards))
        spans = [(card.picked_at, card.printed_at) for card in printer.cards]
    finally:
        stop(station)
        printer.stop()
        tray.stop()
        world.close()
    return pace(spans)


def run_ipp(count: int, card_s: float) -> dict[str, list[float]]:
    world = World()
    cups = CupsServer(world.dir / "cups", card_seconds=card_s).start()
    tray = TraySimulator(str(world.dir / "tray"))
    tray.start()
    config = world.station_toml("/dev/null", tray.path)
    text = config.read_text().replace(
        '[printer]\nport = "/dev/null"\n', f'[printer]\ndriver = "ipp"\nuri = "{cups.uri}"\n')
    config.write_text(text)
    station = world.start_station(config)
    try:
        wait_online(world)
        backlog(world, count, lambda: len(cups.printer.times()))
        spans = [(t["start"], t["end"]) for t in cups.printer.times()]
    finally:
        stop(station)
        cups.stop()
        tray.stop()
        world.close()
    return pace(spans)


def wait_online(world: World) -> None:
    district = DistrictClient(world.broker.url).wait_connected()
    try:
        district.wait_for(lambda: district.availability.get(STATION) == "online", 20)
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
    table = Table(title=f"Pace at the station's defaults, {card_s:g} s cards (same run)")
    for column in ("path", "gap p50", "gap p95", "gap max", "printer busy", "cards"):
        table.add_column(column)
    for key, name in (("lp", "baseline: CUPS fed by lp"), ("ipp", "the station, IPP driver"),
                      ("evolis", "baseline: the station, Evolis driver")):
        f = figures[key]
        table.add_row(name, ms(percentile(f["gap"], 50)), ms(percentile(f["gap"], 95)),
                      ms(max(f["gap"])), f"{f['busy'] * 100:.1f} %", str(f["n"]))
    console.print(table)
    over = percentile(figures["ipp"]["gap"], 50) - percentile(figures["lp"]["gap"], 50)
    console.print(f"IPP gap p50 above CUPS's own: {ms(over)} (target ≤ "
                  f"{ms(TARGET_OVER_CUPS_S)}); busy {figures['ipp']['busy'] * 100:.1f} % "
                  f"(target ≥ {TARGET_BUSY * 100:g} %)")


if __name__ == "__main__":
    main()
