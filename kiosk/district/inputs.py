"""What stations publish, read at the district as untrusted input: parsed with limits.

A station stands in an office; whoever holds its key may publish anything, within the
ACL, on its own ``availability``, ``state`` and ``events``. Every district tool (router,
web page, ``watch``) reads those messages through this module, never through a bare
``json.loads``:

- `parse_object`: size, UTF-8, JSON nesting depth (a ``[`` × 1000 payload is an `Invalid`,
  never a RecursionError), no NaN/Infinity, no integer over 18 digits, no float that is not
  finite, a JSON object; every failure an `Invalid` with a short reason.
- `state`: mqtt.md's state document reduced to the members the district uses, each
  checked on its own: a known ``printer_state``, IPP-keyword reasons, counts within
  0..MAX_COUNT, stock within 0..MAX_STOCK. A member out of range is refused (None) and
  named in `State.refused`; the rest is kept.
- `event`: a station event reduced to what the district uses (type, record_id, job_state,
  reasons, error, command name and count), with known enums and capped strings.
- `availability`: ``online`` or ``offline``; anything else is `Invalid`.
- `text`: a station's string for a terminal or a log: control characters (escape
  sequences, bells, new lines) replaced, length capped.

Nothing here does I/O; the callers count and journal what is refused.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from kiosk.contract.documents import DEFAULT_DOCUMENTS, DOCUMENTS

MAX_STATION_MESSAGE = 64 * 1024  # a state or an event; a real one is under 2 KiB
MAX_DEPTH = 8  # a real state nests 3 deep (state > supplies > one supply)
MAX_INT_DIGITS = 18  # anything longer is no count of cards (and fits SQLite's INTEGER)
MAX_COUNT = 10**9  # cards printed, spoiled, rejected, queued: a station's life is far below
MAX_STOCK = 100_000  # blank cards booked at one station: boxes, not a warehouse
MAX_REFILL = 10_000  # one refill (the station's own limit, kiosk/station/core/commands.py)
MAX_MINUTES = 10**6
MAX_REASONS = 32
MAX_TEXT = 200  # a detail or an error code as kept at the district
RECORD_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")  # mqtt.md
KEYWORD = re.compile(r"[a-z][a-z0-9-]{0,63}")  # an IPP keyword or a machine code
PRINTER_STATES = frozenset({"idle", "processing", "stopped"})
JOB_STATES = frozenset({"pending", "pending-held", "processing", "processing-stopped",
                        "completed", "canceled", "aborted"})
EVENT_TYPES = frozenset({"job", "alert", "rejected", "command", "blank", "update"})
AVAILABILITY = frozenset({"online", "offline"})
QUEUE = ("pending", "held", "processing")
COUNTERS = ("printed", "spoiled", "rejected")
STOCK = ("remaining", "low_threshold", "sensor_estimate", "minutes_to_empty")
_STOCK_LIMIT = {"remaining": MAX_STOCK, "low_threshold": MAX_STOCK,
                "sensor_estimate": MAX_STOCK, "minutes_to_empty": MAX_MINUTES}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


class Invalid(ValueError):
    """A message the district refuses as a whole; ``str()`` is the reason."""


def parse_object(payload: bytes, *, max_bytes: int = MAX_STATION_MESSAGE) -> dict[str, Any]:
    """The payload as a JSON object within the limits above, or `Invalid` saying why."""
    if len(payload) > max_bytes:
        raise Invalid(f"{len(payload)} bytes, over the limit of {max_bytes}")
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError as error:
        raise Invalid(f"not UTF-8 (byte {error.start})") from None
    try:
        body = json.loads(text, parse_constant=_no_constant, parse_int=_int,
                          parse_float=_float)
    except RecursionError:
        raise Invalid(f"JSON nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as error:
        raise Invalid(f"not JSON: {error}") from None
    if not isinstance(body, dict):
        raise Invalid(f"a JSON {type(body).__name__}, not an object")
    if _deeper_than(body, MAX_DEPTH):
        raise Invalid(f"JSON nests deeper than {MAX_DEPTH} levels")
    return body


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number")


def _int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(digits)} digits")
    return int(digits)


def _float(literal: str) -> float:
    value = float(literal)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{literal[:20]} is not a finite number")
    return value


def _deeper_than(value: object, limit: int) -> bool:
    if isinstance(value, dict):
        children: Any = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return False
    return limit == 0 or any(_deeper_than(child, limit - 1) for child in children)


def availability(payload: bytes) -> str:
    """``online`` or ``offline`` (mqtt.md), else `Invalid`."""
    word = bytes(payload[:16]).decode("ascii", errors="replace")
    if len(payload) > 16 or word not in AVAILABILITY:
        raise Invalid(f"availability {text(word, 20)!r} is neither online nor offline")
    return word


@dataclass
class State:
    """The members of a station's state the district uses; ``refused`` names the rest."""

    printer_state: str | None
    printer_state_reasons: list[str]
    accepting_jobs: bool
    queue: dict[str, int | None]
    counters: dict[str, int | None]
    stock: dict[str, int | float | None]
    ts: str | None
    refused: list[str] = field(default_factory=list)
    documents: list[str] = field(default_factory=lambda: list(DEFAULT_DOCUMENTS))

    def as_dict(self) -> dict[str, Any]:
        """The shape `kiosk.district.routing` reads (mqtt.md's names)."""
        return {"printer_state": self.printer_state,
                "printer_state_reasons": list(self.printer_state_reasons),
                "accepting_jobs": self.accepting_jobs, "queue": dict(self.queue),
                "counters": dict(self.counters), "stock": dict(self.stock), "ts": self.ts,
                "documents": list(self.documents)}


