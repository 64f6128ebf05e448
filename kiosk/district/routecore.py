"""The router's decisions as plain objects: messages in, what to send and to ack out.

`RouterCore` owns what ``kiosk district route`` decides and nothing of how: no paho, no
SQLite. The adapter (kiosk/district/router.py) feeds it, inside one transaction of the
store, the messages, PUBACKs and connection changes paho reported; after the commit it
carries out `take_outbox` (forwards, ``release`` commands, router events) and acks the
ids `acks_due` gives, in that order, since an ack may only leave once what it settles is
durable. The store is reached through `Book`, which kiosk/district/store.py's
`RouteStore` implements over SQLite (and a test may implement in memory).

What it decides:

- an inbox record is read with limits (`kiosk.district.inputs`, `priority` within
  PRIORITY_RANGE), committed, given a station by `kiosk.district.routing` and forwarded;
  one it cannot read is refused with a router event saying why;
- a station message is untrusted input: an invalid one is journaled (per station, at
  most JOURNAL_EVERY lines a burst) and changes nothing; a station speaks only of its own
  records (`RouteStore.station_event`): anything else is a ``station-lied`` event naming it;
- acknowledgements leave in arrival order (`kiosk.contract.acks.InOrderAcks`): a station
  event once committed, an inbox record once forwarded, or committed while some station
  can take records.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

from kiosk.contract.acks import InOrderAcks
from kiosk.contract.documents import DEFAULT_DOCUMENTS, document_of
from kiosk.contract.record import MAX_PAYLOAD_BYTES
from kiosk.contract.timestamps import rfc3339
from kiosk.district import inputs
from kiosk.district.routing import ReleaseClock, choose, is_station, plan, queue_length

log = logging.getLogger("kiosk.district.router")

PRIORITY_RANGE = (-1_000_000, 1_000_000)
JOURNAL_EVERY = 100  # after the first 10 refusals of a station, one line in this many


class Book(Protocol):
    """The router's durable memory as the core uses it (kiosk/district/store.py)."""

    def transaction(self) -> AbstractContextManager[None]: ...
    def add(self, record_id: str, priority: int, payload: bytes) -> bool: ...
    def get(self, record_id: str): ...
    def payload(self, record_id: str) -> bytes: ...
    def iter_waiting(self) -> Iterator: ...
    def assigned(self) -> list[tuple[str, str]]: ...
    def unconfirmed(self) -> dict[str, int]: ...
    def holding(self) -> dict[str, int]: ...
    def unstarted_at(self, station: str) -> int: ...
    def at_stations(self) -> dict[str, int]: ...
    def counts(self) -> dict[str, int]: ...
    def assign(self, record_id: str, station: str) -> None: ...
    def update(self, record_id: str, *, status: str, detail: str = "") -> None: ...
    def requeue(self, record_id: str, detail: str, *, released_by: str | None = None) -> None: ...
    def station_event(self, station: str, event: inputs.Event) -> str | None: ...


@dataclass
class Outbox:
    """What one step decided to send, once its transaction is committed."""

    forwards: list[tuple[str, str, bytes]] = field(default_factory=list)  # rid, station, body
    releases: list[tuple[str, bytes]] = field(default_factory=list)  # station, request
    notes: list[bytes] = field(default_factory=list)  # router events (JSON)


@dataclass
class _Held:
    mid: int
    record_id: str | None  # None: settled once committed


