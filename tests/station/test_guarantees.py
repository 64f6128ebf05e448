"""The station loop's own promises, each with a fast test on real parts.

Mosquitto, the printer and tray simulators on ptys, the real spool: only our own
adapter's ``ack`` is wrapped, to look at the spool from outside at the moment it runs.
"""

from __future__ import annotations

import sqlite3

from kiosk.station.core import events as ev
from kiosk.station.loop import EventQueue
from tests.conftest import STATION, StationThread


def test_a_record_is_acknowledged_only_once_its_commit_is_durable(
    station_settings, district, signed
):
    """At the moment each PUBACK goes out, another connection (another process, after a
    power cut) already sees the record in the spool: the ack follows the commit."""
    spool = station_settings["station"]["spool"]
    seen_at_ack: list[set[str]] = []
    records = [signed(i) for i in range(1, 6)]
    with StationThread(station_settings, district) as station:
        original = station.link.ack

        def ack_after_looking(mid: int, generation: int) -> None:
            with sqlite3.connect(spool) as db:
                seen_at_ack.append({rid for (rid,) in db.execute("SELECT record_id FROM jobs")})
            original(mid, generation)

        station.link.ack = ack_after_looking
        for record in records:
            district.publish_record(STATION, record)
        assert district.wait_for(lambda: len(seen_at_ack) >= 5, 20)
    wanted = {r["record_id"] for r in records}
    assert all(seen_at_ack), "a PUBACK went out before anything was committed"
    assert wanted <= seen_at_ack[-1]
    for seen in seen_at_ack:  # each ack saw at least the records acked before it
        assert seen & wanted


def test_the_printers_events_overtake_a_queue_full_of_records() -> None:
    queue = EventQueue()
    for mid in range(1, 101):
        queue.put(ev.MessageArrived("t/jobs", b"{}", mid, 1))
    queue.put(ev.PickRequested("r-1"))
    queue.put(ev.CardPrinted("r-0"))
    assert queue.get_nowait() == ev.PickRequested("r-1")
    assert queue.get_nowait() == ev.CardPrinted("r-0")
    assert queue.get_nowait() == ev.MessageArrived("t/jobs", b"{}", 1, 1)  # then in order
