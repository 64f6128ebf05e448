"""The ``kiosk district watch`` table: every station of a district at a glance.

One row per station from its retained availability and state: link, printer
state and reasons, whether it accepts jobs, its queue, blank-card stock and
time to empty, counters, the age of its state, and whether the router would
send it a record now (`kiosk.district.routing.refusal`). The caption says whether the
district's router is online.

A station's words are untrusted: every cell is a `rich.text.Text` (never read as rich
markup), made by `kiosk.district.inputs.text` (no escape sequence, bell or carriage return
reaches the operator's terminal; lengths capped); a number outside its range shows ``?``;
a state the client refused shows its reason, and a row that still cannot be drawn says
so, so the table never fails for one station.
"""

from __future__ import annotations

import time
from typing import Any

from rich.table import Table
from rich.text import Text

from kiosk.contract.timestamps import parse_rfc3339
from kiosk.district import inputs
from kiosk.district.routing import refusal

ROUTER = "_router"
_STYLE = {"idle": "green", "processing": "cyan", "stopped": "red"}


def station_table(client: Any, now: float | None = None) -> Table:
    """The table for a `DistrictClient`'s current view (*now*: epoch seconds)."""
    now = time.time() if now is None else now
    table = Table(title=f"District {client.district}", caption=_router_line(client))
    for column in _COLUMNS:
        table.add_column(column, justify="right" if column in _NUMERIC else "left")
    invalid = getattr(client, "invalid", {})
    refused = getattr(client, "invalid_states", {})
    for name in client.stations():
        try:
            row = _row(name, client.availability.get(name), client.states.get(name), now,
                       refused.get(name))
        except Exception as error:  # never the whole table for one station
            row = [Text(name), Text("?"), Text(f"cannot show: {type(error).__name__}",
                                               style="red"), *[Text("-")] * 10]
        row.append(Text(str(invalid.get(name, 0)) if invalid.get(name) else "-",
                        style="red" if invalid.get(name) else ""))
        table.add_row(*row)
    return table


_COLUMNS = ("station", "link", "printer", "reasons", "accepting", "queue p/h/x", "stock",
            "to empty", "printed", "spoiled", "rejected", "updated", "route", "invalid msgs")
_NUMERIC = {"stock", "to empty", "printed", "spoiled", "rejected", "updated", "invalid msgs"}


def _row(name: str, link: str | None, state: dict | None, now: float,
         refused: str | None = None) -> list[Text]:
    link_text = Text(inputs.text(link or "?", 16),
                     style="green" if link == "online" else "red")
    why = refusal(link, state)
    route = Text("takes records" if why is None else inputs.text(why, 40),
                 style="green" if why is None else "red")
    if refused and not state:
        return [Text(name), link_text, Text(f"invalid state: {inputs.text(refused, 80)}",
                                            style="red"), *[Text("-")] * 9, route]
    if not state:
        return [Text(name), link_text, *[Text("-")] * 10, route]
    printer = inputs.text(state.get("printer_state", "?"), 20)
    listed = state.get("printer_state_reasons")
    reasons = [inputs.text(r, 64) for r in listed[:inputs.MAX_REASONS]
               if r != "none"] if isinstance(listed, list) else []
    queue, stock, counters = (_member(state, key) for key in ("queue", "stock", "counters"))
    return [
        Text(name),
        link_text,
        Text(printer, style=_STYLE.get(printer, "")),
        Text(", ".join(reasons) or "-",
             style="red" if any(r.endswith("-error") for r in reasons) else ""),
        Text("yes") if state.get("accepting_jobs") is True else Text("no", style="yellow"),
        Text("/".join(_number(queue.get(key, 0)) for key in ("pending", "held", "processing"))),
        Text(_number(stock.get("remaining"))),
        Text(_minutes(stock.get("minutes_to_empty"))),
        Text(_number(counters.get("printed"))),
        Text(_number(counters.get("spoiled"))),
        Text(_number(counters.get("rejected"))),
        Text(_age(state.get("ts"), now)),
        route,
    ]


def _member(state: dict, key: str) -> dict:
    value = state.get(key)
    return value if isinstance(value, dict) else {}


def _number(value: object) -> str:
    """A count as text: "-" when absent, "?" when it is no count in range."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, int) \
            or not 0 <= value <= inputs.MAX_COUNT:
        return "?"
    return str(value)


def _minutes(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not 0 <= value <= inputs.MAX_MINUTES:
        return "?"
    hours, minutes = divmod(round(value), 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def _age(ts: object, now: float) -> str:
    """Seconds since an RFC 3339 UTC stamp such as 2026-01-02T03:04:05Z."""
    if not isinstance(ts, str):
        return "-"
    stamp = parse_rfc3339(ts)
    if stamp is None:
        return "?"
    return f"{max(0, round(now - stamp))} s ago"


def _router_line(client: Any) -> str:
    link = client.availability.get(ROUTER)
    return f"router: {inputs.text(link, 16)}" if link else "router: not seen on this district"
