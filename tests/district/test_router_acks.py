"""The router's PUBACKs leave in arrival order (MQTT 5, 4.6), against a real Mosquitto."""

from __future__ import annotations

import json
import sqlite3
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import DISTRICT, wait_until
from tests.district.test_router import RouterThread
from tests.station.netcut import NetCut


def test_a_station_event_is_not_acked_ahead_of_an_inbox_record_still_held(
    tmp_path, broker, district, signed
):
    """No station can print, so the inbox record waits unacknowledged; a station event
    that arrives after it must wait too: a cut line brings both back."""
    with NetCut(broker.port) as relay:
        router_thread = RouterThread(broker, tmp_path / "router.db", district)
        router = router_thread.router
        router.url = relay.url  # the router's line goes through the relay
        heard: list[str] = []
        original = router.client.on_message

        def counting(client, userdata, message) -> None:
            heard.append(message.topic)
            original(client, userdata, message)

        router.client.on_message = counting
        with router_thread:
            district.send_inbox(signed(1))
            event_topic = f"ektp/v1/{DISTRICT}/st-9/events"
            district.client.publish(event_topic, json.dumps({"type": "job"}).encode(),
                                    qos=1).wait_for_publish(5)
            assert wait_until(lambda: heard.count(event_topic) == 1, 10)
            time.sleep(0.5)  # the router has committed it; an ack would have gone by now
            relay.reset()
            assert wait_until(lambda: heard.count(event_topic) == 2, 15), (
                "the event was acked ahead of the inbox record held before it")


class SilentStation:
    """Online, accepting, and silent: it takes the records it is sent and says nothing."""

    def __init__(self, broker, name: str) -> None:
        self.base = f"ektp/v1/{DISTRICT}/{name}"
        self.received: list[str] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{DISTRICT}-{name}",
                                  protocol=mqtt.MQTTv5)
        self.client.on_message = lambda c, u, m: self.received.append(m.topic)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        self.client.subscribe(f"{self.base}/jobs", 1)
        state = {"printer_state": "idle", "accepting_jobs": True,
                 "queue": {"pending": 0, "held": 0, "processing": 0}}
        self.client.publish(f"{self.base}/state", json.dumps(state), qos=1, retain=True)
        self.client.publish(f"{self.base}/availability", b"online", qos=1,
                            retain=True).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_at_each_inbox_ack_another_connection_already_sees_the_record_stored(
    tmp_path, broker, district
):
    """Issue 23, 10b: an inbox record is acknowledged only once its commit is durable,
    including the records held back at the router while a station has room (acked once
    committed, with no forward's PUBACK to wait for). Another SQLite connection looks at
    each ack as it leaves."""
    db = tmp_path / "router.db"
    station = SilentStation(broker, "st-1")
    seen: list[tuple[str, str | None]] = []  # (record_id, its status as another reader sees it)
    try:
        router_thread = RouterThread(broker, db, district, hold_ahead=1)
        router = router_thread.router
        inbox: dict[int, str] = {}
        heard = router.client.on_message

        def hearing(client, userdata, message) -> None:
            if message.topic == router.inbox_topic:
                inbox[message.mid] = json.loads(message.payload)["record_id"]
            heard(client, userdata, message)

        acking = router.client.ack

        def acked(mid: int, qos: int):
            if mid in inbox:
                with sqlite3.connect(db) as other:
                    row = other.execute("SELECT status FROM records WHERE record_id = ?",
                                        (inbox[mid],)).fetchone()
                seen.append((inbox[mid], row[0] if row else None))
            return acking(mid, qos)

        router.client.on_message = hearing
        router.client.ack = acked
        with router_thread:
            district.send_inbox({"schema": "ektp.record/1", "record_id": "R-0"})
            assert wait_until(lambda: len(seen) == 1, 10)  # forwarded: acked after its PUBACK
            for n in range(1, 5):  # no room left at st-1: held back, acked once committed
                district.send_inbox({"schema": "ektp.record/1", "record_id": f"R-{n}"})
            assert wait_until(lambda: len(seen) == 5, 10), seen
    finally:
        station.close()
    assert all(status is not None for _, status in seen), (
        f"acked before another connection could see the record: {seen}")
    assert sorted(status for _, status in seen).count("waiting") == 4  # held back, acked