def state(payload: bytes) -> State:
    """A station's retained state, member by member (`Invalid` if it is no object)."""
    body = parse_object(payload)
    refused: list[str] = []
    printer = body.get("printer_state")
    if printer is not None and printer not in PRINTER_STATES:
        refused.append("printer_state")
        printer = None
    reasons = _keywords(body.get("printer_state_reasons"), "printer_state_reasons", refused)
    accepting = body.get("accepting_jobs")
    if not isinstance(accepting, bool):
        if accepting is not None:
            refused.append("accepting_jobs")
        accepting = False
    members = {name: _member(body, name, refused) for name in ("queue", "counters", "stock")}
    queue = {k: _bounded(members["queue"], k, MAX_COUNT, f"queue.{k}", refused, whole=True)
             for k in QUEUE}
    counters = {k: _bounded(members["counters"], k, MAX_COUNT, f"counters.{k}", refused,
                            whole=True) for k in COUNTERS}
    stock = {k: _bounded(members["stock"], k, _STOCK_LIMIT[k], f"stock.{k}", refused,
                         whole=k != "minutes_to_empty") for k in STOCK}
    ts = body.get("ts")
    ts = ts if isinstance(ts, str) and len(ts) <= 40 else None
    return State(printer, reasons, accepting, queue, counters, stock, ts, refused,
                 _documents(body.get("documents"), refused))


def _documents(value: object, refused: list[str]) -> list[str]:
    """What the station prints (mqtt.md `documents`); absent means the E-KTP alone, and
    anything but a list of known documents is refused (the station is then given none)."""
    if value is None:
        return list(DEFAULT_DOCUMENTS)
    if (isinstance(value, list) and 0 < len(value) <= len(DOCUMENTS)
            and all(isinstance(d, str) and d in DOCUMENTS for d in value)):
        return list(dict.fromkeys(value))
    refused.append("documents")
    return []


def _member(body: dict, name: str, refused: list[str]) -> dict:
    value = body.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        refused.append(name)
        return {}
    return value


