"""The station's MQTT 5 link to the district broker (mqtt.md, Connection).

A thin adapter over paho-mqtt: persistent session (``clean_start=False`` on
every connect, SessionExpiryInterval from config), QoS 1 subscriptions with
``manual_ack=True``, the ``offline`` Will, reconnect with back-off 1 s → 60 s
(paho's own loop). Each connection gets a new *generation* number: an ack is
sent only on the connection that delivered its message; after a reconnect the
broker redelivers and the spool dedupes.

Outbox items are handed to paho at most ``MAX_HANDED`` at a time and reported
`Delivered` when the broker's PUBACK arrives; paho itself resends what is in
flight after a reconnect. Only the station thread publishes, so events leave in
the outbox's order. Everything else it hears becomes an event.

Intake is bounded: the station asks for a Receive Maximum of ``RECEIVE_MAXIMUM``
unacknowledged messages, and the link holds itself to it even when the broker does
not (Mosquitto 2.0.11 sends a resumed backlog as fast as it can once acks flow,
docs/proofs.md). A message beyond the window waits in paho's network thread, so
the rest of the backlog stays in the socket and at the broker, not in memory. If
the station stops acknowledging for longer than ``stall_s`` (disk full), further
messages are refused, unacknowledged; once the station has caught up, the link
reconnects and the broker sends them again.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from kiosk.contract.mqtt import (
    Credentials,
    connect_client,
    json_properties,
    make_client,
    session_properties,
)
from kiosk.station.config import Config
from kiosk.station.core import events as ev
from kiosk.station.spool import OutboxItem

log = logging.getLogger(__name__)

RECEIVE_MAXIMUM = 32
# Messages in paho's hands at once (paho refuses a reused mid). Above the station's
# outbox window (kiosk/station/core/outbound.py), so that it only binds on direct publishes.
MAX_HANDED = 1000


_JSON = json_properties()  # read-only once made: paho only packs it


class MqttLink:
    """The broker connection of one station; events go to *emit*."""

    def __init__(self, config: Config, emit: Callable[[object], None], *,
                 stall_s: float | None = None) -> None:
        self.config = config
        self.emit = emit
        self.base = config.topic_base
        # Short enough that paho's loop still pings well within the keepalive.
        self.stall_s = config.mqtt.keepalive_s / 3 if stall_s is None else stall_s
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._unacked = 0  # messages of this connection emitted and not yet acked
        self._refused = 0  # messages of this connection left unacked for the broker to resend
        self._stopping = False
        self._life = threading.Lock()  # start, stop and the resuming reconnect
        self._generation = 0
        self._connected = False
        self._pending: dict[int, int | None] = {}  # mid -> outbox item id (None: direct)
        self._early: set[int] = set()  # PUBACKs that beat their publish() call
        self._handed: set[int] = set()
        self._waiting: deque[OutboxItem] = deque()
        self.client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        cfg = self.config.mqtt
        client = make_client(self.config.client_id, url=cfg.url, manual_ack=True,
                             credentials=Credentials.of(cfg), max_backoff_s=60)
        client.will_set(f"{self.base}/availability", b"offline", qos=1, retain=True)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        return client

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        with self._life:
            self._connect()

    def _connect(self) -> None:
        """Under ``_life``: connect in the background; paho's thread retries until it can."""
        cfg = self.config.mqtt
        # Receive Maximum: unacknowledged records the broker may push at once; without it an
        # MQTT 5 client offers 65,535. The link holds itself to it as well (_take_room).
        props = session_properties(cfg.session_expiry_s, receive_maximum=RECEIVE_MAXIMUM)
        connect_client(self.client, cfg.url, session_expiry_s=cfg.session_expiry_s,
                       keepalive=cfg.keepalive_s, clean_start=False, properties=props)
        self.client.loop_start()

    def stop(self) -> None:
        """Clean shutdown: say ``offline`` (retained) before leaving."""
        with self._room:
            self._stopping = True
            self._room.notify_all()
        with self._life:
            if self._connected:
                info = self.client.publish(f"{self.base}/availability", b"offline", qos=1,
                                           retain=True)
                info.wait_for_publish(timeout=2)
            self.client.disconnect()
            self.client.loop_stop()

    def _resume(self) -> None:
        """Reconnect, so that the broker sends again what the link refused."""
        with self._life:
            if self._stopping:
                return
            log.info("caught up: reconnecting for the messages refused meanwhile")
            self.client.disconnect()
            self.client.loop_stop()
            self._connect()

    @property
    def connected(self) -> bool:
        return self._connected

    # -- paho callbacks (network thread) ----------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused the connection: %s", reason_code)
            return
        with self._lock:
            self._new_connection()
            self._connected = True
            generation = self._generation
        client.subscribe([(f"{self.base}/jobs", 1), (f"{self.base}/cmd/+", 1)])
        log.info("connected to the broker (session present: %s)", flags.session_present)
        self.emit(ev.LinkUp(generation, bool(flags.session_present)))

    def _new_connection(self) -> None:
        """Under the lock: a new generation; the broker resends what the last one left."""
        self._generation += 1
        self._unacked = self._refused = 0
        self._room.notify_all()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        with self._lock:
            self._new_connection()
            self._connected = False
            generation = self._generation
        if reason_code.is_failure:
            log.warning("broker connection lost: %s", reason_code)
        else:
            log.info("disconnected from the broker")
        self.emit(ev.LinkDown(generation, str(reason_code)))

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        if message.qos and not self._take_room():
            return  # unacknowledged: the broker sends it again after the next reconnect
        props = message.properties
        self.emit(ev.MessageArrived(
            topic=message.topic,
            payload=message.payload,
            mid=message.mid if message.qos else 0,
            generation=self._generation,
            response_topic=getattr(props, "ResponseTopic", None),
            correlation=getattr(props, "CorrelationData", None),
        ))

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused publish %d: %s (dropped)", mid, reason_code)
        with self._lock:
            if mid not in self._pending:
                self._early.add(mid)
                return
            item_id = self._pending.pop(mid)
            self._handed.discard(item_id)  # delivered: forget it, or the set grows forever
        if item_id is not None:
            self.emit(ev.Delivered(item_id))
        # No pumping here: a publish from this thread could overtake one the station
        # thread is making, and events must leave in outbox order.

    def _take_room(self) -> bool:
        """Wait for room in the window of unacknowledged messages; False: refused."""
        with self._room:
            if not self._room.wait_for(
                    lambda: self._unacked < RECEIVE_MAXIMUM or self._stopping, self.stall_s):
                if not self._refused:
                    log.warning("the station is not acknowledging: messages are left at the "
                                "broker until it catches up")
                self._refused += 1
                return False
            self._unacked += 1
            return True

    # -- called from the station thread ----------------------------------------------------

    def ack(self, mid: int, generation: int) -> None:
        """PUBACK *mid*, but only on the connection that delivered it."""
        with self._room:
            if not (mid and generation == self._generation and self._connected):
                return
            self.client.ack(mid, 1)
            self._unacked -= 1
            self._room.notify()
            resume = self._refused > 0 and self._unacked == 0
            if resume:
                self._refused = 0
        if resume:
            threading.Thread(target=self._resume, name="mqtt-resume", daemon=True).start()

    def publish(self, topic: str, payload: bytes, *, retain: bool = True) -> None:
        """A direct QoS 1 publish (retained state, availability)."""
        props = _JSON if payload.startswith(b"{") else None
        info = self.client.publish(topic, payload, qos=1, retain=retain, properties=props)
        self._track(info, None)
        self._pump()

    def send(self, items: Iterable[OutboxItem], *, again: bool = False) -> None:
        """Hand outbox items to the broker; each is reported `Delivered` on PUBACK."""
        with self._lock:
            for item in items:
                if again or item.id not in self._handed:
                    self._handed.add(item.id)
                    self._waiting.append(item)
        self._pump()

    def _pump(self) -> None:
        while True:
            with self._lock:
                if not self._waiting or len(self._pending) >= MAX_HANDED:
                    return
                item = self._waiting.popleft()
            # Building paho's Properties costs more than the publish: share the plain one.
            props = _JSON if item.response is None else json_properties(item.response)
            info = self.client.publish(item.topic, item.payload, qos=1, properties=props)
            if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
                with self._lock:
                    self._waiting.appendleft(item)
                return
            self._track(info, item.id)

    def _track(self, info: mqtt.MQTTMessageInfo, item_id: int | None) -> None:
        with self._lock:
            if info.mid in self._early:
                self._early.discard(info.mid)
            else:
                self._pending[info.mid] = item_id
                return
        if item_id is not None:
            self.emit(ev.Delivered(item_id))
