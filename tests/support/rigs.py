"""Small rigs shared by the station's tests: events heard from a print worker, what a
record's K panel is on the wire, the job states the district saw, the Evolis steps."""

from __future__ import annotations

import json
import queue
import time

from kiosk.card.render import render_card
from kiosk.contract.record import parse_record
from kiosk.devices.printer.evolis.panels import encode_card
from kiosk.devices.printer.evolis.protocol import decompress_1bit

# The Evolis commands of a connection and of one card, as `step_of` names them.
CONNECT = ["Rtp", "Rfv", "Pem;0", "Sk;f"]  # Pem;0 and Sk;f: the check after connecting
CARD = ["Pem;2", "Pr;ymcko", "Pmi;F", "Ss", "Sr", "Db;y", "Db;m", "Db;c", "Dbc;k", "Dbc;o",
        "Se", "Pem;0 end"]


def next_of(heard: queue.Queue, kind: type, timeout: float = 10.0):
    """The next event of *kind* put on *heard* (others are passed over); AssertionError
    at the deadline, even while other events keep coming."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            event = heard.get(timeout=left)
        except queue.Empty:
            break
        if isinstance(event, kind):
            return event
    raise AssertionError(f"no {kind.__name__} within {timeout} s")


def step_of(text: str, previous: str) -> str:
    """A command's step name: ``Dbc;k;2;54004`` → ``Dbc;k``, ``Pem;0`` after ``Se`` → end."""
    name, *params = text.split(";")
    if name in ("Db", "Dbc"):
        return f"{name};{params[0] if params else ''}"
    if text == "Pem;0" and previous == "Se":
        return "Pem;0 end"
    return text


def k_panel(record: dict) -> bytes:
    """The K panel the printer gets for *record*, unpacked."""
    panels = encode_card(render_card(parse_record(json.dumps(record).encode())))
    k = next(p for p in panels if p.panel == "k")
    return decompress_1bit(k.data) if k.compressed else k.data


def once_each(events: list[dict]) -> list[str]:
    """Job states in order, each event counted once (the district dedupes by boot_id+seq)."""
    seen, states = set(), []
    for event in events:
        if (event["boot_id"], event["seq"]) not in seen:
            seen.add((event["boot_id"], event["seq"]))
            states.append(event["job_state"])
    return states
