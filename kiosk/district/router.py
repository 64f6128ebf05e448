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
The decisions are `kiosk.district.routecore.RouterCore`'s; this module is its paho
adapter (one thread feeding it, inside one store transaction per batch, then publishing
what it decided and acking what it settled, after the commit).
docs/district.md states the guarantees.
"""

from __future__ import annotations

import json
import logging
import queue
import time
from typing import NamedTuple

from kiosk.contract.mqtt import Credentials, json_properties
from kiosk.contract.timestamps import rfc3339
from kiosk.district.routecore import RouterCore
from kiosk.district.routing import HOLD_AHEAD
from kiosk.district.service import LINK_UP, DistrictService, Message
from kiosk.district.store import RouteStore

log = logging.getLogger(__name__)

TICK_S = 1.0
MAX_BATCH = 500
_JSON = json_properties()  # read-only once made: paho only packs it


class _Puback(NamedTuple):
    mid: int
    failed: bool


class Router(DistrictService):
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
        super().__init__(url, prefix=f"{root}/{district}", own=f"{root}/{district}/_router",
                         client_id=client_id or f"{district}-router",
                         session_expiry_s=session_expiry_s, credentials=credentials)
        self.inbox_topic = f"{self.prefix}/inbox"
        # The release clock is read ten times within its delay (a fast bench), at most 1/s.
        self.tick_s = min(TICK_S, release_after_s / 10) if release_after_s else TICK_S
        self._next_tick = 0.0
        self._backlog_sent: dict | None = None  # the counts last retained on _router/state
        self.store = RouteStore(db_path)
        self.core = RouterCore(self.store, hold_ahead=hold_ahead,
                               release_after_s=release_after_s)
        self.client.on_publish = self._on_publish

    @property
    def states(self) -> dict[str, dict]:
        return self.core.states

    @property
    def availability(self) -> dict[str, str]:
        return self.core.availability

    # -- what the service base asks of it -------------------------------------------------

    name = "the router"

    def subscriptions(self) -> list[tuple[str, int]]:
        return [(self.inbox_topic, 1), (f"{self.prefix}/+/events", 1),
                (f"{self.prefix}/+/state", 0), (f"{self.prefix}/+/availability", 0)]

    def _linked(self) -> None:
        self._backlog_sent = None  # retain it again on this connection

    def _close(self) -> None:
        self.store.close()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._events.put(_Puback(mid, reason_code.is_failure))

    # -- the loop: one transaction per batch, then what it decided ------------------------

    def _step(self) -> None:
        batch = self._take_batch()
        try:
            with self.store.transaction():
                for event in batch:
                    self._handle(event)
                if time.monotonic() >= self._next_tick:
                    self._next_tick = time.monotonic() + self.tick_s
                    self.core.tick(time.monotonic())
                self.core.assign()
        except Exception:  # said, then on: nothing is acked that was not committed
            log.exception("a batch of %d messages failed and was rolled back: reconnecting"
                          " so that the broker sends them again", len(batch))
            self.core.rolled_back()
            self._reconnect()
            return
        self._send()
        self._ack()
        self._publish_backlog()

    def _reconnect(self) -> None:
        """A new connection: the broker sends again every message not acked on this one."""
        self._stop.wait(1.0)  # a failing disk is not retried in a tight loop
        self.client.disconnect()
        self.client.loop_stop()
        self._connect()

    def _take_batch(self) -> list[object]:
        try:
            batch = [self._events.get(timeout=max(0.0, self._next_tick - time.monotonic()))]
        except queue.Empty:
            return []
        while len(batch) < MAX_BATCH and not self._events.empty():
            batch.append(self._events.get_nowait())
        return [event for event in batch if event is not None]

    def _handle(self, event: object) -> None:
        if isinstance(event, Message):
            if event.topic == self.inbox_topic:
                self.core.inbox(event.payload, event.mid, event.generation)
            else:
                station, _, leaf = event.topic[len(self.prefix) + 1:].partition("/")
                self.core.station_message(station, leaf, event.payload, event.mid,
                                          event.generation)
        elif isinstance(event, _Puback):
            self.core.puback(event.mid, event.failed)
        elif event == LINK_UP:
            self.core.link_up()

    # -- after the commit ---------------------------------------------------------------

    def _send(self) -> None:
        outbox = self.core.take_outbox()
        for rid, station, payload in outbox.forwards:
            info = self.client.publish(f"{self.prefix}/{station}/jobs", payload, qos=1,
                                       properties=_JSON)
            self.core.forwarded(info.mid, rid)
        for station, request in outbox.releases:  # each release a request of its own
            self.client.publish(f"{self.prefix}/{station}/cmd/release", request, qos=1,
                                properties=_JSON)
        for note in outbox.notes:
            self.client.publish(f"{self.own}/events", note, qos=1, properties=_JSON)

    def _ack(self) -> None:
        generation, mids = self.core.acks_due()
        with self._lock:  # never on a newer connection than the one that delivered it
            if generation != self._generation or not self._connected:
                return
            for mid in mids:
                self.client.ack(mid, 1)

    def _publish_backlog(self) -> None:
        """Retain the backlog on ``_router/state`` when its counts changed (for the page)."""
        counts = self.core.backlog()
        if counts == self._backlog_sent or not self._connected:
            return
        body = {"schema": "ektp.router-state/1",
                "ts": rfc3339(), **counts}
        self.client.publish(f"{self.own}/state", json.dumps(body).encode(), qos=1, retain=True,
                            properties=_JSON)
        self._backlog_sent = counts

