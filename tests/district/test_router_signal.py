"""SIGTERM ends a busy ``kiosk district route`` within its deadline, however many arrive.

As for the station (tests/station/test_stop_signal.py): the handler only wakes a thread
of ours, which asks the router's loop to stop (issue 14.4).
"""

from __future__ import annotations

import subprocess
import threading
import time

from tests.district.test_router import RouterProcess
from tests.station.test_stop_signal import SIGNALS, sigterm_storm

ROUNDS = 4
DEADLINE_S = 15.0


class InboxFlood:
    """Inbox messages the router must take, refuse and report, as fast as paho sends them."""

    def __init__(self, district) -> None:
        self.district = district
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> InboxFlood:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(timeout=10)

    def _run(self) -> None:
        while not self.done.is_set():
            for _ in range(20):
                self.district.client.publish(self.district.inbox_topic, b"not json", qos=1)
            time.sleep(0.002)


def test_a_busy_router_sent_sigterm_many_times_exits_each_time(broker, district, tmp_path):
    for round_ in range(ROUNDS):
        directory = tmp_path / str(round_)
        directory.mkdir()
        router = RouterProcess(broker, directory / "router.db", directory)
        router.command += ["--client-id", f"router-{round_}"]  # no backlog from the last one
        district.availability.pop("_router", None)
        router.start()
        try:
            assert district.wait_for(
                lambda: district.availability.get("_router") == "online", 20), f"round {round_}"
            with InboxFlood(district):
                time.sleep(0.3)  # busy with the flood
                sigterm_storm(router.process, SIGNALS)
                try:
                    code = router.process.wait(timeout=DEADLINE_S)
                except subprocess.TimeoutExpired:
                    raise AssertionError(f"round {round_}: no exit {DEADLINE_S} s after "
                                         "SIGTERM") from None
            assert code == 0, f"round {round_}: exit {code}"
        finally:
            if router.process.poll() is None:
                router.kill()
