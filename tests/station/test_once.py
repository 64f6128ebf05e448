"""Effects once over an at-least-once network, and operator decisions that outlive a crash.

Real parts: Mosquitto, a relay that loses the station's PUBACKs and cuts the line, the
printer and tray simulators, `kiosk run` killed with SIGKILL.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from kiosk.contract.mqtt import json_properties
from tests.conftest import STATION, StationProcess, StationThread, wait_until
from tests.station.netcut import NetCut


@pytest.fixture
def relay(broker):
    with NetCut(broker.port) as cut:
        yield cut


def refills_booked(spool_path: str) -> int:
    with sqlite3.connect(spool_path) as db:
        (total,) = db.execute("SELECT COALESCE(SUM(count), 0) FROM ledger"
                              " WHERE kind = 'refill'").fetchone()
    return int(total)


def test_a_refill_redelivered_after_its_puback_was_lost_is_booked_once(
    station_settings, district, relay
):
    station_settings["mqtt"].update(url=relay.url, keepalive_s=2)
    spool = station_settings["station"]["spool"]
    with StationThread(station_settings, district):
        relay.mute_client()  # the station's PUBACK (and its reply) never reach the broker
        props = json_properties(b"refill-once")
        props.ResponseTopic = district.reply_topic
        district.client.publish(district.topic(STATION, "cmd/refill"),
                                json.dumps({"count": 100}).encode(), qos=1, properties=props)
        assert wait_until(lambda: refills_booked(spool) == 100, 10)
        relay.reset()  # the line is cut; the broker will deliver the command again
        relay.flow()
        assert district.wait_for(lambda: any(
            event.get("repeat") for event in district.events_of("command")), 20)
        assert district.wait_for(lambda: b"refill-once" in district._replies, 10)
        assert district._replies[b"refill-once"] == {"ok": True, "remaining": 100}
        assert refills_booked(spool) == 100
        assert district.wait_for(
            lambda: (district.states.get(STATION) or {}).get("stock", {}).get("remaining")
            == 100, 10)


def test_a_drained_station_still_refuses_records_after_a_power_cut(
    station_settings, district, signed, tmp_path
):
    station = StationProcess(station_settings, tmp_path).start()
    assert district.wait_for(lambda: district.availability.get(STATION) == "online", 20)
    assert district.command(STATION, "drain", timeout=20)["ok"] is True
    station.kill()  # SIGKILL: no clean stop
    station.start()
    record = signed(1)
    district.publish_record(STATION, record)
    assert district.wait_for(lambda: any(
        e.get("record_id") == record["record_id"] and e.get("error") == "not-accepting"
        for e in district.events_of("rejected")), 20)
    assert station.terminate() == 0
