"""SIGTERM ends a busy ``kiosk run`` within its deadline, however many arrive.

The signal handler only wakes a thread of its own, which asks the loop to stop: a
handler that put on the event queue could wait forever for the queue's lock, held by
the very main thread it interrupted (issue 14.4).
"""

from __future__ import annotations

from tests.conftest import StationProcess
from tests.support.storm import stops_under_a_storm

ROUNDS = 4


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