def _bounded(member: dict, key: str, limit: int, name: str, refused: list[str], *,
             whole: bool) -> int | float | None:
    """A number in 0..limit, else None (and *name* refused unless it was simply absent)."""
    value = member.get(key)
    if value is None:
        return None
    kinds = int if whole else int | float
    if isinstance(value, bool) or not isinstance(value, kinds) or not 0 <= value <= limit:
        refused.append(name)
        return None
    return value


def _keywords(value: object, name: str, refused: list[str]) -> list[str]:
    """IPP keywords ("none" left out), at most MAX_REASONS; anything else refused."""
    if value is None:
        return []
    if not isinstance(value, list):
        refused.append(name)
        return []
    words = [w for w in value if isinstance(w, str) and KEYWORD.fullmatch(w)]
    if len(words) != len(value) or len(words) > MAX_REASONS:
        refused.append(name)
    return [w for w in words if w != "none"][:MAX_REASONS]


@dataclass(frozen=True)
class Event:
    """A station event as the district uses it."""

    type: str
    record_id: str | None = None
    job_state: str | None = None
    reasons: tuple[str, ...] = ()
    error: str | None = None
    detail: str = ""
    ts: str | None = None
    command: str | None = None  # type "command": its name
    count: int | None = None  # type "command" of a refill: the cards booked

    @property
    def released(self) -> bool:
        return self.type == "job" and self.job_state == "canceled" and "released" in self.reasons


def event(payload: bytes) -> Event:
    """A station event (mqtt.md, Events), checked; `Invalid` says what is wrong."""
    body = parse_object(payload)
    kind = body.get("type")
    if kind not in EVENT_TYPES:
        raise Invalid(f"event type {_shown(kind)} is not one of mqtt.md's")
    rid = body.get("record_id")
    if rid is not None and not (isinstance(rid, str) and RECORD_ID.fullmatch(rid)):
        raise Invalid(f"record_id {_shown(rid)} is not 1-64 of [A-Za-z0-9._-]")
    if kind == "job" and rid is None:
        raise Invalid("a job event without a record_id")
    job_state = body.get("job_state")
    if kind == "job" and job_state not in JOB_STATES:
        raise Invalid(f"job_state {_shown(job_state)} is not an IPP job state")
    refused: list[str] = []
    reasons = tuple(_keywords(body.get("reasons"), "reasons", refused))
    if refused:
        raise Invalid("reasons is not a list of keywords")
    error = body.get("error")
    if error is not None and not (isinstance(error, str) and KEYWORD.fullmatch(error)):
        raise Invalid(f"error {_shown(error)} is not a machine code")
    ts = body.get("ts")
    detail = body.get("detail")
    command, count = _command(body) if kind == "command" else (None, None)
    return Event(kind, rid, job_state if kind == "job" else None, reasons, error,
                 text(detail) if isinstance(detail, str) else "",
                 ts if isinstance(ts, str) and len(ts) <= 40 else None, command, count)


def _command(body: dict) -> tuple[str | None, int | None]:
    name = body.get("name")
    name = name if isinstance(name, str) and KEYWORD.fullmatch(name) else None
    args = body.get("args")
    count = args.get("count") if isinstance(args, dict) else None
    ok = body.get("ok", True) is True
    if name != "refill" or not ok or isinstance(count, bool) or not isinstance(count, int) \
            or not 0 < count <= MAX_REFILL:
        count = None
    return name, count


def text(value: object, limit: int = MAX_TEXT) -> str:
    """A station's string made safe to show as text: no control or direction characters
    (escape sequences, bells, carriage returns), at most *limit* characters."""
    raw = value if isinstance(value, str) else str(value)
    cut = raw[:limit]
    clean = _CONTROL.sub("\ufffd", cut)
    clean = "".join(c if unicodedata.category(c) not in ("Cc", "Cs") else "\ufffd"
                    for c in clean)
    return clean + ("…" if len(raw) > limit else "")


def _shown(value: object) -> str:
    """A refused value in a reason: repr, cut short, control characters replaced."""
    return text(repr(value), 40)
