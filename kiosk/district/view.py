"""The ``kiosk district watch`` table: every station of a district at a glance.

One row per station from its retained availability and state: link, printer
state and reasons, whether it accepts jobs, its queue, blank-card stock and
time to empty, counters, the age of its state, and whether the router would
send it a record now (`kiosk.district.routing.refusal`). The caption says whether the
district's router is online.
"""

from __future__ import annotations

import time
from calendar import timegm
from typing import Any

from rich.table import Table
from rich.text import Text

from kiosk.district.routing import refusal

ROUTER = "_router"
_STYLE = {"idle": "green", "processing": "cyan", "stopped": "red"}


def station_table(client: Any, now: float | None = None) -> Table:
    """The table for a `DistrictClient`'s current view (*now*: epoch seconds)."""
    now = time.time() if now is None else now
    table = Table(title=f"District {client.district}", caption=_router_line(client))
    for column in ("station", "link", "printer", "reasons", "accepting", "queue p/h/x",
                   "stock", "to empty", "printed", "spoiled", "rejected", "updated", "route"):
        table.add_column(column, justify="right" if column in _NUMERIC else "left")
    for name in client.stations():
        table.add_row(*_row(name, client.availability.get(name), client.states.get(name), now))
    return table


_NUMERIC = {"stock", "to empty", "printed", "spoiled", "rejected", "updated"}


def _row(name: str, link: str | None, state: dict | None, now: float) -> list[Text | str]:
    link_text = Text(link or "?", style="green" if link == "online" else "red")
    why = refusal(link, state)
    route = Text("takes records" if why is None else why, style="green" if why is None else "red")
    if not state:
        return [name, link_text, *["-"] * 10, route]
    printer = str(state.get("printer_state", "?"))
    listed = state.get("printer_state_reasons")
    reasons = [str(r) for r in listed if r != "none"] if isinstance(listed, list) else []
    queue, stock, counters = (_member(state, key) for key in ("queue", "stock", "counters"))
    return [
        name,
        link_text,
        Text(printer, style=_STYLE.get(printer, "")),
        Text(", ".join(reasons) or "-",
             style="red" if any(r.endswith("-error") for r in reasons) else ""),
        "yes" if state.get("accepting_jobs") else Text("no", style="yellow"),
        "/".join(str(queue.get(key, 0)) for key in ("pending", "held", "processing")),
        _number(stock.get("remaining")),
        _minutes(stock.get("minutes_to_empty")),
        _number(counters.get("printed")),
        _number(counters.get("spoiled")),
        _number(counters.get("rejected")),
        _age(state.get("ts"), now),
        route,
    ]


def _member(state: dict, key: str) -> dict:
    value = state.get(key)
    return value if isinstance(value, dict) else {}


def _number(value: object) -> str:
    return "-" if value is None else str(value)


def _minutes(value: object) -> str:
    if not isinstance(value, int | float):
        return "-"
    hours, minutes = divmod(round(value), 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def _age(ts: object, now: float) -> str:
    """Seconds since an RFC 3339 UTC stamp such as 2026-01-02T03:04:05Z."""
    if not isinstance(ts, str):
        return "-"
    try:
        stamp = timegm(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return "?"
    return f"{max(0, round(now - stamp))} s ago"


def _router_line(client: Any) -> str:
    link = client.availability.get(ROUTER)
    return f"router: {link}" if link else "router: not seen on this district"