class RouterCore:
    """The routing and acknowledging of one district; see the module docstring.

        core = RouterCore(store, hold_ahead=3, release_after_s=60)
        with store.transaction():
            core.message(topic_leaf, station, payload, mid, generation)  # and so on
            core.assign()
        outbox = core.take_outbox()          # publish these
        generation, mids = core.acks_due()   # then ack these
    """

    def __init__(self, store: Book, *, hold_ahead: int | None,
                 release_after_s: float | None) -> None:
        self.store = store
        self.hold_ahead = hold_ahead
        self.release_after_s = release_after_s
        self.states: dict[str, dict] = {}
        self.availability: dict[str, str] = {}
        self.invalid: dict[str, int] = {}  # station -> messages refused
        self.lies: dict[str, int] = {}  # station -> station-lied warnings
        self.generation = 0
        self._order = InOrderAcks()
        self._held: list[_Held] = []  # this connection's messages not yet finished, in order
        self._inflight: dict[int, str] = {}  # forward mid -> record_id
        self._outbox = Outbox()
        self._release_clock = ReleaseClock(release_after_s or 0.0)
        self._recovered = False
        self.changed = True

    # -- inputs, inside the store's transaction ------------------------------------------

    def link_up(self) -> None:
        """Connected: forwards unconfirmed at the last stop go again to the same station."""
        if self._recovered:
            return
        self._recovered = True
        again = [(rid, st, self.store.payload(rid)) for rid, st in self.store.assigned()]
        if again:
            log.warning("%d forwards unconfirmed at the last stop: sent again to the same"
                        " stations (they ignore copies)", len(again))
        self._outbox.forwards += again

    def inbox(self, payload: bytes, mid: int, generation: int) -> None:
        """A record from the district's inbox."""
        rid = None
        try:
            body = inputs.parse_object(payload, max_bytes=MAX_PAYLOAD_BYTES)
            rid = _record_id(body)
            priority = _priority(body)
            document = _document(body)
        except inputs.Invalid as why:
            detail = f"not routable: {why}"
            log.warning("inbox message dropped (%s): %s", rid or "no record_id", detail)
            self._note("rejected", record_id=rid, error="unroutable", detail=detail)
            self._track(mid, generation, None)
            return
        if self.store.add(rid, priority, payload, document):
            self.changed = True
        self._track(mid, generation, rid)

    def station_message(self, station: str, leaf: str, payload: bytes, mid: int,
                        generation: int) -> None:
        """A station's availability, state or event: read as untrusted input."""
        self._track(mid, generation, None)
        if not is_station(station) or leaf not in ("availability", "state", "events"):
            return
        self.changed = True
        try:
            if leaf == "availability":
                self.availability[station] = inputs.availability(payload)
            elif leaf == "state":
                checked = inputs.state(payload)
                self.states[station] = checked.as_dict()
                if checked.refused:  # kept without those members; said all the same
                    self._refused(station, leaf, inputs.Invalid(
                        "members refused: " + ", ".join(checked.refused)))
            else:
                self._event(station, inputs.event(payload))
        except inputs.Invalid as why:
            self._refused(station, leaf, why)
            if leaf == "state":
                self.states[station] = {}  # no state it can be chosen by
            elif leaf == "availability":
                self.availability[station] = "offline"

    def _event(self, station: str, event: inputs.Event) -> None:
        outcome = self.store.station_event(station, event)
        if outcome == "refused":
            self.states[station] = {**self.states.get(station, {}), "accepting_jobs": False}
        elif outcome == "completed":
            self._note("completed", record_id=event.record_id, target=station)
        elif outcome == "misrouted":
            self._note("misrouted", record_id=event.record_id, target=station)
        elif outcome == "lied":
            self.lies[station] = self.lies.get(station, 0) + 1
            detail = (f"{station} reported {event.type} {event.job_state or event.error or ''}"
                      f" for {event.record_id}, which was never sent to it").replace("  ", " ")
            if _journal(self.lies[station]):
                log.warning("station-lied: %s (%d so far)", detail, self.lies[station])
            self._note("station-lied", record_id=event.record_id, target=station,
                       detail=detail)

    def _refused(self, station: str, leaf: str, why: inputs.Invalid) -> None:
        count = self.invalid[station] = self.invalid.get(station, 0) + 1
        if _journal(count):
            log.warning("invalid %s from station %s, ignored: %s (%d invalid messages so far)",
                        leaf, station, why, count)

    def puback(self, mid: int, failed: bool) -> None:
        """The broker's answer to one of our forwards."""
        rid = self._inflight.pop(mid, None)
        record = self.store.get(rid) if rid else None
        if record is None or record.status != "assigned":
            return
        if failed:  # the broker refused that station's topic: try another one
            log.error("broker refused the forward of %s to %s", rid, record.station)
            self.store.requeue(rid, f"broker refused the forward to {record.station}",
                               released_by=record.station)
            self.changed = True
        else:
            self.store.update(rid, status="forwarded")

    def tick(self, now: float) -> None:
        """The release clock: stations unable to print too long give their records back."""
        if not self.release_after_s:
            return
        due = self._release_clock.due(self.availability, self.states, now)
        for station in filter(self.store.unstarted_at, filter(self._has_peer, due)):
            log.warning("%s cannot print: releasing its unstarted records", station)
            request = json.dumps({"request_id": f"router-release-{uuid.uuid4()}"}).encode()
            self._outbox.releases.append((station, request))
            self._note("release", target=station)

    def _has_peer(self, station: str) -> bool:
        """Whether another station prints what *station* prints: the only station of a
        kind keeps its records through a fault (released, they could go nowhere else and
        would wait for good) and prints them once it clears."""
        own = set(self.states.get(station, {}).get("documents") or DEFAULT_DOCUMENTS)
        return any(own & set(state.get("documents") or DEFAULT_DOCUMENTS)
                   for name, state in self.states.items() if name != station and state)

    def assign(self) -> None:
        """Give waiting records to stations with room (after a change only)."""
        if not self.changed:
            return
        self.changed = False
        if choose(self.availability, self.states, ahead=self.hold_ahead) is None:
            return
        chosen = plan(self.store.iter_waiting(), self.availability, self.states,
                      unconfirmed=self._unreported(), ahead=self.hold_ahead)
        for record, station in chosen:
            self.store.assign(record.record_id, station)
            self._outbox.forwards.append((record.record_id, station,
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

    def rolled_back(self) -> None:
        """The step's transaction failed: what it decided is void, and no message of this
        connection is acked any more (the adapter reconnects; the broker sends them again)."""
        self._outbox = Outbox()
        self._order.reset()
        self._held.clear()
        self.generation += 1  # messages still to come from this connection are not tracked
        self.changed = True

    # -- outputs, after the commit -----------------------------------------------------

    def take_outbox(self) -> Outbox:
        outbox, self._outbox = self._outbox, Outbox()
        return outbox

    def forwarded(self, mid: int, record_id: str) -> None:
        """The adapter handed a forward to the broker as *mid* (its PUBACK follows)."""
        self._inflight[mid] = record_id

    def acks_due(self) -> tuple[int, list[int]]:
        """(generation, mids) to acknowledge now, oldest first; call after the commit.

        A station event is settled once committed. An inbox message is settled once
        forwarded, or committed and waiting only for room at stations that can take it;
        while no station can, it stays unacknowledged and the broker keeps the rest of
        the inbox. A station event waits behind a record still held; station states come
        at QoS 0, so the router still sees a station free up, and forwards, while acks wait.
        """
        unsettled = ("assigned",) if choose(self.availability, self.states) else (
            "waiting", "assigned")
        due: list[int] = []
        while self._held:
            head = self._held[0]
            if head.record_id is not None:
                record = self.store.get(head.record_id)
                if record is not None and record.status in unsettled:
                    break
            self._held.pop(0)
            due += self._order.finished(head.mid)
        return self.generation, due

    def backlog(self) -> dict:
        """What the router holds that is not printed: ``waiting``, ``at_stations``, the
        waiting per document, and the documents that wait with no station printing them."""
        by_document = self.store.waiting_by_document()
        printed_here = {doc for name, state in self.states.items() if state
                        for doc in state.get("documents") or DEFAULT_DOCUMENTS}
        return {"waiting": self.store.counts().get("waiting", 0),
                "at_stations": self.store.at_stations(),
                "waiting_by_document": by_document,
                "no_printer": sorted(doc for doc in by_document if doc not in printed_here)}

    # -- helpers ---------------------------------------------------------------------

    def _track(self, mid: int, generation: int, record_id: str | None) -> None:
        """Remember a QoS 1 message for its ack, on the connection that delivered it."""
        if not mid or generation < self.generation:
            return  # QoS 0, or a connection gone: the broker sends it again
        if generation > self.generation:
            self.generation = generation
            self._order.reset()
            self._held.clear()
        self._order.arrived(mid)
        self._held.append(_Held(mid, record_id))

    def _note(self, kind: str, **fields: object) -> None:
        ts = rfc3339()
        body = {"schema": "ektp.router-event/1", "ts": ts, "type": kind, **fields}
        self._outbox.notes.append(json.dumps(body).encode())


def _record_id(body: dict) -> str:
    rid = body.get("record_id")
    if not (isinstance(rid, str) and inputs.RECORD_ID.fullmatch(rid)):
        raise inputs.Invalid("no valid record_id (1-64 of [A-Za-z0-9._-])")
    return rid


def _document(body: dict) -> str:
    document = document_of(body)
    if document is None:
        raise inputs.Invalid(f"schema {inputs.text(str(body.get('schema')), 40)!r} is no"
                             " document a station prints")
    return document


def _priority(body: dict) -> int:
    priority = body.get("priority", 0)
    low, high = PRIORITY_RANGE
    if isinstance(priority, bool) or not isinstance(priority, int) or not low <= priority <= high:
        raise inputs.Invalid(f"priority must be an integer {low}..{high}")
    return priority


def _journal(count: int) -> bool:
    """Whether the *count*-th refusal of a station is written to the journal: the first
    ten, then one in JOURNAL_EVERY (a flood must not fill the disk with lines)."""
    return count <= 10 or count % JOURNAL_EVERY == 0
