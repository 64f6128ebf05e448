"""The district view the web page shows: what stations and the router publish, folded.

`DistrictView` takes MQTT messages (topic, payload) and the broker link's
ups and downs, and answers `document()` (``GET /api/district``, the shape of
station.md) and `history()` (the page's plots: cards per hour over the last
day, each station's stock). No network here: the tests feed it messages.

Every station message is untrusted (kiosk/district/inputs.py): one that cannot be read
is counted against its station (``invalid_messages``, shown on the page) and changes
nothing else; a state member out of range is refused on its own (``refused``) and the
rest kept; a state that is no JSON object leaves the station shown as ``state_invalid``.
One station can therefore never break the document, nor another station's card.

The forecast rests on the router's word where there is a router: the cards per hour
are the completions the router accepted (``_router/events`` ``completed``: a record it
sent to that very station, ended once), never a station's own claim; without a router
it falls back on the stations' events and says so (``rate_from``). A station's stock
above what it held before plus the refills seen since (the district's ``cmd/refill``
and the station's own refill audit) is shown as doubtful and not summed.

No personal data is ever kept: of a state only the members the page shows; of events
only completed jobs, as (time, station, record_id); the router's state is counts.
Memory is bounded in bytes, not only in items (docs/district.md, "The page's memory"):
strings and lists capped by `kiosk.district.inputs`, completions in arrays of floats, at
most MAX_STATIONS stations, and a station silent for ``forget_after_s`` forgotten.
"""

from __future__ import annotations

import logging
import threading
import time
from array import array
from bisect import bisect_right, insort
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kiosk.contract.documents import DEFAULT_DOCUMENTS, DOCUMENTS
from kiosk.contract.timestamps import parse_rfc3339, rfc3339
from kiosk.district import inputs
from kiosk.district.routing import is_station, refusal
from kiosk.district.web.forecast import RATE_WINDOW_S, Rate, forecast, print_rate

SCHEMA = "ektp.district-view/1"
ROUTER = "_router"
DAY_S = 86400
STOCK_SAMPLE_S = 300.0  # at most one stock point per 5 min: a day is 288 per station
COMPLETED_IDS_KEPT = 512  # per station, to drop an event the station sent twice
COMPLETIONS_KEPT = 5000  # per station, within the rate window: far above a printer's pace
MAX_STATIONS = 500  # a district has tens; the ACL lets each key speak for one station only
FORGET_AFTER_S = 7 * DAY_S  # a station heard of for none of this is dropped from the view
_QUEUE, _COUNTERS, _STOCK = inputs.QUEUE, inputs.COUNTERS, inputs.STOCK
log = logging.getLogger(__name__)


def _times() -> array:
    return array("d")


@dataclass
class _Station:
    availability: str | None = None
    state: dict[str, Any] | None = None  # checked members only (kiosk.district.inputs)
    state_ts: float | None = None  # the station's own stamp (epoch s), else arrival
    state_invalid: str | None = None  # why its last state was refused as a whole
    refused: list[str] = field(default_factory=list)  # members of its last state refused
    invalid: int = 0  # messages refused
    lies: int = 0  # station-lied warnings of the router about it
    heard_at: float | None = None
    completions: array = field(default_factory=_times)  # its own word, epoch s, ascending
    completed_ids: deque[str] = field(default_factory=lambda: deque(maxlen=COMPLETED_IDS_KEPT))
    confirmed: array = field(default_factory=_times)  # completions the router accepted
    confirmed_ids: deque[str] = field(default_factory=lambda: deque(maxlen=COMPLETED_IDS_KEPT))
    stock: deque[tuple[float, int | None]] = field(default_factory=deque)
    ceiling: int | None = None  # the most stock it can hold: last trusted + refills since
    doubtful: bool = False
    entry: dict[str, Any] | None = None  # its part of document(), until its next message


