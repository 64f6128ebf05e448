"""SIGTERM ends a busy ``kiosk run`` within its deadline, however many arrive.

The signal handler only wakes a thread of its own, which asks the loop to stop: a
handler that put on the event queue could wait forever for the queue's lock, held by
the very main thread it interrupted (issue 14.4).
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time

from tests.conftest import StationProcess

ROUNDS = 4
SIGNALS = 200
DEADLINE_S = 15.0


class Flood:
    """Messages the process must take, reject and report on *topic*, as fast as paho sends."""

    def __init__(self, district, topic: str) -> None:
        self.district = district
        self.topic = topic
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Flood:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(timeout=10)

    def _run(self) -> None:
        while not self.done.is_set():
            for _ in range(20):
                self.district.client.publish(self.topic, b"not json", qos=1)
            time.sleep(0.002)


def sigterm_storm(process, count: int) -> None:
    for _ in range(count):
        if process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        time.sleep(0.001)


def stops_under_a_storm(process, district, topic: str, round_: int) -> None:
    """While *topic* floods, SIGNALS SIGTERMs: *process* exits 0 within DEADLINE_S."""
    with Flood(district, topic):
        time.sleep(0.3)  # busy with the flood
        sigterm_storm(process, SIGNALS)
        try:
            code = process.wait(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"round {round_}: no exit {DEADLINE_S} s after "
                                 "SIGTERM") from None
    assert code == 0, f"round {round_}: exit {code}"


def test_a_busy_station_sent_sigterm_many_times_exits_each_time(
        station_settings, district, tmp_path):
    for round_ in range(ROUNDS):
        # A station of its own each round: no backlog left at the broker by the last one.
        name, directory = f"st-{round_ + 1}", tmp_path / str(round_)
        directory.mkdir()
        settings = {**station_settings,
                    "station": {**station_settings["station"], "id": name,
                                "spool": str(directory / "spool.db")}}
        station = StationProcess(settings, directory).start()
        try:
            assert district.wait_for(
                lambda n=name: district.availability.get(n) == "online", 20), f"round {round_}"
            stops_under_a_storm(station.process, district, district.topic(name, "jobs"), round_)
        finally:
            if station.process.poll() is None:
                station.kill()
