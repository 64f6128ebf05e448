"""Soak: 10,000 cards through one station process, with its resources watched.

``kiosk run`` prints 10,000 simulated cards, fed a few records at a time as a district
would on a busy day. Its resident memory, open file descriptors and threads are read from
``/proc`` after a warm-up (caches filled, every code path taken once) and then every 1,000
cards; they must stay flat: no descriptor or thread more at the end, and memory within a
small allowance of the start (a leak of one small object per card would show).

CI runs 2,000 cards (about 3 minutes here); the full 10,000 is ``SOAK_CARDS=10000``.
"""

from __future__ import annotations

import threading
import time

import pytest

from bench.harness import process_figures, signed_payloads
from kiosk.district import DistrictClient
from kiosk.sim.printer import PrinterSimulator
from kiosk.spool import Spool
from tests.conftest import STATION, StationProcess, wait_until

CARDS = int(__import__("os").environ.get("SOAK_CARDS", 2_000))
WARM_UP = 300
AHEAD = 6  # records sent but not yet printed
RSS_ALLOWANCE_MB = 3.0


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


@pytest.mark.soak
@pytest.mark.timeout(1800)
def test_ten_thousand_cards_leave_memory_descriptors_and_threads_flat(
    tmp_path, station_settings, broker, district_key
):
    printer = PrinterSimulator(str(tmp_path / "soak-printer"), feeder=CARDS + 10,
                               hopper_capacity=CARDS + 10)
    printer.start()
    station_settings["printer"]["port"] = printer.path
    station_settings["printer"]["ribbon"] = __import__("os").environ.get("SOAK_RIBBON", "ymcko")
    station = StationProcess(station_settings, tmp_path).start()
    district = DistrictClient(broker.url, keep_events=False).wait_connected()
    feeder = Feeder(district, printer, district_key[0])
    figures: list[tuple[int, float, float, int, int]] = []
    started = time.monotonic()
    try:
        assert district.wait_for(lambda: district.availability.get(STATION) == "online", 20)
        feeder.thread.start()
        for mark in (WARM_UP, *range(1000 if CARDS >= 1000 else CARDS, CARDS + 1, 1000)):
            assert wait_until(lambda mark=mark: printer.printed >= mark, 600, 0.2), (
                f"{printer.printed} cards printed; {station.log.read_text()[-2000:]}")
            figures.append((mark, time.monotonic() - started,
                            *process_figures(station.process.pid)))
    finally:
        feeder.stop.set()
        district.close()
        code = station.terminate()
        printer.stop()
    assert code == 0
    report(figures)
    (_, _, rss_start, fds_start, threads_start) = figures[0]
    (_, _, rss_end, fds_end, threads_end) = figures[-1]
    assert fds_end <= fds_start, figures
    assert threads_end <= threads_start, figures
    assert rss_end - rss_start <= RSS_ALLOWANCE_MB, figures
    spool = Spool(station_settings["station"]["spool"])
    try:
        ledger = spool.ledger()
        assert (ledger.printed, ledger.spoiled, ledger.balanced) == (CARDS, 0, True)
        assert spool.outbox() == []
    finally:
        spool.close()


def report(figures: list[tuple[int, float, float, int, int]]) -> None:
    print("\ncards  seconds  RSS MB  fds  threads")
    for cards, seconds, rss, fds, threads in figures:
        print(f"{cards:5d}  {seconds:7.0f}  {rss:6.1f}  {fds:3d}  {threads:7d}")
