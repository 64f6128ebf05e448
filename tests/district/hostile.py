"""The rig of the hostile-station tests (issue 24): the district's documented ACL on a real
Mosquitto, station identities that publish what they like on their own topics, the router
in a thread. The fixtures are in tests/district/conftest.py."""

from __future__ import annotations

import json
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from kiosk.contract.mqtt import Credentials
from kiosk.district.client import DistrictClient
from kiosk.district.router import Router
from kiosk.ops.pki import station_username
from tests.conftest import DISTRICT

PREFIX = f"ektp/v1/{DISTRICT}"
TOOLS = [f"district-{DISTRICT}", f"district-{DISTRICT}-router", f"district-{DISTRICT}-web"]


class Station:
    """A station's MQTT identity: ``honest`` prints every job it gets at once; `jam`
    publishes a real station's state of a card jammed in its printer."""

    def __init__(self, broker, name: str, *, honest: bool) -> None:
        self.name, self.base, self.honest = name, f"{PREFIX}/{name}", honest
        self.received: list[str] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                  client_id=station_username(DISTRICT, name),
                                  protocol=mqtt.MQTTv5)
        self.client.username_pw_set(station_username(DISTRICT, name))
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        self.client.subscribe(f"{self.base}/jobs", 1)
        self.state()
        self.publish("availability", b"online", retain=True)

    def publish(self, leaf: str, payload: bytes, *, retain: bool = False) -> None:
        info = self.client.publish(f"{self.base}/{leaf}", payload, qos=1, retain=retain)
        info.wait_for_publish(5)
        assert info.is_published()

    def state(self, **members: object) -> None:
        body = {"printer_state": "idle", "printer_state_reasons": ["none"],
                "accepting_jobs": self.honest,
                "queue": {"pending": 0, "held": 0, "processing": 0}, **members}
        self.publish("state", json.dumps(body).encode(), retain=True)

    def jam(self) -> None:
        self.state(printer_state="stopped", printer_state_reasons=["media-jam-error"])

    def job(self, rid: str, job_state: str) -> None:
        self.publish("events", json.dumps({"type": "job", "record_id": rid,
                                           "job_state": job_state, "reasons": []}).encode())

    def _on_message(self, client, userdata, message) -> None:
        rid = json.loads(message.payload)["record_id"]
        self.received.append(rid)
        if self.honest:
            threading.Thread(target=self._print, args=(rid,), daemon=True).start()

    def _print(self, rid: str) -> None:
        for job_state in ("pending", "processing", "completed"):
            self.job(rid, job_state)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class RouterRun:
    """The router in a thread of this process, as ``district-3210-router``."""

    def __init__(self, broker, db, office: DistrictClient) -> None:
        self.router = Router(broker.url, str(db), district=DISTRICT,
                             credentials=Credentials(username=TOOLS[1]))
        self.office = office
        self.thread = threading.Thread(target=self.router.run, daemon=True)

    def __enter__(self) -> Router:
        self.office.availability.pop("_router", None)
        self.thread.start()
        assert self.office.wait_for(lambda: self.office.availability.get("_router") == "online",
                                    10)
        return self.router

    def __exit__(self, *exc: object) -> None:
        self.router.stop()
        self.thread.join(10)
        assert not self.thread.is_alive(), "the router did not stop"
