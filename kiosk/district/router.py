"""The district's durable router (``kiosk district route``): inbox → the best station.

Each record from ``{root}/{d}/inbox`` is committed to the SQLite store
(kiosk/district/store.py), given a station by `kiosk.district.routing.choose` (committed
too) and forwarded to that station's ``jobs`` topic with QoS 1. The inbox
message is acknowledged (``manual_ack``) only once the forward is confirmed
(PUBACK, or the station reported the job), in arrival order and on the
connection that delivered it. A forward unconfirmed at a crash goes again to
the *same* station, which ignores copies (record_id); a record a station
released goes to another one; one refused as ``not-accepting`` is routed
again. Station states and availability are subscribed at QoS 0, so they still
arrive while inbox records no station can take fill the broker's in-flight
window. With ``release_after_s``, a station online but unable to print for
that long is sent ``release``. With ``hold_ahead`` a station is sent no more
than that many records ahead (routing.HOLD_AHEAD): the backlog waits in the
store, where its inbox messages are acknowledged once committed while some
station can take records, and each record goes to the first station with room.
Its backlog (records waiting, records at each station) is retained on
``_router/state`` whenever it changes (`backlog_state`).
docs/district.md states the guarantees.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from collections import deque
from typing import NamedTuple

from kiosk.contract.mqtt import Credentials, connect_client, json_properties, make_client
from kiosk.contract.record import MAX_PAYLOAD_BYTES, known_record_id
from kiosk.district.client import json_object
from kiosk.district.routing import (
    HOLD_AHEAD,
    ReleaseClock,
    choose,
    is_station,
    plan,
    queue_length,
)
from kiosk.district.store import RouteStore

log = logging.getLogger(__name__)

TICK_S = 1.0
MAX_BATCH = 500


class _Message(NamedTuple):
    topic: str
    payload: bytes
    mid: int
    generation: int


class _Puback(NamedTuple):
    mid: int
    failed: bool


class _Inbox(NamedTuple):
    mid: int
    generation: int
    record_id: str | None  # None: unroutable, acknowledged when it is reached


_LINK_UP = "link-up"


class Router:
    """Routes one district's inbox to its stations; ``run()`` until ``stop()``.

        router = Router("mqtt://127.0.0.1:1883", "/var/lib/kiosk/router.db", district="3210")
        threading.Thread(target=router.run).start()
        ...
        router.stop()
    """

    def __init__(self, url: str, db_path: str, *, district: str = "3210",
                 root: str = "ektp/v1", client_id: str | None = None,
                 release_after_s: float | None = None, session_expiry_s: int = 7 * 86400,
                 credentials: Credentials | None = None,
                 hold_ahead: int | None = HOLD_AHEAD) -> None:
        self.url = url
        self.prefix = f"{root}/{district}"
        self.inbox_topic = f"{self.prefix}/inbox"
        self.own = f"{self.prefix}/_router"
        self.release_after_s, self.session_expiry_s = release_after_s, session_expiry_s
        self.hold_ahead = hold_ahead
        # The release clock is read ten times within its delay (a fast bench), at most 1/s.
        self.tick_s = min(TICK_S, release_after_s / 10) if release_after_s else TICK_S
        self.states: dict[str, dict] = {}
        self.availability: dict[str, str] = {}
        self._events: queue.Queue[object] = queue.Queue()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._generation, self._connected, self._recovered = 0, False, False
        self._inbox: deque[_Inbox] = deque()
        self._inflight: dict[int, str] = {}  # forward mid -> record_id
        # Decided inside a transaction, carried out after its commit:
        self._forwards: list[tuple[str, str, bytes]] = []  # record_id, station, payload
        self._notes: list[dict] = []  # router events
        self._commands: list[str] = []  # stations to send `release`
        self._release_clock = ReleaseClock(release_after_s or 0.0)
        self._changed, self._next_tick = True, 0.0
        self._backlog_sent: dict | None = None  # the counts last retained on _router/state
        self.client = make_client(client_id or f"{district}-router", manual_ack=True,
                                  credentials=credentials, url=url)
        self.store = RouteStore(db_path)
        self.client.will_set(f"{self.own}/availability", b"offline", qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish

    # -- life cycle ---------------------------------------------------------------------

    def run(self) -> None:
        connect_client(self.client, self.url, session_expiry_s=self.session_expiry_s)
        self.client.loop_start()
        try:
            while not self._stop.is_set():
                self._step()
        finally:
            self._shutdown()

    def stop(self) -> None:
        """Ask `run` to end (any thread): it says ``offline`` and disconnects."""
        self._stop.set()
        self._events.put(None)

    def _shutdown(self) -> None:
        if self._connected:
            self.client.publish(f"{self.own}/availability", b"offline", qos=1,
                                retain=True).wait_for_publish(2)
        self.client.disconnect()
        self.client.loop_stop()
        self.store.close()

    # -- paho callbacks (network thread): everything goes through the queue -----------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused the router: %s", reason_code)
            return
        with self._lock:
            self._generation += 1
            self._connected = True
            self._backlog_sent = None  # retain it again on this connection
        client.subscribe([(self.inbox_topic, 1), (f"{self.prefix}/+/events", 1),
                          (f"{self.prefix}/+/state", 0), (f"{self.prefix}/+/availability", 0)])
        client.publish(f"{self.own}/availability", b"online", qos=1, retain=True)
        self._events.put(_LINK_UP)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        with self._lock:
            self._generation += 1
            self._connected = False
        log.warning("router lost the broker: %s", reason_code)

    def _on_message(self, client, userdata, message) -> None:
        mid = message.mid if message.qos else 0
        self._events.put(_Message(message.topic, message.payload, mid, self._generation))

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._events.put(_Puback(mid, reason_code.is_failure))

    # -- the loop: one transaction per batch, then what it decided ------------------------

    def _step(self) -> None:
        batch = self._take_batch()
        with self.store.transaction():
            for event in batch:
                self._handle(event)
            if time.monotonic() >= self._next_tick:
                self._next_tick = time.monotonic() + self.tick_s
                self._tick(time.monotonic())
            self._assign_waiting()
        self._send()
        self._publish_backlog()

    def _take_batch(self) -> list[object]:
        try:
            batch = [self._events.get(timeout=max(0.0, self._next_tick - time.monotonic()))]
        except queue.Empty:
            return []
        while len(batch) < MAX_BATCH and not self._events.empty():
            batch.append(self._events.get_nowait())
        return [event for event in batch if event is not None]

    def _handle(self, event: object) -> None:
        if isinstance(event, _Message):
            self._on_arrival(event)
        elif isinstance(event, _Puback):
            self._on_puback(event)
        elif event == _LINK_UP and not self._recovered:
            self._recovered = True  # forwards that may have left before a crash: same station
            again = [(rid, st, self.store.payload(rid)) for rid, st in self.store.assigned()]
            if again:
                log.warning("%d forwards unconfirmed at the last stop: sent again to the same"
                            " stations (they ignore copies)", len(again))
            self._forwards += again

    def _on_arrival(self, msg: _Message) -> None:
        if msg.topic == self.inbox_topic:
            self._take(msg)
            return
        if msg.mid:  # acked in arrival order, behind any inbox message still held (4.6)
            self._inbox.append(_Inbox(msg.mid, msg.generation, None))
        station, _, leaf = msg.topic[len(self.prefix) + 1:].partition("/")
        if not is_station(station):
            return
        if leaf == "availability":
            self.availability[station] = msg.payload.decode(errors="replace")
        elif leaf in ("state", "events"):
            body = json_object(msg.payload)
            if leaf == "events" and body and self.store.station_event(station, body) == "refused":
                self.states[station] = {**self.states.get(station, {}), "accepting_jobs": False}
            elif leaf == "state":
                self.states[station] = body or {}
        self._changed = True

    def _take(self, msg: _Message) -> None:
        body = json_object(msg.payload) if len(msg.payload) <= MAX_PAYLOAD_BYTES else None
        rid = known_record_id(body)
        if rid is None:
            detail = "not a JSON object with a valid record_id, or over 256 KiB"
            log.warning("inbox message dropped: %s", detail)
            self._note("rejected", record_id=None, error="unroutable", detail=detail)
        else:
            priority = body.get("priority", 0)
            priority = priority if type(priority) is int else 0
            if self.store.add(rid, priority, msg.payload):
                self._changed = True
        self._inbox.append(_Inbox(msg.mid, msg.generation, rid))

    def _on_puback(self, event: _Puback) -> None:
        rid = self._inflight.pop(event.mid, None)
        record = self.store.get(rid) if rid else None
        if record is None or record.status != "assigned":
            return
        if event.failed:  # the broker refused that station's topic: try another one
            log.error("broker refused the forward of %s to %s", rid, record.station)
            self.store.requeue(rid, f"broker refused the forward to {record.station}",
                               released_by=record.station)
            self._changed = True
        else:
            self.store.update(rid, status="forwarded")

    def _assign_waiting(self) -> None:
        if not self._changed:
            return
        self._changed = False
        if choose(self.availability, self.states, ahead=self.hold_ahead) is None:
            return
        chosen = plan(self.store.iter_waiting(), self.availability, self.states,
                      unconfirmed=self._unreported(), ahead=self.hold_ahead)
        for record, station in chosen:
            self.store.assign(record.record_id, station)
            self._forwards.append((record.record_id, station,
                                   self.store.payload(record.record_id)))
            self._note("routed", record_id=record.record_id, target=station,
                       attempt=record.attempts + 1)

    def _unreported(self) -> dict[str, int]:
        """Per station: our records there its last state does not count. Its events and
        its state travel apart (QoS 1 and 0): a ``pending`` event may arrive before the
        state that counts it, so the store's count of what it holds is a floor too."""
        unreported = self.store.unconfirmed()
        for station, held in self.store.holding().items():
            missing = held - queue_length(self.states.get(station))
            unreported[station] = max(unreported.get(station, 0), missing)
        return unreported

    def _tick(self, now: float) -> None:
        if not self.release_after_s:
            return
        due = self._release_clock.due(self.availability, self.states, now)
        for station in filter(self.store.unstarted_at, due):
            log.warning("%s cannot print: releasing its unstarted records", station)
            self._commands.append(station)
            self._note("release", target=station)

    # -- after the commit ---------------------------------------------------------------

    def _send(self) -> None:
        for rid, station, payload in self._forwards:
            info = self.client.publish(f"{self.prefix}/{station}/jobs", payload, qos=1,
                                       properties=json_properties())
            self._inflight[info.mid] = rid
        for station in self._commands:  # each release a request of its own (mqtt.md)
            request = json.dumps({"request_id": f"router-release-{uuid.uuid4()}"}).encode()
            self.client.publish(f"{self.prefix}/{station}/cmd/release", request, qos=1,
                                properties=json_properties())
        for note in self._notes:
            self.client.publish(f"{self.own}/events", json.dumps(note).encode(), qos=1,
                                properties=json_properties())
        self._forwards, self._commands, self._notes = [], [], []
        self._ack_inbox()

    def _ack_inbox(self) -> None:
        """Acknowledge messages in arrival order while the oldest one is settled.

        A station event is settled once committed. An inbox message is settled once
        forwarded, or committed and waiting only for room at stations that can take it;
        while no station can, it stays unacknowledged and the broker keeps the rest of
        the inbox. MQTT 5 (4.6) wants PUBACKs in arrival order, so an event waits behind
        a record still held; station states come at QoS 0, so the router still sees a
        station free up, and forwards, while acks wait.
        """
        unsettled = ("assigned",) if choose(self.availability, self.states) else (
            "waiting", "assigned")
        while self._inbox:
            head = self._inbox[0]
            if head.record_id is not None and head.generation == self._generation:
                record = self.store.get(head.record_id)
                if record is not None and record.status in unsettled:
                    return
            self._inbox.popleft()
            self._ack(head.mid, head.generation)

    def _ack(self, mid: int, generation: int) -> None:
        with self._lock:  # never on a newer connection than the one that delivered it
            if mid and generation == self._generation and self._connected:
                self.client.ack(mid, 1)

    def _publish_backlog(self) -> None:
        """Retain the backlog on ``_router/state`` when its counts changed (for the page)."""
        counts = backlog_state(self.store)
        if counts == self._backlog_sent or not self._connected:
            return
        body = {"schema": "ektp.router-state/1",
                "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **counts}
        self.client.publish(f"{self.own}/state", json.dumps(body).encode(), qos=1, retain=True,
                            properties=json_properties())
        self._backlog_sent = counts

    def _note(self, kind: str, **fields: object) -> None:
        ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self._notes.append({"schema": "ektp.router-event/1", "ts": ts, "type": kind, **fields})


def backlog_state(store: RouteStore) -> dict:
    """What the router holds that is not printed: ``waiting`` for a station, ``at_stations``."""
    return {"waiting": store.counts().get("waiting", 0), "at_stations": store.at_stations()}
