"""``kiosk district custody keep``: every station's ``blank`` events into the register.

A service like the router (kiosk/district/router.py): persistent session
(``clean_start`` false, 7 days), ``{root}/{d}/+/events`` at QoS 1 with manual
acknowledgements, sent in arrival order, only after the batch they came in is committed
(WAL, ``synchronous=FULL``), and never on a newer connection than the one that delivered
them: a crash or a broker outage loses nothing, and what the broker delivers again is kept
once (register.py). Every payload is untrusted: one that is not a valid blank event is
acknowledged, its reason written to the journal, and nothing else is affected.

A blank whose UID is in no manifest raises ``foreign-blank-warning``: in the journal, on
``{root}/{d}/_custody/events`` (for the pages) and at the station, as the command
``foreign-blank`` (request/response with a request id, owed in the register until the
station answers, sent again on every new connection), once per station and UID: the
later events of that blank (the station declaring it invalid) are flagged foreign in the
register without telling the station again, which would raise a warning that nothing
could clear. A UID used twice raises
``duplicate-uid`` in the journal and on ``_custody/events``.
"""

from __future__ import annotations

import json
import logging
import time
from typing import NamedTuple

from kiosk.contract.mqtt import Credentials, json_properties
from kiosk.contract.timestamps import rfc3339
from kiosk.district.custody.blank import BadBlank, NotBlank, parse_blank
from kiosk.district.custody.register import Register
from kiosk.district.routing import is_station
from kiosk.district.service import LINK_UP, DistrictService, Message

log = logging.getLogger(__name__)

MAX_BATCH = 500
FOREIGN_COMMAND = "foreign-blank"
EVENT_SCHEMA = "ektp.custody-event/1"


class _Reply(NamedTuple):
    correlation: bytes
    payload: bytes
    mid: int
    generation: int