class DistrictView:
    """Everything the page knows about one district; safe to use from any thread.

        view = DistrictView("ektp/v1/3210", district="3210")
        view.set_broker(True)
        view.on_message("ektp/v1/3210/st-1/state", payload)
        view.document()["stations"][0]["takes_records"]
    """

    def __init__(self, prefix: str, *, district: str, clock: Callable[[], float] = time.time,
                 rate_window_s: float = RATE_WINDOW_S, stock_sample_s: float = STOCK_SAMPLE_S,
                 forget_after_s: float = FORGET_AFTER_S,
                 on_change: Callable[[], None] | None = None) -> None:
        self.prefix = prefix
        self.district = district
        self.clock = clock
        self.rate_window_s = rate_window_s
        self.stock_sample_s = stock_sample_s
        self.forget_after_s = forget_after_s
        self.on_change = on_change or (lambda: None)
        self.started_at = clock()
        self.broker = False
        self.router_availability: str | None = None
        self.router_state: dict[str, Any] | None = None
        self.router_seen = False  # a router was online: its word rules the rate
        self.stations_refused = 0  # messages of stations beyond MAX_STATIONS
        self._stations: dict[str, _Station] = {}
        self._hourly: dict[int, int] = {}  # hour start (epoch s) -> cards, stations' word
        self._hourly_confirmed: dict[int, int] = {}  # the same, the router's word
        self.version = 0  # +1 on every change
        self._lock = threading.Lock()

    # -- input ---------------------------------------------------------------------

    def set_broker(self, connected: bool) -> None:
        with self._lock:
            self.broker = connected
            self.version += 1
        self.on_change()

    def on_message(self, topic: str, payload: bytes, retained: bool = False) -> None:
        """One message from ``{prefix}/+/...``; anything unknown is ignored. *retained*:
        delivered from the broker's store (it says nothing of when the station spoke)."""
        if not topic.startswith(self.prefix + "/"):
            return
        name, _, leaf = topic[len(self.prefix) + 1:].partition("/")
        with self._lock:
            if name == ROUTER:
                changed = self._router_message(leaf, payload)
            elif not is_station(name) or not self._room_for(name):
                changed = False
            else:
                changed = self._station_message(name, leaf, payload, retained)
            self.version += bool(changed)
        if changed:
            self.on_change()

    def _room_for(self, name: str) -> bool:
        if name in self._stations:
            return True
        self._forget(self.clock())
        if len(self._stations) < MAX_STATIONS:
            return True
        self.stations_refused += 1
        return False

    def _router_message(self, leaf: str, payload: bytes) -> bool:
        try:
            if leaf == "availability":
                self.router_availability = inputs.availability(payload)
                # Once online, its word rules the rate for good: a liar gains nothing by
                # waiting for the router to go down.
                self.router_seen = self.router_seen or self.router_availability == "online"
            elif leaf == "state":
                self.router_state = _router_counts(inputs.parse_object(payload)) \
                    if payload else None
            elif leaf == "events":
                return self._router_event(inputs.parse_object(payload))
            else:
                return False
        except inputs.Invalid:
            return False  # the router is ours; an odd message of it is just not used
        return True

    def _router_event(self, body: dict) -> bool:
        kind, station, rid = body.get("type"), body.get("target"), body.get("record_id")
        if not (isinstance(station, str) and is_station(station) and station in self._stations):
            return False
        if kind == "station-lied":
            self._stations[station].lies += 1
            self._stations[station].entry = None
            return True
        if kind != "completed" or not (isinstance(rid, str) and inputs.RECORD_ID.fullmatch(rid)):
            return False
        self.router_seen = True
        now = self.clock()
        return self._completed(self._stations[station], rid, now, self._hourly_confirmed,
                               confirmed=True)

    def _station_message(self, name: str, leaf: str, payload: bytes, retained: bool) -> bool:
        now = self.clock()
        station = self._station(name)
        station.entry = None
        if not retained:
            station.heard_at = now
        try:
            if leaf == "availability":
                station.availability = inputs.availability(payload)
            elif leaf == "state":
                self._state(name, station, payload, now, retained)
            elif leaf == "events":
                return self._event(station, inputs.event(payload), now)
            elif leaf == "cmd/refill":
                self._refilled(station, inputs.parse_object(payload).get("count"))
            else:
                return False
        except inputs.Invalid as why:
            if leaf == "cmd/refill":  # the district's own command, not the station's word
                return False
            self._count_invalid(name, station, leaf, str(why))
            if leaf == "state":
                station.state, station.state_invalid = None, inputs.text(why)
            elif leaf == "availability":
                station.availability = None
        return True

    def _state(self, name: str, station: _Station, payload: bytes, now: float,
               retained: bool) -> None:
        if not payload:  # retained state cleared: the station is gone
            station.state = station.state_invalid = None
            return
        checked = inputs.state(payload)
        if checked.refused:
            self._count_invalid(name, station, "state",
                                "members refused: " + ", ".join(checked.refused))
        station.state, station.state_invalid = checked.as_dict(), None
        station.refused = checked.refused
        stamp = parse_rfc3339(checked.ts)
        station.state_ts = stamp if stamp is not None and stamp <= now + 60 else now
        if retained and stamp is not None:
            station.heard_at = max(station.heard_at or 0.0, min(stamp, now))
        self._check_stock(station)
        self._sample_stock(station, now)

    @staticmethod
    def _count_invalid(name: str, station: _Station, leaf: str, why: str) -> None:
        """Count a refused message; journal the first ten of a station, then one in 100."""
        station.invalid += 1
        if station.invalid <= 10 or station.invalid % 100 == 0:
            log.warning("invalid %s from station %s, ignored: %s (%d invalid messages so far)",
                        leaf, name, inputs.text(why), station.invalid)

    def _check_stock(self, station: _Station) -> None:
        """Stock can only grow by a refill: above the ceiling it is doubtful."""
        remaining = (station.state or {}).get("stock", {}).get("remaining")
        if not isinstance(remaining, int):
            station.doubtful = False
            return
        if station.ceiling is None or remaining <= station.ceiling:
            station.ceiling, station.doubtful = remaining, False
        else:
            station.doubtful = True

    def _refilled(self, station: _Station, count: object) -> None:
        if isinstance(count, int) and not isinstance(count, bool) \
                and 0 < count <= inputs.MAX_REFILL and station.ceiling is not None:
            station.ceiling = min(inputs.MAX_STOCK, station.ceiling + count)

    def _event(self, station: _Station, event: inputs.Event, now: float) -> bool:
        """Only a completed job is kept, as its time and record id (nothing personal)."""
        if event.type == "command" and event.count is not None:
            self._refilled(station, event.count)
            return False
        if event.type != "job" or event.job_state != "completed" or event.record_id is None:
            return False
        stamp = parse_rfc3339(event.ts)
        at = now if stamp is None else max(now - DAY_S, min(now, stamp))
        return self._completed(station, event.record_id, at, self._hourly, confirmed=False)

    def _completed(self, station: _Station, rid: str, at: float, hourly: dict[int, int], *,
                   confirmed: bool) -> bool:
        ids = station.confirmed_ids if confirmed else station.completed_ids
        times = station.confirmed if confirmed else station.completions
        if rid in ids:
            return False
        ids.append(rid)
        now = self.clock()
        if len(times) == COMPLETIONS_KEPT:
            del times[0]
        insort(times, at)  # in time order: a late event goes in its place
        del times[:bisect_right(times, now - self.rate_window_s)]
        hour = int(at // 3600 * 3600)
        hourly[hour] = hourly.get(hour, 0) + 1
        for old in [h for h in hourly if h <= now - DAY_S - 3600]:
            del hourly[old]
        return True

    def _sample_stock(self, station: _Station, now: float) -> None:
        """A point when the stock changed; one younger than stock_sample_s is replaced."""
        remaining = (station.state or {}).get("stock", {}).get("remaining")
        value = round(remaining) if isinstance(remaining, int) else None
        points = station.stock
        if points and points[-1][1] == value:
            return
        if len(points) >= 2 and now - points[-1][0] < self.stock_sample_s:
            points.pop()
        points.append((now, value))
        while points and points[0][0] < now - DAY_S:
            points.popleft()

    def _station(self, name: str) -> _Station:
        return self._stations.setdefault(name, _Station())

    def _forget(self, now: float) -> None:
        """Drop the stations not heard of for forget_after_s (not online meanwhile)."""
        for name, station in list(self._stations.items()):
            heard = station.heard_at if station.heard_at is not None else self.started_at
            if station.availability != "online" and now - heard > self.forget_after_s:
                del self._stations[name]
                self.version += 1

    # -- output --------------------------------------------------------------------

    def document(self) -> dict[str, Any]:
        """``GET /api/district``: station.md's district view, with the forecast's grounds."""
        with self._lock:
            now = self.clock()
            self._forget(now)
            stations = [self._station_entry(name, s, now)
                        for name, s in sorted(self._stations.items())]
            backlog = self._backlog(stations)
            rate = self._rate(stations, now)
            doubtful = [s["id"] for s in stations if s["stock_doubtful"]]
            outlook = forecast(
                backlog=backlog["waiting"] + backlog["at_stations"], rate=rate, now=now,
                on_hand=[None if s["stock_doubtful"] else s["stock"]["remaining"]
                         for s in stations],
                printed=sum(s["counters"]["printed"] or 0 for s in stations),
                spoiled=sum(s["counters"]["spoiled"] or 0 for s in stations))
            return {
                "schema": SCHEMA, "district": self.district, "ts": rfc3339(now),
                "broker": "online" if self.broker else "offline",
                "router": self._router_link(),
                "stations": stations,
                "backlog": backlog,
                "rate_per_hour": round(rate.per_hour, 1),
                "forecast": {
                    "backlog_done_at": (None if outlook.backlog_done_at is None
                                        else rfc3339(outlook.backlog_done_at)),
                    "blanks_needed": outlook.blanks_needed,
                    "blanks_on_hand": outlook.blanks_on_hand,
                    "blanks_short": outlook.blanks_short,
                    "assumptions": {
                        "rate_window_s": round(rate.window_s),
                        "cards_in_window": rate.cards,
                        "stations_counted": list(rate.stations),
                        "rate_from": "router" if self.router_seen else "stations",
                        "spoiled_per_printed": round(outlook.spoil_ratio, 4),
                        "backlog_from": "router" if self.router_state else "station-queues",
                        "stock_doubtful": doubtful,
                    },
                    "by_document": self._per_document(stations, backlog, now),
                },
            }

    def _per_document(self, stations: list[dict], backlog: dict, now: float) -> dict:
        """The forecast of each document on its own stations and blanks (a KIA blank is no
        E-KTP blank): what waits for it, what its stations hold and have in stock."""
        out = {}
        for document in DOCUMENTS:
            own = [s for s in stations if document in s["documents"]]
            waiting = backlog["by_document"].get(document, 0)
            if not own and not waiting:
                continue
            names = {s["id"] for s in own}
            queued = sum(sum(s["queue"].values()) for s in own)
            if self.router_state:
                queued = sum(n for name, n in self.router_state["at_stations"].items()
                             if name in names)
            rate = self._rate([s for s in own], now)
            outlook = forecast(
                backlog=waiting + queued, rate=rate, now=now,
                on_hand=[None if s["stock_doubtful"] else s["stock"]["remaining"] for s in own],
                printed=sum(s["counters"]["printed"] or 0 for s in own),
                spoiled=sum(s["counters"]["spoiled"] or 0 for s in own))
            out[document] = {
                "stations": sorted(names),
                "backlog_done_at": (None if outlook.backlog_done_at is None
                                    else rfc3339(outlook.backlog_done_at)),
                "blanks_needed": outlook.blanks_needed,
                "blanks_on_hand": outlook.blanks_on_hand,
                "blanks_short": outlook.blanks_short,
            }
        return out

    def history(self) -> dict[str, Any]:
        """The plots: cards completed per hour over the last day, each station's stock."""
        with self._lock:
            now = self.clock()
            this_hour = int(now // 3600 * 3600)
            hours = [this_hour - 3600 * back for back in range(23, -1, -1)]
            hourly = self._hourly_confirmed if self.router_seen else self._hourly
            return {
                "ts": rfc3339(now),
                "cards_per_hour": [[rfc3339(h), hourly.get(h, 0)] for h in hours],
                "stock": {name: [[round(at), n] for at, n in s.stock if at >= now - DAY_S]
                          for name, s in sorted(self._stations.items())},
            }

    def _station_entry(self, name: str, station: _Station, now: float) -> dict[str, Any]:
        if station.entry is None:
            station.entry = self._new_entry(name, station)
        age = None if station.state_ts is None else max(0, round(now - station.state_ts))
        return {**station.entry, "state_age_s": age}

    def _new_entry(self, name: str, station: _Station) -> dict[str, Any]:
        state = station.state or {}
        why = "invalid-state" if station.state_invalid else refusal(station.availability,
                                                                   station.state)
        entry: dict[str, Any] = {
            "id": name,
            "availability": "online" if station.availability == "online" else "offline",
            "printer_state": state.get("printer_state"),
            "printer_state_reasons": list(state.get("printer_state_reasons", [])),
            "accepting_jobs": state.get("accepting_jobs", False) is True,
            "queue": {k: state.get("queue", {}).get(k) or 0 for k in _QUEUE},
            "stock": {k: state.get("stock", {}).get(k) for k in _STOCK},
            "counters": {k: state.get("counters", {}).get(k) or 0 for k in _COUNTERS},
            "state_age_s": None,  # filled in at each document()
            "takes_records": why is None,
            "state_invalid": station.state_invalid,
            "refused": list(station.refused),
            "invalid_messages": station.invalid,
            "lies": station.lies,
            "stock_doubtful": station.doubtful,
            "documents": list(state.get("documents") or DEFAULT_DOCUMENTS),
        }
        if why is not None:
            entry["why_not"] = why
        return entry

    def _backlog(self, stations: list[dict]) -> dict[str, int]:
        if self.router_state:
            return {"waiting": self.router_state["waiting"],
                    "at_stations": sum(self.router_state["at_stations"].values()),
                    "by_document": self.router_state.get("by_document", {}),
                    "no_printer": self.router_state.get("no_printer", [])}
        queued = sum(sum(s["queue"].values()) for s in stations)
        return {"waiting": 0, "at_stations": queued, "by_document": {}, "no_printer": []}

    def _rate(self, stations: list[dict], now: float) -> Rate:
        can_print = {s["id"] for s in stations if s["takes_records"]}
        completions = {name: s.confirmed if self.router_seen else s.completions
                       for name, s in self._stations.items()}
        return print_rate(completions, can_print=can_print, now=now,
                          window_s=self.rate_window_s, observed_s=now - self.started_at)

    def _router_link(self) -> str:
        if not self.broker or self.router_availability not in ("online", "offline"):
            return "unknown"
        return self.router_availability


def _router_counts(body: dict) -> dict[str, Any] | None:
    waiting = body.get("waiting")
    at = body.get("at_stations")
    if not _count(waiting) or not isinstance(at, dict):
        return None
    by_document = body.get("waiting_by_document")
    no_printer = body.get("no_printer")
    return {"waiting": waiting,
            "at_stations": {k: v for k, v in list(at.items())[:MAX_STATIONS]
                            if is_station(k) and _count(v)},
            "by_document": {k: v for k, v in by_document.items()
                            if k in DOCUMENTS and _count(v)}
            if isinstance(by_document, dict) else {},
            "no_printer": [d for d in no_printer if d in DOCUMENTS][:len(DOCUMENTS)]
            if isinstance(no_printer, list) else []}


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) \
        and 0 <= value <= inputs.MAX_COUNT


