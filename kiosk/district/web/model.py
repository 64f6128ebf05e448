"""The district view the web page shows: what stations and the router publish, folded.

`DistrictView` takes MQTT messages (topic, payload) and the broker link's
ups and downs, and answers `document()` (``GET /api/district``, the shape of
station.md) and `history()` (the page's plots: cards per hour over the last
day, each station's stock). No network here: the tests feed it messages.

No personal data is ever kept: of a station's state only the members of
mqtt.md's state document are kept; of its events only completed jobs, as
(time, station, record_id); the router's state is counts. Memory is bounded
per station (a window of completions, a day of stock samples) and per
district (24 hourly counts).
"""

from __future__ import annotations

import json
import threading
import time
from bisect import insort
from calendar import timegm
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kiosk.district.routing import is_station, refusal
from kiosk.district.web.forecast import RATE_WINDOW_S, Rate, forecast, print_rate

SCHEMA = "ektp.district-view/1"
ROUTER = "_router"
DAY_S = 86400
STOCK_SAMPLE_S = 300.0  # at most one stock point per 5 min: a day is 288 per station
COMPLETED_IDS_KEPT = 512  # per station, to drop an event the station sent twice
COMPLETIONS_KEPT = 5000  # per station, within the rate window: far above a printer's pace
_QUEUE = ("pending", "held", "processing")
_COUNTERS = ("printed", "spoiled", "rejected")
_STOCK = ("remaining", "low_threshold", "sensor_estimate", "minutes_to_empty")


