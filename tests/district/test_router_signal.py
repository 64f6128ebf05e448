"""SIGTERM ends a busy ``kiosk district route`` within its deadline, however many arrive.

As for the station (tests/station/test_stop_signal.py): the handler only wakes a thread
of ours, which asks the router's loop to stop (issue 14.4).
"""

from __future__ import annotations

from tests.district.test_router import RouterProcess
from tests.support.storm import stops_under_a_storm

ROUNDS = 4


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
            stops_under_a_storm(router.process, district, district.inbox_topic, round_)
        finally:
            if router.process.poll() is None:
                router.kill()
