"""``kiosk status``: what the local spool holds, for the technician at the device.

Reads the spool only; prints the queue, the blank-card ledger and the events
still waiting for the broker. No personal data: record ids and masked NIKs.
"""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from kiosk.station.config import Config
from kiosk.station.spool import Spool


def print_status(config: Config, console: Console | None = None) -> None:
    console = console or Console()
    spool = Spool(config.station.spool)
    try:
        _queue(console, spool)
        _ledger(console, spool)
        _outbox(console, spool)
    finally:
        spool.close()


def _queue(console: Console, spool: Spool) -> None:
    table = Table(title="Queue")
    for column in ("record", "NIK", "state", "reasons", "priority"):
        table.add_column(column)
    for job in spool.jobs("pending", "pending-held", "processing", "processing-stopped"):
        table.add_row(job.record_id, job.nik_masked, job.state, ", ".join(job.reasons) or "-",
                      str(job.priority))
    console.print(table)


def _ledger(console: Console, spool: Spool) -> None:
    ledger = spool.ledger()
    remaining = "not booked yet" if ledger.remaining is None else str(ledger.remaining)
    console.print(
        f"Blank cards: refilled {ledger.refills}, picked {ledger.picks}, printed "
        f"{ledger.printed}, spoiled {ledger.spoiled}, in the tray {remaining}"
        + ("" if ledger.balanced else "  (cards in doubt: see uncertain jobs)")
    )
    console.print(f"Rejected records: {spool.get_meta('rejected', '0')}")
    failures = spool.get_meta("link_failures", "0")
    if failures != "0":
        console.print(f"Broker: {failures} failed connection attempts; last: "
                      f"{spool.get_meta('link_error')}")


def _outbox(console: Console, spool: Spool) -> None:
    items = spool.outbox()
    console.print(f"Messages waiting for the broker: {len(items)}")
    for item in items[-10:]:
        body = json.loads(item.payload)
        kind = body.get("type", "reply")
        console.print(f"  {kind} {body.get('record_id', '')} {body.get('job_state', '')}")
