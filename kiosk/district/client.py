"""The district side of the MQTT contract, as a client library.

`DistrictClient` publishes print-ready records to stations or to the district
inbox (where the router takes them), sends commands (MQTT 5 request/response:
ResponseTopic + CorrelationData) and keeps what the stations publish: the
latest retained state and availability of each, and every event in arrival
order. The demo, the tests, the benches and the ``kiosk district`` commands
all speak to stations through it; the paho set-up itself is `kiosk.contract.mqtt`'s.
What stations publish is untrusted (kiosk/district/inputs.py): a message that is not a
JSON object within the limits is kept out of ``states`` and ``events``, counted per
station in ``invalid`` and, for a state, its reason kept in ``invalid_states``; nothing
a station sends can stop the client's thread.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable

import paho.mqtt.client as mqtt

from kiosk.contract.mqtt import (
    Credentials,
    connect_client,
    json_properties,
    make_client,
)
from kiosk.district import inputs
from kiosk.district.routing import is_station

_JSON = json_properties()  # read-only once made: paho only packs it


class CommandTimeout(TimeoutError):
    pass


class Refused(RuntimeError):
    """The broker answered a publish with a failure reason code (MQTT 5 PUBACK, 3.4.2.1)."""

    def __init__(self, topic: str, reason: str) -> None:
        super().__init__(f"the broker refused the message to {topic}: {reason}")
        self.topic, self.reason = topic, reason


class DistrictClient:
    """Speaks to every station of one district on one broker.

    ``persistent=True`` keeps a broker session (QoS 1 subscriptions survive
    disconnects, so events sent while this client was away still arrive).
    ``keep_events=False`` keeps states and availability only (for long watches).
    Topics below ``{root}/{district}/`` that are not station ids (the router's
    ``_router``) are kept under their own name too.
    """

    def __init__(
        self,
        url: str,
        *,
        district: str = "3210",
        root: str = "ektp/v1",
        client_id: str | None = None,
        persistent: bool = True,
        credentials: Credentials | None = None,
        keep_events: bool = True,
    ) -> None:
        self.district = district
        self.prefix = f"{root}/{district}"
        self.inbox_topic = f"{self.prefix}/inbox"
        self.client_id = client_id or f"district-{uuid.uuid4().hex[:12]}"
        self.reply_topic = f"{self.prefix}/_replies/{self.client_id}"
        self.keep_events = keep_events
        self.events: list[dict] = []
        self.states: dict[str, dict] = {}
        self.availability: dict[str, str] = {}
        self.invalid: dict[str, int] = {}  # station -> messages that were not valid JSON
        self.invalid_states: dict[str, str] = {}  # station -> why its state was refused
        self._why = ""
        self.last_message_at = 0.0
        self._replies: dict[bytes, dict] = {}
        # The last PUBACK reason code of each message id (paho's info does not keep it).
        self._pubacks: dict[int, mqtt.ReasonCode] = {}
        self._cond = threading.Condition()
        self._connected = threading.Event()
        self.client = make_client(self.client_id, url=url, credentials=credentials)
        self.client.reconnect_delay_set(1, 4)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.client.on_disconnect = lambda *args: self._connected.clear()
        connect_client(self.client, url, session_expiry_s=3600 if persistent else 0)
        self.client.loop_start()

    def wait_connected(self, timeout: float = 10.0) -> DistrictClient:
        """Wait until connected and subscribed (records and commands sent now are seen)."""
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
        if reason_code.is_failure:
            return
        client.subscribe([
            (f"{self.prefix}/+/events", 1),
            (f"{self.prefix}/+/state", 1),
            (f"{self.prefix}/+/availability", 1),
            (self.reply_topic, 1),
        ])

    def _on_subscribe(self, *args: object) -> None:
        self.last_message_at = time.monotonic()  # retained messages follow the SUBACK
        self._connected.set()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        # Called before paho marks the message published: `confirm` finds it here.
        with self._cond:
            self._pubacks[mid] = reason_code

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        station, _, leaf = message.topic[len(self.prefix) + 1:].partition("/")
        with self._cond:
            self.last_message_at = time.monotonic()
            if message.topic == self.reply_topic:
                correlation = getattr(message.properties, "CorrelationData", b"")
                self._replies[correlation] = json_object(message.payload) or {}
            elif leaf == "availability":
                self.availability[station] = inputs.text(
                    message.payload[:64].decode(errors="replace"), 16)
            elif leaf == "state":
                self._state(station, message.payload)
            elif leaf == "events" and self.keep_events:
                body = self._checked(station, message.payload)
                if body is not None:
                    self.events.append({**body, "station": station})
            self._cond.notify_all()

    def _state(self, station: str, payload: bytes) -> None:
        if not payload:  # retained state cleared
            self.states.pop(station, None)
            self.invalid_states.pop(station, None)
            return
        body = self._checked(station, payload)
        if body is None:
            self.states.pop(station, None)
            self.invalid_states[station] = self._why
        else:
            self.states[station] = body
            self.invalid_states.pop(station, None)

    def _checked(self, station: str, payload: bytes) -> dict | None:
        try:
            return inputs.parse_object(payload)
        except inputs.Invalid as why:
            self.invalid[station] = self.invalid.get(station, 0) + 1
            self._why = str(why)
            return None

    # -- talking to stations -------------------------------------------------------------

    def topic(self, station: str, leaf: str) -> str:
        return f"{self.prefix}/{station}/{leaf}"

    def publish(self, topic: str, payload: dict | bytes) -> mqtt.MQTTMessageInfo:
        """QoS 1 JSON publish without waiting; ``.wait_for_publish()`` waits for PUBACK."""
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self.client.publish(topic, data, qos=1, properties=_JSON)

    def confirm(self, info: mqtt.MQTTMessageInfo, topic: str, timeout: float = 10.0) -> None:
        """Wait for *info*'s PUBACK: `TimeoutError` without one, `Refused` if it says no."""
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise TimeoutError(f"the broker did not confirm a message to {topic} "
                               f"within {timeout} s")
        with self._cond:
            reason = self._pubacks.pop(info.mid, None)
        if reason is not None and reason.is_failure:
            raise Refused(topic, f"{reason} (0x{reason.value:02x})")

    def publish_record(self, station: str, record: dict | bytes, timeout: float = 10.0) -> float:
        """Send one record to a station (QoS 1) and `confirm` it; returns time.monotonic()
        before it left."""
        sent_at = time.monotonic()
        topic = self.topic(station, "jobs")
        self.confirm(self.publish(topic, record), topic, timeout)
        return sent_at

    def send_inbox(self, record: dict | bytes, timeout: float = 10.0) -> float:
        """Send one record to the district inbox, for the router; as `publish_record`."""
        sent_at = time.monotonic()
        self.confirm(self.publish(self.inbox_topic, record), self.inbox_topic, timeout)
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

    def settle(self, quiet: float = 0.3, timeout: float = 3.0) -> None:
        """Wait until nothing arrived for *quiet* seconds (retained messages are in)."""
        deadline = time.monotonic() + timeout
        self._connected.wait(timeout)
        while time.monotonic() < deadline:
            if time.monotonic() - self.last_message_at >= quiet:
                return
            time.sleep(quiet / 3)

    def stations(self) -> list[str]:
        """Station ids seen (availability or state), sorted."""
        with self._cond:
            return sorted(name for name in self.availability.keys() | self.states.keys()
                          if is_station(name))

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


def json_object(payload: bytes) -> dict | None:
    """The payload as a JSON object within kiosk.district.inputs' limits, or None."""
    try:
        return inputs.parse_object(payload, max_bytes=1024 * 1024)
    except inputs.Invalid:
        return None
