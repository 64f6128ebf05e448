"""The district's week in simulated time: the router's policy against the field's faults.

Discrete events, no broker, no threads. Stations are modelled by what matters to
the district - a printer that takes ``card_s`` per card, its queue, its faults -
and publish the state documents real stations publish; the router's decisions
are taken by kiosk.district.routing itself (`plan`, with `choose`'s eligibility
and ordering, and `ReleaseClock`) on those documents, with the store's rules
(a released record never returns to that station, an offline station keeps
what it holds). The same seeded `Faults` drive two baselines: a static split
(record *i* handed to station *i* mod K up front, as an office does by hand) and
an ideal pull queue (a printer takes the next record the instant it can start a
card, as a CUPS class does). Messages take no time here: the real system's
delays are what bench/district.py measures beside this.

Two documents (issue 28): with `prints` (station -> the documents it prints, by default
the E-KTP alone) and `mix` (each record's document, `mixed()` spreads a share of KIA
records evenly through the backlog), a record goes only to a station of its kind, as
kiosk.district.routing's `takes_document` decides on the stations' state documents.

    faults = schedule(stations(6))
    result = simulate(16_851, faults, policy=Policy())
    result.makespan, result.time_to(12_000), lower_bound(16_851, faults)
    prints = {**{n: ("ektp",) for n in stations(6)}, "kia-1": ("kia",)}
    faults = schedule([*stations(6), "kia-1"])
    simulate(16_851, faults, prints=prints, mix=mixed(16_851, 0.10))
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import random
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from kiosk.district.routing import (
    DEFAULT_DOCUMENTS,
    HOLD_AHEAD,
    RELEASE_AFTER_S,
    ReleaseClock,
    choose,
    plan,
    takes_document,
)

CARD_S = 20.0
HOUR = 3600.0
EPSILON = 1e-6  # a release tick lands just after its delay, never a rounding before it

# What a station's state says during each kind of fault (as the real stations say it).
REASONS = {"jam": "media-jam-error", "feeder": "media-empty-error", "overheat": "other-error"}


def stations(count: int, prefix: str = "st") -> list[str]:
    return [f"{prefix}-{index}" for index in range(1, count + 1)]


def mixed(records: int, share: float, document: str = "kia") -> list[str]:
    """Each record's document: `share` of them `document`, spread evenly in arrival
    order (record i is one when floor((i + 1) x share) passes an integer), the rest E-KTP."""
    return [document if int((i + 1) * share) > int(i * share) else "ektp"
            for i in range(records)]


Prints = Mapping[str, Sequence[str]]  # station -> the documents it prints


# -- the faults ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Outage:
    """From *start* to *end* the station cannot start a card (the one printing finishes).

    ``offline``: the station is down (power cut at its desk), its link says offline and
    it keeps the records it holds. ``feeder``: no blank cards until a refill.
    ``overheat``: the print head cools. The last two show on the station's state only
    once it tries to start a card, as on a real printer.
    """

    station: str
    kind: str
    start: float
    end: float


@dataclass(frozen=True)
class Faults:
    """Jams by the station's pick count (pick number → seconds until a person clears it),
    and outages in simulated time."""

    stations: tuple[str, ...]
    jams: Mapping[str, Mapping[int, float]]
    outages: tuple[Outage, ...]

    def of(self, station: str) -> list[Outage]:
        return [outage for outage in self.outages if outage.station == station]


def schedule(names: Sequence[str], *, seed: int = 18, scale: float = 1.0,
             jam_every: tuple[int, int] = (200, 400), jam_minutes: tuple[float, float] = (2, 8),
             overheat_every_h: float = 3.0, overheat_minutes: tuple[float, float] = (5, 10),
             horizon_h: float = 48.0) -> Faults:
    """The week's fixed, seeded field faults for *names*.

    Each printer jams every 200-400 cards it picks, cleared in 2-8 minutes; each print
    head overheats about every 3 hours and cools in 5-10 minutes; the second station's
    feeder runs empty 2 h in and is refilled an hour later; the fourth station goes down
    4 h in, for an hour. *scale* shortens the two one-off outages (start and length) for
    a slice of the backlog, so each fault's share of the makespan stays the week's.
    """
    rng = random.Random(seed)
    jams: dict[str, dict[int, float]] = {}
    outages: list[Outage] = []
    for name in names:
        picks, jams[name] = 0, {}
        while picks < 100_000:
            picks += rng.randint(*jam_every)
            jams[name][picks] = rng.uniform(*jam_minutes) * 60
        now = 0.0
        while (now := now + rng.expovariate(1 / (overheat_every_h * HOUR))) < horizon_h * HOUR:
            outages.append(Outage(name, "overheat", now, now + rng.uniform(*overheat_minutes) * 60))
    if len(names) > 1:
        outages.append(Outage(names[1], "feeder", 2 * HOUR * scale, 3 * HOUR * scale))
    if len(names) > 3:
        outages.append(Outage(names[3], "offline", 4 * HOUR * scale, 5 * HOUR * scale))
    return Faults(tuple(names), jams, tuple(sorted(outages, key=lambda o: o.start)))


def lower_bound(records: int, faults: Faults, card_s: float = CARD_S, *,
                prints: Prints | None = None, mix: Sequence[str] | None = None) -> float:
    """The makespan if every station printed all the time it can: the smallest T with
    sum over stations of (T - outage time before T - its jams) >= records x card_s.

    Jams are those on each station's first records/K picks (an even share), so the
    bound is the same for every policy run on these faults. With `prints` and `mix`,
    when each station prints one document, the largest of each document's own bound (its
    records on its stations); when a station prints several, the pooled bound (all
    records on all stations), which is still one.
    """
    if prints is not None and mix is not None and all(len(d) == 1 for d in prints.values()):
        bounds = [0.0]
        for document in dict.fromkeys(mix):
            names = tuple(n for n in faults.stations if document in prints[n])
            count = mix.count(document)
            if names and count:
                part = Faults(names, {n: faults.jams[n] for n in names},
                              tuple(o for o in faults.outages if o.station in names))
                bounds.append(lower_bound(count, part, card_s))
        return max(bounds)
    share = records / len(faults.stations)
    jam_loss = {name: sum(s for pick, s in faults.jams[name].items() if pick <= share)
                for name in faults.stations}
    windows = {name: _merged(faults.of(name), card_s) for name in faults.stations}

    def capacity(t: float) -> float:
        return sum(max(0.0, t - _overlap(windows[n], t) - jam_loss[n]) for n in faults.stations)

    low, high = 0.0, records * card_s + sum(jam_loss.values()) + 1e6
    while high - low > 0.01:
        middle = (low + high) / 2
        low, high = (middle, high) if capacity(middle) < records * card_s else (low, middle)
    return high


def _merged(outages: list[Outage], card_s: float) -> list[tuple[float, float]]:
    """Times a station surely cannot print: each outage less its first card (one that
    started just before it may print through it), overlaps counted once."""
    merged: list[list[float]] = []
    for outage in sorted(outages, key=lambda o: o.start):
        start = outage.start + card_s
        if start >= outage.end:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], outage.end)
        else:
            merged.append([start, outage.end])
    return [(start, end) for start, end in merged]


def _overlap(windows: list[tuple[float, float]], t: float) -> float:
    return sum(max(0.0, min(end, t) - start) for start, end in windows if start < t)


# -- the simulated stations ---------------------------------------------------------------


@dataclass(eq=False)
class Record:
    index: int
    released_by: set[str] = field(default_factory=set)
    document: str = "ektp"


class _Station:
    """One print station as the district sees it: a queue, a printer, its faults."""

    def __init__(self, name: str, jams: Mapping[int, float],
                 documents: Sequence[str] = DEFAULT_DOCUMENTS) -> None:
        self.name, self.jams, self.documents = name, jams, list(documents)
        self.held: deque[Record] = deque()
        self.current: Record | None = None  # printing, or stopped in the printer (a jam)
        self.printing = False
        self.picks = 0
        self.fault: str | None = None  # the reason its state shows
        self.blocked: dict[str, float] = {}  # outage kind → its end
        self.online = True

    def document(self) -> dict:
        stopped = self.fault is not None
        return {
            "printer_state": "stopped" if stopped else "processing" if self.printing else "idle",
            "printer_state_reasons": [self.fault] if stopped else ["none"],
            "accepting_jobs": True,
            "queue": {"pending": len(self.held), "held": 0,
                      "processing": int(self.current is not None)},
            "stock": {"remaining": None},
            "documents": self.documents,
        }


@dataclass(frozen=True)
class Policy:
    """The router's knobs: records a station holds (None: all at once) and the seconds
    a station unable to print keeps them before it is sent ``release`` (None: never)."""

    hold_ahead: int | None = HOLD_AHEAD
    release_after_s: float | None = RELEASE_AFTER_S


@dataclass
class Result:
    """When each card came out, in order, and how often records moved."""

    done_at: list[float]
    released: int = 0  # records handed back by a station (each `release` counts its records)
    stranded: int = 0  # records every station of their kind released: never printed
    printed_by: dict[int, str] = field(default_factory=dict)  # record index -> station

    @property
    def makespan(self) -> float:
        return self.done_at[-1] if self.done_at else 0.0

    def time_to(self, cards: int) -> float:
        return self.done_at[min(cards, len(self.done_at)) - 1]


class _World:
    """The event loop: stations, the faults' clock, and a dispatcher deciding what each
    station prints next (the router, a static split, or a pull queue)."""

    def __init__(self, faults: Faults, card_s: float, prints: Prints | None = None) -> None:
        self.card_s = card_s
        prints = prints or {}
        self.stations = {name: _Station(name, faults.jams[name],
                                        prints.get(name, DEFAULT_DOCUMENTS))
                         for name in faults.stations}
        self._events: list[tuple[float, int, str, str, object]] = []
        self._seq = itertools.count()
        self.now = 0.0
        self.done_at: list[float] = []
        self.printed_by: dict[int, str] = {}
        self.take: Callable[[_Station], Record | None] = lambda station: (
            station.held.popleft() if station.held else None)
        self.after_event: Callable[[], None] = lambda: None
        self.ticked: Callable[[_Station], None] = lambda station: None
        for outage in faults.outages:
            self.at(outage.start, "outage", outage.station, outage)

    def at(self, when: float, kind: str, station: str, data: object = None) -> None:
        heapq.heappush(self._events, (when, next(self._seq), kind, station, data))

    def run(self) -> None:
        for station in self.stations.values():
            self.start(station)
        self.after_event()
        while self._events:
            self.now, _, kind, name, data = heapq.heappop(self._events)
            station = self.stations[name]
            getattr(self, f"_on_{kind}")(station, data)
            self.after_event()

    def start(self, station: _Station) -> None:
        """The station starts its next card if it can."""
        if station.printing or not station.online or station.fault == REASONS["jam"]:
            return
        if station.blocked:
            station.fault = REASONS[min(station.blocked)]  # seen once it tries to pick
            return
        record = station.current or self.take(station)
        if record is None:
            return
        station.current = record
        station.picks += 1
        if station.picks in station.jams:
            station.fault = REASONS["jam"]
            self.at(self.now + station.jams[station.picks], "cleared", station.name)
            return
        station.printing = True
        self.at(self.now + self.card_s, "printed", station.name)

    def _on_printed(self, station: _Station, data: object) -> None:
        if station.current is not None:
            self.printed_by[station.current.index] = station.name
        station.printing, station.current = False, None
        self.done_at.append(self.now)
        self.start(station)

    def _on_tick(self, station: _Station, data: object) -> None:
        """A wake-up for the dispatcher (the router's release clock)."""
        self.ticked(station)

    def _on_cleared(self, station: _Station, data: object) -> None:
        station.fault = None
        self.start(station)

    def _on_outage(self, station: _Station, outage: Outage) -> None:
        if outage.kind == "offline":
            station.online = False
        else:
            station.blocked[outage.kind] = max(outage.end, station.blocked.get(outage.kind, 0))
        self.at(outage.end, "restored", station.name, outage)

    def _on_restored(self, station: _Station, outage: Outage) -> None:
        if outage.kind == "offline":
            station.online = True
        elif station.blocked.get(outage.kind) == outage.end:
            del station.blocked[outage.kind]
            if station.fault == REASONS[outage.kind]:
                station.fault = None
        if station.fault in (REASONS["feeder"], REASONS["overheat"]) and station.blocked:
            station.fault = REASONS[min(station.blocked)]
        self.start(station)


# -- the policies ---------------------------------------------------------------------------


def _records(records: int, mix: Sequence[str] | None) -> list[Record]:
    if mix is not None and len(mix) != records:
        raise ValueError(f"mix names {len(mix)} documents for {records} records")
    return [Record(index, document=mix[index] if mix else "ektp") for index in range(records)]


def simulate(records: int, faults: Faults, *, policy: Policy = Policy(),
             card_s: float = CARD_S, prints: Prints | None = None,
             mix: Sequence[str] | None = None) -> Result:
    """The router's policy: every decision by kiosk.district.routing on station documents;
    each document's records are planned among the stations that take it."""
    world = _World(faults, card_s, prints)
    waiting: dict[str, list[Record]] = {}  # per document, in arrival order (the store's)
    for record in _records(records, mix):
        waiting.setdefault(record.document, []).append(record)
    clock = ReleaseClock(policy.release_after_s or 0.0)
    result = Result(world.done_at, printed_by=world.printed_by)
    ticking: set[str] = set()

    def documents() -> tuple[dict[str, str], dict[str, dict]]:
        links = {n: "online" if s.online else "offline" for n, s in world.stations.items()}
        return links, {name: station.document() for name, station in world.stations.items()}

    def route() -> None:
        links, states = documents()
        if policy.release_after_s:
            release([n for n in clock.due(links, states, world.now) if has_peer(n)])
            links, states = documents()
        if choose(links, states, ahead=policy.hold_ahead) is None:
            return
        loads: dict[str, int] = {}
        started: dict[str, None] = {}
        for document, queue in waiting.items():
            kind = {n for n in states if takes_document(states[n], document)}
            kind_links = {n: link for n, link in links.items() if n in kind}
            kind_states = {n: state for n, state in states.items() if n in kind}
            if not queue or choose(kind_links, kind_states, unconfirmed=loads,
                                   ahead=policy.hold_ahead) is None:
                continue
            chosen = plan(queue, kind_links, kind_states, unconfirmed=loads,
                          ahead=policy.hold_ahead)
            if len(chosen) == len(queue):
                queue.clear()
            for record, name in chosen:
                if queue:
                    del queue[bisect.bisect_left(queue, record.index, key=lambda r: r.index)]
                world.stations[name].held.append(record)
                loads[name] = loads.get(name, 0) + 1
                started[name] = None
        for name in started:
            world.start(world.stations[name])

    def has_peer(name: str) -> bool:
        """Whether another station prints what `name` prints: releasing the only station
        of a kind would strand its records (no other station may take them), so it keeps
        them and prints them once its fault clears."""
        own = set(world.stations[name].documents)
        return any(own & set(s.documents) for n, s in world.stations.items() if n != name)

    def release(due: list[str]) -> None:
        for name in due:
            station = world.stations[name]
            for record in station.held:
                record.released_by.add(name)
                kind = [s for s in world.stations.values() if record.document in s.documents]
                if len(record.released_by) >= len(kind):
                    result.stranded += 1  # every station of its kind released it
                else:
                    bisect.insort(waiting[record.document], record, key=lambda r: r.index)
            result.released += len(station.held)
            station.held.clear()
        # The router looks again one delay later while a station stays unable to print.
        for name, station in world.stations.items():
            if station.fault is not None and station.online and name not in ticking:
                ticking.add(name)
                world.at(world.now + policy.release_after_s + EPSILON, "tick", name)

    world.ticked = lambda station: ticking.discard(station.name)
    world.after_event = route
    world.run()
    return result


def static_split(records: int, faults: Faults, *, card_s: float = CARD_S,
                 prints: Prints | None = None, mix: Sequence[str] | None = None) -> Result:
    """Each station of a document handed its share of that document's records up front;
    nothing moves afterwards."""
    world = _World(faults, card_s, prints)
    dealt: dict[str, int] = {}
    for record in _records(records, mix):
        names = [n for n, s in world.stations.items() if record.document in s.documents]
        if names:
            turn = dealt[record.document] = dealt.get(record.document, -1) + 1
            world.stations[names[turn % len(names)]].held.append(record)
    world.run()
    return Result(world.done_at, printed_by=world.printed_by)


def ideal_pull(records: int, faults: Faults, *, card_s: float = CARD_S,
               prints: Prints | None = None, mix: Sequence[str] | None = None) -> Result:
    """One queue per document; a printer takes the next record of its documents the
    instant it can start a card."""
    world = _World(faults, card_s, prints)
    queues: dict[str, deque[Record]] = {}
    for record in _records(records, mix):
        queues.setdefault(record.document, deque()).append(record)

    def take(station: _Station) -> Record | None:
        heads = [queues[d] for d in station.documents if queues.get(d)]
        return min(heads, key=lambda q: q[0].index).popleft() if heads else None

    world.take = take
    world.run()
    return Result(world.done_at, printed_by=world.printed_by)