class Keeper(DistrictService):
    """Keeps one district's blank events in the register at *db_path*; ``run()`` until
    ``stop()``.

        keeper = Keeper("mqtt://127.0.0.1:1883", "/var/lib/kiosk/custody.db", district="3210")
        threading.Thread(target=keeper.run).start()
        ...
        keeper.stop()
    """

    def __init__(self, url: str, db_path: str, *, district: str = "3210",
                 root: str = "ektp/v1", client_id: str | None = None,
                 session_expiry_s: int = 7 * 86400,
                 credentials: Credentials | None = None) -> None:
        client_id = client_id or f"{district}-custody"
        super().__init__(url, prefix=f"{root}/{district}", own=f"{root}/{district}/_custody",
                         client_id=client_id, session_expiry_s=session_expiry_s,
                         credentials=credentials)
        self.client_id = client_id
        self.reply_topic = f"{self.prefix}/_replies/{self.client_id}"
        self.rejected = 0  # payloads refused since start (tests, the journal's summary)
        self._notices: list[tuple[str, str, str, str | None]] = []  # sent after the commit
        self._notes: list[dict] = []
        self._journal = _JournalWindow()
        self.register = Register(db_path)

    # -- what the service base asks of it -------------------------------------------------

    name = "the custody keeper"

    def subscriptions(self) -> list[tuple[str, int]]:
        return [(f"{self.prefix}/+/events", 1), (self.reply_topic, 1)]

    def _heard(self, message, mid: int) -> object:
        if message.topic == self.reply_topic:
            correlation = getattr(message.properties, "CorrelationData", b"") or b""
            return _Reply(correlation, message.payload, mid, self._generation)
        return super()._heard(message, mid)

    def _close(self) -> None:
        self.register.close()

    # -- the loop: one transaction per batch, then what it decided -------------------------

    def _step(self) -> None:
        batch = self._take_batch()
        if not batch:
            return
        with self.register.transaction():
            for event in batch:
                self._handle(event)
        self._send()
        for event in batch:  # in arrival order, all settled by the commit above
            if isinstance(event, Message | _Reply):
                self._ack(event.mid, event.generation)

    def _take_batch(self) -> list[object]:
        batch = [self._events.get()]
        while len(batch) < MAX_BATCH and not self._events.empty():
            batch.append(self._events.get_nowait())
        return [event for event in batch if event is not None]

    def _handle(self, event: object) -> None:
        if isinstance(event, Message):
            self._keep(event)
        elif isinstance(event, _Reply):
            self._on_reply(event)
        elif event == LINK_UP:
            self._notices += self.register.unanswered()  # again on every new connection

    def _keep(self, msg: Message) -> None:
        station, _, leaf = msg.topic[len(self.prefix) + 1:].partition("/")
        if leaf != "events" or not is_station(station):
            return
        try:
            blank = parse_blank(msg.payload)
        except NotBlank:
            return
        except BadBlank as error:
            self.rejected += 1
            if self._journal.allows(station):
                log.warning("blank event from %s rejected: %s", station, error)
            return
        kept = self.register.add(station, blank)
        if kept.status != "new":
            return
        self._journal.flush()
        where = f"{blank.uid} at {station} ({blank.outcome}, record {blank.record_id or '-'})"
        if kept.foreign and blank.uid and not self.register.noticed(station, blank.uid):
            log.warning("foreign-blank-warning: %s is in no manifest the district received",
                        where)
            request_id = self.register.owe_notice(station, blank.uid, blank.record_id)
            self._notices.append((request_id, station, blank.uid, blank.record_id))
            self._note("foreign-blank-warning", station, blank.uid, blank.record_id,
                       "in no manifest the district received")
        if kept.duplicate:
            log.warning("duplicate-uid: %s: %s", where, kept.duplicate)
            self._note("duplicate-uid", station, blank.uid, blank.record_id, kept.duplicate)

    def _on_reply(self, reply: _Reply) -> None:
        request_id = reply.correlation.decode(errors="replace")
        body = reply.payload.decode(errors="replace")
        if self.register.answered(request_id, body):
            log.info("station answered %s: %s", request_id, body[:200])

    # -- after the commit ---------------------------------------------------------------

    def _send(self) -> None:
        for request_id, station, uid, record_id in self._notices:
            props = json_properties(request_id.encode())
            props.ResponseTopic = self.reply_topic
            body = {"request_id": request_id, "uid": uid, "record_id": record_id,
                    "detail": "this blank's UID is in no shipment manifest of the district"}
            self.client.publish(f"{self.prefix}/{station}/cmd/{FOREIGN_COMMAND}",
                                json.dumps(body).encode(), qos=1, properties=props)
        for note in self._notes:
            self.client.publish(f"{self.own}/events", json.dumps(note).encode(), qos=1,
                                properties=json_properties())
        self._notices, self._notes = [], []

    def _ack(self, mid: int, generation: int) -> None:
        with self._lock:  # never on a newer connection than the one that delivered it
            if mid and generation == self._generation and self._connected:
                self.client.ack(mid, 1)

    def _note(self, kind: str, station: str, uid: str | None, record_id: str | None,
              detail: str) -> None:
        ts = rfc3339()
        self._notes.append({"schema": EVENT_SCHEMA, "ts": ts, "type": kind, "station": station,
                            "uid": uid, "record_id": record_id, "detail": detail})


class _JournalWindow:
    """How much of a flood of bad events reaches the journal: the first LIMIT of each
    station in a WINDOW_S, then one line saying how many more there were."""

    LIMIT, WINDOW_S = 20, 60.0

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._since = time.monotonic()

    def allows(self, station: str) -> bool:
        self.flush()
        self._counts[station] = self._counts.get(station, 0) + 1
        return self._counts[station] <= self.LIMIT

    def flush(self) -> None:
        if time.monotonic() - self._since < self.WINDOW_S:
            return
        for station, count in self._counts.items():
            if count > self.LIMIT:
                log.warning("%d more blank events from %s rejected in the last %.0f s (not"
                            " each written)", count - self.LIMIT, station, self.WINDOW_S)
        self._counts, self._since = {}, time.monotonic()
