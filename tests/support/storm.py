"""The SIGTERM storm: a process sent many SIGTERMs while a topic floods it must exit 0
within its deadline (the station's and the router's stop-signal tests)."""

from __future__ import annotations

import signal
import subprocess
import threading
import time

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
