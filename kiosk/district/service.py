"""The life of a district process on a persistent MQTT session (the router, the custody
keeper): paho's callbacks only queue what they hear, one thread takes it in batches
(`_step`, the process's own), and the availability topic says ``online``/``offline``.

    class Keeper(DistrictService):
        def subscriptions(self): return [(f"{self.prefix}/+/events", 1)]
        def _step(self): ...   # take a batch from self._events, commit, then ack
        def _close(self): ...  # its store
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any, NamedTuple

from kiosk.contract.mqtt import Credentials, connect_client, make_client

log = logging.getLogger(__name__)

LINK_UP = "link-up"  # queued on each new connection, after the subscriptions


class Message(NamedTuple):
    """A message heard, with the connection (generation) that must acknowledge it."""

    topic: str
    payload: bytes
    mid: int
    generation: int


class DistrictService:
    """Connect, `run` the loop until `stop`, say ``offline`` and close on the way out."""

    name = "service"  # for the journal: "the router", "the custody keeper"

    def __init__(self, url: str, *, prefix: str, own: str, client_id: str,
                 session_expiry_s: int, credentials: Credentials | None) -> None:
        self.url = url
        self.prefix = prefix
        self.own = own  # {root}/{district}/_router, _custody: its availability lives there
        self.session_expiry_s = session_expiry_s
        self._events: queue.Queue[object] = queue.Queue()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._generation, self._connected = 0, False
        self.client = make_client(client_id, manual_ack=True, credentials=credentials,
                                  url=url)
        self.client.will_set(f"{self.own}/availability", b"offline", qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    # -- what a process says of itself ---------------------------------------------------

    def subscriptions(self) -> list[tuple[str, int]]:
        raise NotImplementedError

    def _step(self) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        """Close what the process owns (its store), after the broker is left."""

    def _linked(self) -> None:
        """A new connection is up (paho's thread, under the lock)."""

    def _heard(self, message: Any, mid: int) -> object:
        """What goes on the queue for a message heard (paho's thread)."""
        return Message(message.topic, message.payload, mid, self._generation)

    # -- life cycle ----------------------------------------------------------------------

    def run(self) -> None:
        self._connect()
        try:
            while not self._stop.is_set():
                self._step()
        finally:
            self._shutdown()

    def stop(self) -> None:
        """Ask `run` to end (any thread): it says ``offline`` and disconnects."""
        self._stop.set()
        self._events.put(None)

    def _connect(self) -> None:
        # No Maximum Packet Size: Mosquitto 2.0.11 keeps the in-flight slot of a QoS 1
        # message it drops as too large, so twenty oversized station events would stall
        # the session for good. The broker's message_size_limit (docs/security.md) bounds
        # what arrives; each process refuses anything over its own limits.
        connect_client(self.client, self.url, session_expiry_s=self.session_expiry_s)
        self.client.loop_start()

    def _shutdown(self) -> None:
        if self._connected:
            self.client.publish(f"{self.own}/availability", b"offline", qos=1,
                                retain=True).wait_for_publish(2)
        self.client.disconnect()
        self.client.loop_stop()
        self._close()

    # -- paho callbacks (network thread): everything goes through the queue -------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused %s: %s", self.name, reason_code)
            return
        with self._lock:
            self._generation += 1
            self._connected = True
            self._linked()
        client.subscribe(self.subscriptions())
        client.publish(f"{self.own}/availability", b"online", qos=1, retain=True)
        self._events.put(LINK_UP)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        with self._lock:
            self._generation += 1
            self._connected = False
        log.warning("%s lost the broker: %s", self.name, reason_code)

    def _on_message(self, client, userdata, message) -> None:
        self._events.put(self._heard(message, message.mid if message.qos else 0))
