"""``kiosk status``: what the local spool holds, for the technician at the device.

Reads the spool only; prints the queue, the blank-card ledger, the register of
blanks (chip.md, Custody: printed and each invalid category), the foreign blanks
the district named, and the events still waiting for the broker. No personal
data: record ids, masked NIKs and chip UIDs.
Plain text, so the station's Pi needs no terminal library for it.
"""

from __future__ import annotations

import json
import sys
from typing import TextIO

from kiosk.contract.custody import INVALID_CATEGORIES
from kiosk.station.config import Config
from kiosk.station.spool import Spool

QUEUE_COLUMNS = ("record", "NIK", "state", "reasons", "priority")


def print_status(config: Config, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    spool = Spool(config.station.spool)
    try:
        _queue(out, spool)
        _ledger(out, spool)
        _register(out, spool)
        _foreign(out, spool)
        _outbox(out, spool)
    finally:
        spool.close()


def _queue(out: TextIO, spool: Spool) -> None:
    rows = [(job.record_id, job.nik_masked, job.state, ", ".join(job.reasons) or "-",
             str(job.priority))
            for job in spool.jobs("pending", "pending-held", "processing", "processing-stopped")]
    print("Queue", file=out)
    for line in _table(QUEUE_COLUMNS, rows):
        print("  " + line, file=out)
    if not rows:
        print("  (empty)", file=out)


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=False)]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in (header, *rows)]


def _ledger(out: TextIO, spool: Spool) -> None:
    ledger = spool.ledger()
    remaining = "not booked yet" if ledger.remaining is None else str(ledger.remaining)
    print(f"Blank cards: refilled {ledger.refills}, picked {ledger.picks}, printed "
          f"{ledger.printed}, spoiled {ledger.spoiled}, in the tray {remaining}"
          + ("" if ledger.balanced else "  (cards in doubt: see uncertain jobs)"), file=out)
    print(f"Rejected records: {spool.get_meta('rejected', '0')}", file=out)
    failures = spool.get_meta("link_failures", "0")
    if failures != "0":
        print(f"Broker: {failures} failed connection attempts; last: "
              f"{spool.get_meta('link_error')}", file=out)


def _register(out: TextIO, spool: Spool) -> None:
    counts = spool.register_counts()
    invalid = ", ".join(f"{category} {counts.get(category, 0)}"
                        for category in INVALID_CATEGORIES)
    print(f"Register of blanks: printed {counts.get('printed', 0)}; invalid: {invalid}",
          file=out)


def _foreign(out: TextIO, spool: Spool) -> None:
    """The blanks the district found in none of its manifests (meta ``foreign_blanks``,
    uid → what it said): each stands as ``foreign-blank-warning`` until declared."""
    raw = spool.get_meta("foreign_blanks", "{}")
    try:
        foreign = json.loads(raw)
    except ValueError:
        print(f"Foreign blanks: unreadable in the spool ({raw[:60]!r})", file=out)
        return
    print(f"Foreign blanks named by the district: {len(foreign)}", file=out)
    for uid, said in sorted(foreign.items()):
        print(f"  {uid}  {said}", file=out)


def _outbox(out: TextIO, spool: Spool) -> None:
    items = spool.outbox()
    print(f"Messages waiting for the broker: {len(items)}", file=out)
    for item in items[-10:]:
        body = json.loads(item.payload)
        kind = body.get("type", "reply")
        print(f"  {kind} {body.get('record_id', '')} {body.get('job_state', '')}", file=out)
