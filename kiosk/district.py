"""The district side of the MQTT contract, as a client library.

`DistrictClient` publishes print-ready records to stations, sends commands
(MQTT 5 request/response: ResponseTopic + CorrelationData) and keeps what the
stations publish: the latest retained state and availability of each, and
every event in arrival order. The demo, the tests, the benches and the
``kiosk district`` commands all speak to stations through it.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from kiosk.mqttlink import json_properties


class CommandTimeout(TimeoutError):
    pass


class DistrictClient:
    """Speaks to every station of one district on one broker.

    ``persistent=True`` keeps a broker session (QoS 1 subscriptions survive
    disconnects, so events sent while this client was away still arrive).
    """

    def __init__(
        self,
        url: str,
        *,
        district: str = "3210",
        root: str = "ektp/v1",
        client_id: str | None = None,
        persistent: bool = True,
    ) -> None:
        self.district = district
        self.prefix = f"{root}/{district}"
        self.client_id = client_id or f"district-{uuid.uuid4().hex[:12]}"
        self.reply_topic = f"{self.prefix}/_replies/{self.client_id}"
        self.events: list[dict] = []
        self.states: dict[str, dict] = {}
        self.availability: dict[str, str] = {}
        self._replies: dict[bytes, dict] = {}
        self._cond = threading.Condition()
        self._connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                                  protocol=mqtt.MQTTv5)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = lambda *args: self._connected.clear()
        self.client.reconnect_delay_set(1, 4)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600 if persistent else 0
        target = urlsplit(url)
        self.client.connect_async(target.hostname or "127.0.0.1", target.port or 1883,
                                  clean_start=not persistent, properties=props)
        self.client.loop_start()

    def wait_connected(self, timeout: float = 10.0) -> DistrictClient:
        if not self._connected.wait(timeout):
            raise TimeoutError("district client could not connect to the broker")
        return self

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> DistrictClient:
        return self.wait_connected()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- paho callbacks ----------------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        client.subscribe([
            (f"{self.prefix}/+/events", 1),
            (f"{self.prefix}/+/state", 1),
            (f"{self.prefix}/+/availability", 1),
            (self.reply_topic, 1),
        ])
        self._connected.set()

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        parts = message.topic.split("/")
        station, leaf = parts[-2], parts[-1]
        with self._cond:
            if message.topic == self.reply_topic:
                correlation = getattr(message.properties, "CorrelationData", b"")
                self._replies[correlation] = json.loads(message.payload)
            elif leaf == "availability":
                self.availability[station] = message.payload.decode()
            elif leaf == "state":
                self.states[station] = json.loads(message.payload)
            elif leaf == "events":
                self.events.append({"station": station, **json.loads(message.payload)})
            self._cond.notify_all()

    # -- talking to stations -------------------------------------------------------------

    def topic(self, station: str, leaf: str) -> str:
        return f"{self.prefix}/{station}/{leaf}"

    def publish_record(self, station: str, record: dict | bytes, timeout: float = 10.0) -> float:
        """Send one record (QoS 1); returns time.monotonic() just before it left."""
        payload = record if isinstance(record, bytes) else json.dumps(record).encode()
        sent_at = time.monotonic()
        info = self.client.publish(self.topic(station, "jobs"), payload, qos=1,
                                   properties=json_properties())
        info.wait_for_publish(timeout)
        return sent_at

    def command(self, station: str, name: str, args: dict | None = None,
                timeout: float = 10.0) -> dict:
        """Send a command and wait for its reply."""
        correlation = uuid.uuid4().bytes
        props = json_properties(correlation)
        props.ResponseTopic = self.reply_topic
        self.client.publish(self.topic(station, f"cmd/{name}"), json.dumps(args or {}).encode(),
                            qos=1, properties=props)
        if not self.wait_for(lambda: correlation in self._replies, timeout):
            raise CommandTimeout(f"no reply to {name} from {station} within {timeout} s")
        with self._cond:
            return self._replies.pop(correlation)

    # -- watching --------------------------------------------------------------------

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.2))
            return True

    def job_events(self, record_id: str) -> list[dict]:
        with self._cond:
            return [e for e in self.events if e["type"] == "job" and e["record_id"] == record_id]

    def job_states(self, record_id: str) -> list[str]:
        return [e["job_state"] for e in self.job_events(record_id)]

    def final_state(self, record_id: str) -> str | None:
        states = self.job_states(record_id)
        return states[-1] if states else None

    def events_of(self, kind: str) -> list[dict]:
        with self._cond:
            return [e for e in self.events if e["type"] == kind]
