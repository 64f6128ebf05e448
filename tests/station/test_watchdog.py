"""A thread stuck beyond its own timeouts stops the systemd watchdog being fed.

The station runs with its real adapters; the printer thread's card budget is made
shorter than the simulator's print time, which is what a hang looks like from outside.
"""

from __future__ import annotations

import threading
import time

from kiosk.station.config import from_dict
from kiosk.station.loop import Station
from tests.conftest import STATION, wait_until


def test_the_watchdog_is_not_fed_while_the_printer_thread_overruns_its_budget(
    station_settings, district, printer_sim, signed
):
    pings: list[float] = []
    station = Station(from_dict(station_settings),
                      notify=lambda status: pings.append(time.monotonic())
                      if status == "WATCHDOG=1" else None)
    station.worker.card_budget_s = 0.5
    printer_sim.card_seconds = 3.0  # Se takes 3 s: the printer thread is "stuck" 2.5 s
    thread = threading.Thread(target=station.run, daemon=True)
    thread.start()
    try:
        assert district.wait_for(lambda: district.availability.get(STATION) == "online", 10)
        record = signed(1)
        district.publish_record(STATION, record)
        assert wait_until(lambda: station.worker.stuck(), 10)
        stuck_at = time.monotonic()
        assert wait_until(lambda: not station.worker.stuck(), 10)
        freed_at = time.monotonic()
        assert wait_until(lambda: pings and pings[-1] > freed_at, 5), "never fed again"
    finally:
        station.stop()
        thread.join(timeout=20)
    starved = [p for p in pings if stuck_at + 0.1 < p < freed_at - 0.1]
    assert freed_at - stuck_at > 1.0 and starved == [], f"fed while stuck: {starved}"