@dataclass
class _Station:
    availability: str | None = None
    state: dict[str, Any] | None = None  # whitelisted members only
    state_ts: float | None = None  # the station's own stamp (epoch s), else arrival
    completions: deque[float] = field(default_factory=lambda: deque(maxlen=COMPLETIONS_KEPT))
    completed_ids: deque[str] = field(default_factory=lambda: deque(maxlen=COMPLETED_IDS_KEPT))
    stock: deque[tuple[float, int | None]] = field(default_factory=deque)
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
                 on_change: Callable[[], None] | None = None) -> None:
        self.prefix = prefix
        self.district = district
        self.clock = clock
        self.rate_window_s = rate_window_s
        self.stock_sample_s = stock_sample_s
        self.on_change = on_change or (lambda: None)
        self.started_at = clock()
        self.broker = False
        self.router_availability: str | None = None
        self.router_state: dict[str, Any] | None = None
        self._stations: dict[str, _Station] = {}
        self._hourly: dict[int, int] = {}  # hour start (epoch s) -> cards completed
        self.version = 0  # +1 on every change
        self._lock = threading.Lock()

    # -- input ---------------------------------------------------------------------

    def set_broker(self, connected: bool) -> None:
        with self._lock:
            self.broker = connected
            self.version += 1
        self.on_change()

    def on_message(self, topic: str, payload: bytes) -> None:
        """One message from ``{prefix}/+/...``; anything unknown is ignored."""
        if not topic.startswith(self.prefix + "/"):
            return
        name, _, leaf = topic[len(self.prefix) + 1:].partition("/")
        with self._lock:
            changed = (self._router_message(leaf, payload) if name == ROUTER
                       else is_station(name) and self._station_message(name, leaf, payload))
            self.version += bool(changed)
        if changed:
            self.on_change()

    def _router_message(self, leaf: str, payload: bytes) -> bool:
        if leaf == "availability":
            self.router_availability = payload.decode(errors="replace")
        elif leaf == "state":
            body = _json_object(payload)
            self.router_state = _router_counts(body) if body else None
        else:
            return False
        return True

    def _station_message(self, name: str, leaf: str, payload: bytes) -> bool:
        now = self.clock()
        self._station(name).entry = None
        if leaf == "availability":
            self._station(name).availability = payload.decode(errors="replace")
        elif leaf == "state":
            body = _json_object(payload)
            if body is None:  # retained state cleared: the station is gone
                self._stations.get(name, _Station()).state = None
                return True
            station = self._station(name)
            station.state = _kept_state(body)
            station.state_ts = _epoch(body.get("ts")) or now
            self._sample_stock(station, now)
        elif leaf == "events":
            return self._event(name, _json_object(payload) or {}, now)
        else:
            return False
        return True

    def _event(self, name: str, body: dict, now: float) -> bool:
        """Only a completed job is kept, as its time and record id (nothing personal)."""
        rid = body.get("record_id")
        if body.get("type") != "job" or body.get("job_state") != "completed":
            return False
        if not isinstance(rid, str):
            return False
        station = self._station(name)
        if rid in station.completed_ids:
            return False
        at = min(now, _epoch(body.get("ts")) or now)
        station.completed_ids.append(rid)
        if len(station.completions) == COMPLETIONS_KEPT:
            station.completions.popleft()
        insort(station.completions, at)  # in time order: a late event goes in its place
        while station.completions and station.completions[0] <= now - self.rate_window_s:
            station.completions.popleft()
        hour = int(at // 3600 * 3600)
        self._hourly[hour] = self._hourly.get(hour, 0) + 1
        for old in [h for h in self._hourly if h <= now - DAY_S - 3600]:
            del self._hourly[old]
        return True

    def _sample_stock(self, station: _Station, now: float) -> None:
        """A point when the stock changed; one younger than stock_sample_s is replaced."""
        remaining = (station.state or {}).get("stock", {}).get("remaining")
        value = round(remaining) if _number(remaining) is not None else None
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

    # -- output --------------------------------------------------------------------

    def document(self) -> dict[str, Any]:
        """``GET /api/district``: station.md's district view, with the forecast's grounds."""
        with self._lock:
            now = self.clock()
            stations = [self._station_entry(name, s, now)
                        for name, s in sorted(self._stations.items())]
            backlog = self._backlog(stations)
            rate = self._rate(stations, now)
            outlook = forecast(
                backlog=backlog["waiting"] + backlog["at_stations"], rate=rate, now=now,
                on_hand=[s["stock"]["remaining"] for s in stations],
                printed=sum(s["counters"]["printed"] or 0 for s in stations),
                spoiled=sum(s["counters"]["spoiled"] or 0 for s in stations))
            return {
                "schema": SCHEMA, "district": self.district, "ts": _rfc3339(now),
                "broker": "online" if self.broker else "offline",
                "router": self._router_link(),
                "stations": stations,
                "backlog": backlog,
                "rate_per_hour": round(rate.per_hour, 1),
                "forecast": {
                    "backlog_done_at": (None if outlook.backlog_done_at is None
                                        else _rfc3339(outlook.backlog_done_at)),
                    "blanks_needed": outlook.blanks_needed,
                    "blanks_on_hand": outlook.blanks_on_hand,
                    "blanks_short": outlook.blanks_short,
                    "assumptions": {
                        "rate_window_s": round(rate.window_s),
                        "cards_in_window": rate.cards,
                        "stations_counted": list(rate.stations),
                        "spoiled_per_printed": round(outlook.spoil_ratio, 4),
                        "backlog_from": "router" if self.router_state else "station-queues",
                    },
                },
            }

    def history(self) -> dict[str, Any]:
        """The plots: cards completed per hour over the last day, each station's stock."""
        with self._lock:
            now = self.clock()
            this_hour = int(now // 3600 * 3600)
            hours = [this_hour - 3600 * back for back in range(23, -1, -1)]
            return {
                "ts": _rfc3339(now),
                "cards_per_hour": [[_rfc3339(h), self._hourly.get(h, 0)] for h in hours],
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
        why = refusal(station.availability, station.state)
        entry: dict[str, Any] = {
            "id": name,
            "availability": "online" if station.availability == "online" else "offline",
            "printer_state": state.get("printer_state"),
            "printer_state_reasons": [r for r in state.get("printer_state_reasons", [])
                                      if r != "none"],
            "accepting_jobs": state.get("accepting_jobs", False) is True,
            "queue": {k: _count(state.get("queue", {}).get(k), 0) for k in _QUEUE},
            "stock": {k: state.get("stock", {}).get(k) for k in _STOCK},
            "counters": {k: _count(state.get("counters", {}).get(k), 0) for k in _COUNTERS},
            "state_age_s": None,  # filled in at each document()
            "takes_records": why is None,
        }
        if why is not None:
            entry["why_not"] = why
        return entry

    def _backlog(self, stations: list[dict]) -> dict[str, int]:
        if self.router_state:
            return {"waiting": self.router_state["waiting"],
                    "at_stations": sum(self.router_state["at_stations"].values())}
        queued = sum(sum(s["queue"].values()) for s in stations)
        return {"waiting": 0, "at_stations": queued}

    def _rate(self, stations: list[dict], now: float) -> Rate:
        can_print = {s["id"] for s in stations if s["takes_records"]}
        completions = {name: s.completions for name, s in self._stations.items()}
        return print_rate(completions, can_print=can_print, now=now,
                          window_s=self.rate_window_s, observed_s=now - self.started_at)

    def _router_link(self) -> str:
        if not self.broker or self.router_availability not in ("online", "offline"):
            return "unknown"
        return self.router_availability


def _kept_state(body: dict) -> dict[str, Any]:
    """The members of mqtt.md's state document the page uses; nothing else is kept."""
    reasons = body.get("printer_state_reasons")
    kept: dict[str, Any] = {
        "printer_state": body.get("printer_state") if isinstance(
            body.get("printer_state"), str) else None,
        "printer_state_reasons": [r for r in reasons if isinstance(r, str)][:32]
        if isinstance(reasons, list) else [],
        "accepting_jobs": body.get("accepting_jobs") is True,
    }
    for member, keys in (("queue", _QUEUE), ("counters", _COUNTERS), ("stock", _STOCK)):
        value = body.get(member)
        value = value if isinstance(value, dict) else {}
        kept[member] = {k: _number(value.get(k)) for k in keys}
    return kept


def _router_counts(body: dict) -> dict[str, Any] | None:
    waiting = body.get("waiting")
    at = body.get("at_stations")
    if not isinstance(waiting, int) or not isinstance(at, dict):
        return None
    return {"waiting": waiting,
            "at_stations": {k: v for k, v in at.items() if is_station(k) and isinstance(v, int)}}


def _number(value: object) -> int | float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _count(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _json_object(payload: bytes) -> dict | None:
    try:
        body = json.loads(payload)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _epoch(ts: object) -> float | None:
    """Epoch seconds of an RFC 3339 UTC stamp (2026-01-02T03:04:05Z, fraction allowed)."""
    if not isinstance(ts, str):
        return None
    whole, _, fraction = ts.rstrip("Z").partition(".")
    try:
        seconds = timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None
    return seconds + (float(f"0.{fraction}") if fraction.isdigit() else 0.0)


def _rfc3339(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
