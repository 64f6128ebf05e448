"""Soak: 10,000 cards through one station process, with its resources watched.

``kiosk run`` prints 10,000 simulated cards, fed a few records at a time as a district
would on a busy day. Its resident memory, open file descriptors and threads are read from
``/proc`` every 1,000 cards and printed. Descriptors and threads must not grow at all.
Memory is judged from ``SETTLED`` cards on: the renderer's text caches are bounded LRU
caches that fill during the first couple of thousand cards (every card brings a new NIK,
name and address to measure); after that, memory must stay within a small allowance.

A leak of a few bytes per event is too small for RSS to show over 10,000 cards, yet it
grows for ever; the broker link, which handles every event, is checked for that directly
with tracemalloc (tests/test_mqttlink.py).

The ribbon is monochrome (``k``) unless ``SOAK_RIBBON`` says otherwise: the same station
code runs around each card in less time than a colour card's, which keeps the run within
CI's budget (docs/proofs.md also has a run with ``SOAK_RIBBON=ymcko``).
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from bench.harness import process_figures, signed_payloads
from kiosk.district.client import DistrictClient
from kiosk.sim.printer import PrinterSimulator
from kiosk.station.spool import Spool
from tests.conftest import STATION, StationProcess, wait_until

CARDS = 10_000
MARKS = (300, *range(1000, CARDS + 1, 1000))
SETTLED = 4_000  # cards after which the bounded caches are full
AHEAD = 6  # records sent but not yet printed
RSS_ALLOWANCE_MB = 2.5  # over the last 6,000 cards: about 400 bytes a card

Figures = tuple[int, float, float, int, int]  # cards, seconds, RSS MB, fds, threads


class Feeder:
    """Sends the next records whenever fewer than AHEAD wait to be printed."""

    def __init__(self, district: DistrictClient, printer: PrinterSimulator, key) -> None:
        self.district, self.printer, self.key = district, printer, key
        self.sent = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="feeder", daemon=True)

    def _run(self) -> None:
        topic = self.district.topic(STATION, "jobs")
        while not self.stop.is_set() and self.sent < CARDS:
            if self.sent - self.printer.printed >= AHEAD:
                time.sleep(0.005)
                continue
            count = min(AHEAD, CARDS - self.sent)
            for payload in signed_payloads(self.key, count, start=self.sent + 1):
                self.district.publish(topic, payload)
            self.sent += count
            del self.printer.cards[:]  # the test keeps no card images: 10,000 would not fit


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_ten_thousand_cards_leave_memory_descriptors_and_threads_flat(
    tmp_path, station_settings, broker, district_key
):
    printer = PrinterSimulator(str(tmp_path / "soak-printer"), feeder=CARDS + 10,
                               hopper_capacity=CARDS + 10, ribbon_panels=5 * CARDS + 50)
    printer.start()
    station_settings["printer"].update(port=printer.path, ribbon=os.environ.get("SOAK_RIBBON", "k"))
    station = StationProcess(station_settings, tmp_path).start()
    district = DistrictClient(broker.url, keep_events=False).wait_connected()
    feeder = Feeder(district, printer, district_key[0])
    figures: list[Figures] = []
    started = time.monotonic()
    try:
        assert district.wait_for(lambda: district.availability.get(STATION) == "online", 20)
        feeder.thread.start()
        for mark in MARKS:
            assert wait_until(lambda mark=mark: printer.printed >= mark, 600,
                              interval=0.2), (
                f"{printer.printed} cards printed; {station.log.read_text()[-2000:]}")
            figures.append((mark, time.monotonic() - started,
                            *process_figures(station.process.pid)))
    finally:
        feeder.stop.set()
        district.close()
        code = station.terminate()
        printer.stop()
    report(figures)
    assert code == 0
    first, settled, last = figures[0], dict((f[0], f) for f in figures)[SETTLED], figures[-1]
    assert last[3] <= first[3], "file descriptors grew"
    assert last[4] <= first[4], "threads grew"
    assert last[2] - settled[2] <= RSS_ALLOWANCE_MB, (
        f"RSS grew {last[2] - settled[2]:.1f} MB over {last[0] - settled[0]} cards")
    check_spool(station_settings["station"]["spool"])


def check_spool(path: str) -> None:
    spool = Spool(path)
    try:
        ledger = spool.ledger()
        assert (ledger.printed, ledger.spoiled, ledger.balanced) == (CARDS, 0, True)
        assert spool.outbox() == []
    finally:
        spool.close()


def report(figures: list[Figures]) -> None:
    print("\n cards  seconds  s/1000  RSS MB  fds  threads")
    previous = (0, 0.0)
    for cards, seconds, rss, fds, threads in figures:
        per_thousand = (seconds - previous[1]) / (cards - previous[0]) * 1000
        print(f"{cards:6d}  {seconds:7.0f}  {per_thousand:6.0f}  {rss:6.1f}  {fds:3d}"
              f"  {threads:7d}")
        previous = (cards, seconds)
