"""The router pulls for its printers (issue 18): a station is sent at most HOLD_AHEAD
records, the backlog waits in the router's store with its inbox messages acknowledged,
and each freed place is filled at once. On a real Mosquitto with scripted stations."""

from __future__ import annotations

import json
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from kiosk.district.routing import HOLD_AHEAD
from kiosk.district.store import RouteStore
from tests.conftest import DISTRICT, wait_until
from tests.district.test_router import PREFIX, RouterThread, record_like


class HoldingStation:
    """Spools every job it gets and prints only when told (`finish`), publishing its
    queue in its state after each change, as a station does."""

    def __init__(self, broker, name: str) -> None:
        self.name, self.base = name, f"{PREFIX}/{name}"
        self.received: list[str] = []
        self.queue: list[str] = []
        self.seq = 0
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{DISTRICT}-{name}",
                                  protocol=mqtt.MQTTv5)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.publish(f"{self.base}/availability", b"offline", qos=1,
                            retain=True).wait_for_publish(5)
        self.client.disconnect()
        self.client.loop_stop()

    def finish(self) -> None:
        """The card printing comes out; the next in the queue starts."""
        rid = self.queue.pop(0)
        self._event("job", record_id=rid, job_state="completed", reasons=[], detail="")
        self._state()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        client.subscribe(f"{self.base}/jobs", 1)
        self._state()
        client.publish(f"{self.base}/availability", b"online", qos=1, retain=True)

    def _on_message(self, client, userdata, message) -> None:
        rid = json.loads(message.payload)["record_id"]
        self.received.append(rid)
        self.queue.append(rid)
        self._event("job", record_id=rid, job_state="pending", reasons=[], detail="spooled")
        self._state()

    def _state(self) -> None:
        printing = min(1, len(self.queue))
        state = {"schema": "ektp.state/1", "printer_state": "processing" if printing else "idle",
                 "printer_state_reasons": ["none"], "accepting_jobs": True,
                 "queue": {"pending": len(self.queue) - printing, "held": 0,
                           "processing": printing},
                 "stock": {"remaining": None, "low_threshold": 50, "sensor_estimate": None}}
        self.client.publish(f"{self.base}/state", json.dumps(state), qos=1, retain=True)

    def _event(self, kind: str, **body: object) -> None:
        self.seq += 1
        event = {"schema": "ektp.event/1", "boot_id": "holding", "seq": self.seq,
                 "ts": "2026-01-01T00:00:00Z", "type": kind, **body}
        self.client.publish(f"{self.base}/events", json.dumps(event), qos=1)


def redelivered(broker, client_id: str, wait: float = 1.0) -> int:
    """Inbox messages the broker still holds unacknowledged for the router's session."""
    got: list[str] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5, manual_ack=True)
    client.on_message = lambda c, u, message: got.append(message.topic)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    client.connect("127.0.0.1", broker.port, clean_start=False, properties=props)
    client.loop_start()
    time.sleep(wait)
    client.disconnect()
    client.loop_stop()
    return len(got)


def test_a_station_holds_at_most_its_share_ahead_and_the_backlog_waits_acknowledged(
    tmp_path, broker, district, signed
):
    stations = [HoldingStation(broker, name) for name in ("hold-1", "hold-2")]
    records = [record_like(signed, i) for i in range(1, 31)]  # past the in-flight window
    db = tmp_path / "router.db"
    try:
        with RouterThread(broker, db, district):
            assert district.wait_for(lambda: all(
                district.availability.get(s.name) == "online" for s in stations), 5)
            for record in records:
                district.send_inbox(record)
            assert wait_until(lambda: sum(RouteStore(db).counts().values()) == 30, 10)
            assert wait_until(lambda: all(len(s.received) == HOLD_AHEAD for s in stations), 10)
            time.sleep(0.3)  # nothing more goes out while both are full
            assert [len(s.received) for s in stations] == [HOLD_AHEAD, HOLD_AHEAD]
            stations[0].finish()  # a place frees: the next waiting record fills it
            assert wait_until(lambda: len(stations[0].received) == HOLD_AHEAD + 1, 5)
            time.sleep(0.3)
            assert len(stations[1].received) == HOLD_AHEAD
            first_out = [r["record_id"] for r in records[:2 * HOLD_AHEAD + 1]]
            assert sorted(stations[0].received + stations[1].received) == sorted(first_out)
        counts = RouteStore(db).counts()
        assert counts["waiting"] == 30 - 2 * HOLD_AHEAD - 1
        # The backlog is the router's now (committed): the broker keeps none of it.
        assert redelivered(broker, f"{DISTRICT}-router") == 0
    finally:
        for station in stations:
            station.close()


def test_the_backlog_is_read_a_page_at_a_time_in_priority_then_arrival_order(tmp_path):
    store = RouteStore(tmp_path / "r.db")
    with store.transaction():
        for index in range(250):
            store.add(f"r-{index}", 1 if index % 10 == 3 else 0, b"{}")
        store.assign("r-5", "st-1")
    expected = [f"r-{i}" for i in range(250) if i % 10 == 3]
    expected += [f"r-{i}" for i in range(250) if i % 10 != 3 and i != 5]
    assert [r.record_id for r in store.iter_waiting(page=7)] == expected
    assert [r.record_id for r in store.waiting()] == expected
    pages = store.iter_waiting(page=7)
    first = [next(pages).record_id for _ in range(3)]
    with store.transaction():  # the reader may write between pages
        store.assign(first[0], "st-2")
    assert first == expected[:3]
    store.close()
