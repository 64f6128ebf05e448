"""Simulated stations that only speak MQTT: retained availability and state, job events.

For the district page's tests and bench (kiosk/district/web/): many stations
on one broker without a printer each. One paho connection publishes for all
of them (QoS 1), in the shapes of mqtt.md; `set` changes one station's state
and republishes it, as a station does on every change.

    fleet = Fleet(broker.url, [f"sim-{n:03d}" for n in range(500)]).start()
    fleet.set("sim-007", printer_state="stopped", printer_state_reasons=["media-jam-error"])
    fleet.complete("sim-007", "R-0001")
    fleet.close()
"""

from __future__ import annotations

import copy
import json
import threading
import uuid
from collections.abc import Iterable
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from kiosk.contract.timestamps import rfc3339


def idle_state(remaining: int | None = 200) -> dict:
    """A ready station's state document (mqtt.md, State) without its stamps."""
    return {
        "schema": "ektp.state/1", "printer_state": "idle", "printer_state_reasons": ["none"],
        "accepting_jobs": True, "queue": {"pending": 0, "held": 0, "processing": 0},
        "stock": {"remaining": remaining, "low_threshold": 50, "sensor_estimate": remaining,
                  "minutes_to_empty": None},
        "counters": {"printed": 0, "spoiled": 0, "rejected": 0}, "version": "sim",
    }


class Fleet:
    """Stations *names* of *district* on the broker at *url* (``mqtt://host:port``)."""

    def __init__(self, url: str, names: Iterable[str], *, district: str = "3210",
                 root: str = "ektp/v1") -> None:
        self.prefix = f"{root}/{district}"
        self.names = list(names)
        self.states = {name: idle_state() for name in self.names}
        self.boot_id = str(uuid.uuid4())
        self._seq = 0
        self._lock = threading.Lock()
        target = urlsplit(url)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                                  client_id=f"fleet-{self.boot_id[:8]}")
        self.client.connect(target.hostname or "127.0.0.1", target.port or 1883)
        self.client.loop_start()

    def start(self) -> Fleet:
        """Every station says online and publishes its state."""
        for name in self.names:
            self.availability(name, "online")
            self.publish_state(name)
        return self

    def close(self, timeout: float = 5.0) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def availability(self, name: str, link: str) -> mqtt.MQTTMessageInfo:
        return self.client.publish(f"{self.prefix}/{name}/availability", link.encode(), qos=1,
                                   retain=True)

    def set(self, name: str, **changes: object) -> mqtt.MQTTMessageInfo:
        """Change members of a station's state (nested dicts are merged) and publish it."""
        with self._lock:
            state = self.states[name]
            for key, value in changes.items():
                if isinstance(value, dict) and isinstance(state.get(key), dict):
                    state[key].update(value)
                else:
                    state[key] = value
        return self.publish_state(name)

    def publish_state(self, name: str) -> mqtt.MQTTMessageInfo:
        with self._lock:
            self._seq += 1
            body = {**copy.deepcopy(self.states[name]), "boot_id": self.boot_id,
                    "seq": self._seq, "ts": rfc3339()}
        return self.client.publish(f"{self.prefix}/{name}/state", json.dumps(body).encode(),
                                   qos=1, retain=True)

    def complete(self, name: str, record_id: str, **extra: object) -> mqtt.MQTTMessageInfo:
        """A job ``completed`` event (with *extra* members, e.g. to test what is dropped)."""
        with self._lock:
            self._seq += 1
            body = {"schema": "ektp.event/1", "boot_id": self.boot_id, "seq": self._seq,
                    "ts": rfc3339(), "type": "job", "record_id": record_id,
                    "job_state": "completed", "reasons": [], "detail": "", **extra}
        return self.client.publish(f"{self.prefix}/{name}/events", json.dumps(body).encode(),
                                   qos=1)
