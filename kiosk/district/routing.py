"""Which station of a district takes the next record, and which must release: no I/O.

Owns the eligibility rule and the ordering the router (kiosk/district/router.py) and
the ``watch`` table use, and the clock of the router's automatic ``release``.
A station can take a record when it is ``online``, has published a state,
accepts jobs, its printer is not ``stopped``, none of its printer-state
reasons is an ``*-error``, and its stock is not known to be empty
(``stock.remaining`` is null until a refill is booked: unknown counts as
possibly fine). Among those the shortest queue wins; a queue is what the
station's state says plus the records the router sent it that the station has
not reported yet, so a burst spreads instead of piling onto one station.
Ties go to the station name, so the choice is deterministic.

With *ahead* a station whose queue has reached that many records takes no more:
the rest wait at the router and go to whichever station frees a place first
(the router pulls for its printers rather than pushing the backlog out at once,
so a station that jams or goes away holds few records). `plan` gives the
assignments of a list of waiting records under these rules.

    choose({"st-1": "online"}, {"st-1": state}, exclude={"st-2"}, unconfirmed={"st-1": 2})
    plan(waiting, availability, states, unconfirmed={}, ahead=HOLD_AHEAD)

A station prints only the documents its state lists (mqtt.md, `documents`; a state
without the member is an E-KTP station): `takes_document(state, "kia")`.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any, Protocol, TypeVar

STATION_ID = re.compile(r"[a-z0-9-]{1,32}")

# Refusals that say nothing is wrong at the station itself (it is away or draining).
BENIGN = frozenset({"offline", "no-state", "not-accepting"})

# Records a station holds (printing + queued) before the router holds the rest back:
# the card printing and two behind it, so the next card is always spooled and rendered
# before the printer frees while the router's answer to a finished card is milliseconds.
HOLD_AHEAD = 3
# Seconds a station online but unable to print keeps its queued records before the
# router sends it `release` (with HOLD_AHEAD few records wait that long).
RELEASE_AFTER_S = 60.0


def is_station(name: str) -> bool:
    """Whether a topic level names a station (the router's own ``_router`` does not)."""
    return STATION_ID.fullmatch(name) is not None


def refusal(availability: str | None, state: Mapping[str, Any] | None) -> str | None:
    """Why this station cannot take a new record now, or None when it can.

    The answer is a short keyword: ``offline``, ``no-state``, ``not-accepting``,
    the first ``*-error`` reason, ``stopped``, or ``no-stock``.
    """
    if availability != "online":
        return "offline"
    if not state:
        return "no-state"
    if state.get("accepting_jobs") is not True:
        return "not-accepting"
    reasons = state.get("printer_state_reasons")
    listed = reasons if isinstance(reasons, list) else []
    errors = sorted(r for r in listed if isinstance(r, str) and r.endswith("-error"))
    if errors:
        return errors[0]
    if state.get("printer_state") == "stopped":
        return "stopped"
    remaining = _member(state, "stock").get("remaining")
    if isinstance(remaining, int) and remaining <= 0:
        return "no-stock"
    return None


def _member(document: Mapping[str, Any] | None, key: str) -> Mapping[str, Any]:
    """A nested object of a station's document, or {} (documents come off the network)."""
    value = (document or {}).get(key)
    return value if isinstance(value, Mapping) else {}


DEFAULT_DOCUMENTS = ("ektp",)  # mqtt.md / station.md: `documents` defaults to ["ektp"]


def takes_document(state: Mapping[str, Any] | None, document: str) -> bool:
    """Whether the station whose state this is prints `document` ("ektp", "kia"): its
    state's `documents`, or the E-KTP alone when the state says nothing (or nonsense;
    a station refuses a record it does not print with `wrong-document` all the same)."""
    listed = (state or {}).get("documents")
    if not (isinstance(listed, list) and listed and all(isinstance(d, str) for d in listed)):
        listed = DEFAULT_DOCUMENTS
    return document in listed


def is_faulted(availability: str | None, state: Mapping[str, Any] | None) -> bool:
    """Online but unable to print (error, stopped, empty): its queue is stuck there."""
    why = refusal(availability, state)
    return why is not None and why not in BENIGN


def queue_length(state: Mapping[str, Any] | None) -> int:
    """Jobs the station holds that are not finished: pending + held + processing."""
    queue = _member(state, "queue")
    return sum(n for key in ("pending", "held", "processing")
               if isinstance(n := queue.get(key, 0), int))


def choose(
    availability: Mapping[str, str],
    states: Mapping[str, Mapping[str, Any]],
    *,
    exclude: Collection[str] = (),
    unconfirmed: Mapping[str, int] | None = None,
    ahead: int | None = None,
    document: str | None = None,
) -> str | None:
    """The station that should take the next record (of *document*, when given: only a
    station that prints it), or None if no station can (or, with *ahead*, every station
    that could already holds that many)."""
    unconfirmed = unconfirmed or {}
    best: tuple[int, str] | None = None
    for name in availability.keys() | states.keys():
        if not is_station(name) or name in exclude:
            continue
        if document is not None and not takes_document(states.get(name), document):
            continue
        if refusal(availability.get(name), states.get(name)) is not None:
            continue
        key = (queue_length(states[name]) + unconfirmed.get(name, 0), name)
        if ahead is not None and key[0] >= ahead:
            continue
        if best is None or key < best:
            best = key
    return best[1] if best else None


class Waiting(Protocol):
    """A record without a station, as `plan` needs it."""

    @property
    def released_by(self) -> Collection[str]: ...

    @property
    def document(self) -> str: ...


W = TypeVar("W", bound=Waiting)


def plan(
    waiting: Iterable[W],
    availability: Mapping[str, str],
    states: Mapping[str, Mapping[str, Any]],
    *,
    unconfirmed: Mapping[str, int] | None = None,
    ahead: int | None = None,
) -> list[tuple[W, str]]:
    """(record, station) for each waiting record, in order, that a station takes now.

    Each choice counts the ones before it. It stops reading *waiting* as soon as no
    station has room, so the router can hand it a lazy read of a long backlog; a
    record every station with room has released is skipped (it waits).
    """
    loads = dict(unconfirmed or {})
    chosen: list[tuple[W, str]] = []
    for record in waiting:
        if choose(availability, states, unconfirmed=loads, ahead=ahead) is None:
            break
        station = choose(availability, states, exclude=record.released_by,
                         unconfirmed=loads, ahead=ahead, document=record.document)
        if station is not None:
            chosen.append((record, station))
            loads[station] = loads.get(station, 0) + 1
    return chosen


class ReleaseClock:
    """Which stations are due a ``release``: faulted (`is_faulted`) for *after* seconds,
    then again every *after* seconds while the fault lasts.

        clock = ReleaseClock(300)
        for station in clock.due(availability, states, time.monotonic()):
            ...  # send it `release` if it holds records that have not started
    """

    def __init__(self, after: float) -> None:
        self.after = after
        self._since: dict[str, float] = {}

    def due(self, availability: Mapping[str, str], states: Mapping[str, Mapping[str, Any]],
            now: float) -> list[str]:
        due = []
        for name in sorted(availability.keys() | states.keys()):
            if not (is_station(name) and is_faulted(availability.get(name), states.get(name))):
                self._since.pop(name, None)
            elif now - self._since.setdefault(name, now) >= self.after:
                self._since[name] = now
                due.append(name)
        return due
