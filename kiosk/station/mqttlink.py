"""The station's MQTT 5 link to the district broker (mqtt.md, Connection).

A thin adapter over paho-mqtt: persistent session (``clean_start=False`` on
every connect, SessionExpiryInterval from config), QoS 1 subscriptions with
``manual_ack=True``, the ``offline`` Will, reconnect with back-off 1 s → 60 s
(paho's own loop). Each connection gets a new *generation* number: an ack is
sent only on the connection that delivered its message; after a reconnect the
broker redelivers and the spool dedupes.

Outbox items are handed to paho at most ``MAX_HANDED`` at a time, and only while
connected (paho would queue them in memory, without bound, for the whole outage);
they are reported `Delivered` when the broker's PUBACK arrives with a success code.
A PUBACK with a failure code (quota exceeded, not authorized) keeps the item: it is
sent again with back-off (1 s doubling to 60 s). paho itself resends what is in
flight after a reconnect. The retained state is published only while connected:
the next connection gets a fresh one anyway. Only the station thread publishes, so
events leave in the outbox's order. Everything else it hears becomes an event.

PUBACKs leave in the order their messages arrived (MQTT 5, 4.6), whatever order
the station finishes them in: a record held back (disk full) holds back the acks of
what came after it. A failed connection attempt is logged with its cause (TLS,
refused, DNS, not authorized) and reported as `LinkFailed`.

Intake is bounded: the station asks for a Receive Maximum of ``RECEIVE_MAXIMUM``
unacknowledged messages, and the link holds itself to it even when the broker does
not (Mosquitto 2.0.11 sends a resumed backlog as fast as it can once acks flow,
docs/proofs.md). A message beyond the window waits in paho's network thread, so
the rest of the backlog stays in the socket and at the broker, not in memory. If
the station stops acknowledging for longer than ``stall_s`` (disk full), further
messages are refused, unacknowledged (every later one of that connection too, so that
acks stay in order); once the station has caught up, the link reconnects and the
broker sends them again. The station asks the broker for a Maximum Packet Size: a
message far beyond the record limit is dropped by the broker, never read into memory.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from kiosk.contract.acks import InOrderAcks
from kiosk.contract.mqtt import (
    Credentials,
    connect_client,
    json_properties,
    make_client,
    session_properties,
)
from kiosk.contract.record import MAX_PAYLOAD_BYTES
from kiosk.station.config import Config
from kiosk.station.core import events as ev
from kiosk.station.spool import OutboxItem

log = logging.getLogger(__name__)

RECEIVE_MAXIMUM = 32
# Messages in paho's hands at once (paho refuses a reused mid). Above the station's
# outbox window (kiosk/station/core/outbound.py), so that it only binds on direct publishes.
MAX_HANDED = 1000
# What the broker may send us: a record at its limit, with room for topic and properties.
MAX_PACKET = MAX_PAYLOAD_BYTES + 64 * 1024
RETRY_FIRST_S, RETRY_MAX_S = 1.0, 60.0
# paho took the message: sent now, or (the line dropped this instant) on its reconnect.
TAKEN = (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN)


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
        self._pending: dict[int, OutboxItem | None] = {}  # mid -> outbox item (None: direct)
        self._early: dict[int, bool] = {}  # PUBACKs that beat their publish() call: ok?
        self._handed: set[int] = set()
        self._waiting: deque[OutboxItem] = deque()
        self._retry: deque[tuple[float, OutboxItem]] = deque()  # refused by the broker
        self._tries: dict[int, int] = {}  # outbox item id -> refusals so far
        self._order = InOrderAcks()  # mids of this connection, acked in arrival order
        self.client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        cfg = self.config.mqtt
        client = make_client(self.config.client_id, url=cfg.url, manual_ack=True,
                             credentials=Credentials.of(cfg), max_backoff_s=60)
        client.will_set(f"{self.base}/availability", b"offline", qos=1, retain=True)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
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
        props = session_properties(cfg.session_expiry_s, receive_maximum=RECEIVE_MAXIMUM,
                                   maximum_packet_size=MAX_PACKET)
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
            log.error("broker %s refused the connection: %s", self.config.mqtt.url, reason_code)
            self.emit(ev.LinkFailed(f"refused by the broker: {reason_code}"))
            return
        with self._lock:
            self._new_connection()
            self._connected = True
            generation = self._generation
        client.subscribe([(f"{self.base}/jobs", 1), (f"{self.base}/cmd/+", 1)])
        log.info("connected to the broker (session present: %s)", flags.session_present)
        self.emit(ev.LinkUp(generation, bool(flags.session_present)))

    def _on_connect_fail(self, client, userdata) -> None:
        # paho calls this inside its ``except OSError``: the exception is the cause.
        cause = sys.exc_info()[1]
        text = f"{type(cause).__name__}: {cause}" if cause else "connection failed"
        log.error("cannot connect to the broker %s: %s", self.config.mqtt.url, text)
        self.emit(ev.LinkFailed(text))

    def _new_connection(self) -> None:
        """Under the lock: a new generation; the broker resends what the last one left."""
        self._generation += 1
        self._unacked = self._refused = 0
        self._order.reset()
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
        if message.qos and not self._take_room(message.mid):
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
        with self._lock:
            if mid not in self._pending:
                self._early[mid] = not reason_code.is_failure
                return
            item = self._pending.pop(mid)
        self._settle(item, not reason_code.is_failure, str(reason_code))

    def _settle(self, item: OutboxItem | None, ok: bool, reason: str = "") -> None:
        """The broker answered a publish: delivered, or to be sent again later."""
        if item is None:
            if not ok:
                log.warning("broker refused a direct publish: %s", reason)
            return
        if not ok:
            with self._lock:
                tries = self._tries.get(item.id, 0) + 1
                self._tries[item.id] = tries
                delay = min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** (tries - 1))
                self._retry.append((time.monotonic() + delay, item))
            log.warning("broker refused outbox item %d: %s (again in %.0f s)",
                        item.id, reason, delay)
            return
        with self._lock:
            self._handed.discard(item.id)  # delivered: forget it, or the set grows forever
            self._tries.pop(item.id, None)
        self.emit(ev.Delivered(item.id))
        # No pumping here: a publish from this thread could overtake one the station
        # thread is making, and events must leave in outbox order.

    def _take_room(self, mid: int) -> bool:
        """Wait for room in the window of unacknowledged messages; False: refused.

        Once one message of a connection is refused, so is every later one: their acks
        could not go out before the refused message's, which never comes.
        """
        with self._room:
            if self._refused or not self._room.wait_for(
                    lambda: self._unacked < RECEIVE_MAXIMUM or self._stopping, self.stall_s):
                if not self._refused:
                    log.warning("the station is not acknowledging: messages are left at the "
                                "broker until it catches up")
                self._refused += 1
                return False
            self._unacked += 1
            self._order.arrived(mid)
            return True

    # -- called from the station thread ----------------------------------------------------

    def ack(self, mid: int, generation: int) -> None:
        """PUBACK *mid*, only on the connection that delivered it, in arrival order."""
        with self._room:
            if not (mid and generation == self._generation and self._connected):
                return
            for first in self._order.finished(mid):
                self.client.ack(first, 1)
                self._unacked -= 1
            self._room.notify()
            resume = self._refused > 0 and self._unacked == 0
            if resume:
                self._refused = 0
        if resume:
            threading.Thread(target=self._resume, name="mqtt-resume", daemon=True).start()

    def publish(self, topic: str, payload: bytes, *, retain: bool = True) -> None:
        """A direct QoS 1 publish (retained state, availability), only while connected."""
        if self._connected:
            props = _JSON if payload.startswith(b"{") else None
            info = self.client.publish(topic, payload, qos=1, retain=retain, properties=props)
            if info.rc in TAKEN:
                self._track(info, None)
            else:
                log.info("not published (%s): %s", mqtt.error_string(info.rc), topic)
        self._pump()

    def retry_due(self, now: float | None = None) -> None:
        """Outbox items the broker refused go again once their back-off is over."""
        now = time.monotonic() if now is None else now
        with self._lock:
            while self._retry and self._retry[0][0] <= now:
                self._waiting.append(self._retry.popleft()[1])
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
        """Hand waiting outbox items to paho, in order, while connected and within bounds."""
        while True:
            with self._lock:
                if not (self._waiting and self._connected) or len(self._pending) >= MAX_HANDED:
                    return
                item = self._waiting.popleft()
            # Building paho's Properties costs more than the publish: share the plain one.
            props = _JSON if item.response is None else json_properties(item.response)
            info = self.client.publish(item.topic, item.payload, qos=1, properties=props)
            if info.rc not in TAKEN:
                # Not taken (paho's queue is full): it goes again, first, when it can be.
                with self._lock:
                    self._waiting.appendleft(item)
                return
            self._track(info, item)

    def _track(self, info: mqtt.MQTTMessageInfo, item: OutboxItem | None) -> None:
        with self._lock:
            if info.mid not in self._early:
                self._pending[info.mid] = item
                return
            ok = self._early.pop(info.mid)
        self._settle(item, ok)
