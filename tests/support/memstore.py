"""The core's `Store` in memory, for the core's unit tests: no file, no SQLite.

It keeps what the spool keeps, with the same order and the same answers (the tests of
`tests/station/test_store.py` run on both); it is not durable, and a "restart" in a
test is a new core over the same store (everything a harness does is committed).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

from kiosk.contract.custody import INVALID_CATEGORIES
from kiosk.station.core.store import (
    ACTIVE_STATES,
    FINAL_STATES,
    LEDGER_KINDS,
    BlankRow,
    Job,
    Ledger,
    OutboxItem,
)


@dataclass
class _Row:
    id: int
    job: Job
    ended_at: float | None = None
    updated_at: float = 0.0


class MemoryStore:
    """A `Store` held in dicts."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._ids = itertools.count(1)
        self._rows: dict[str, _Row] = {}
        self._records: dict[str, bytes] = {}
        self._ledger: list[tuple[float, str, int, str | None, str]] = []
        self._outbox: dict[int, OutboxItem] = {}
        self._outbox_ids = itertools.count(1)
        self._meta: dict[str, str] = {}
        self._requests: dict[str, tuple[str, bytes, float]] = {}
        self._blanks: list[BlankRow] = []

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Nothing to make durable: what the core did is kept as it goes."""
        yield

    # -- jobs and their records

    def add_job(self, record_id: str, priority: int, nik_masked: str, payload: bytes) -> bool:
        if record_id in self._rows:
            return False
        job = Job(record_id, priority, "pending", (), None, 0, nik_masked, None, "")
        self._rows[record_id] = _Row(next(self._ids), job, updated_at=self.clock())
        self._records[record_id] = payload
        return True

    def restore_payload(self, record_id: str, payload: bytes) -> bool:
        row = self._rows.get(record_id)
        if row is None or row.job.state != "pending-held" or record_id in self._records:
            return False
        self._records[record_id] = payload
        row.updated_at = self.clock()
        return True

    def job(self, record_id: str) -> Job | None:
        row = self._rows.get(record_id)
        return self._read(row) if row else None

    def next_pending(self) -> Job | None:
        pending = self.jobs("pending")
        return pending[0] if pending else None

    def jobs(self, *states: str) -> list[Job]:
        rows = [row for row in self._rows.values() if row.job.state in states]
        rows.sort(key=lambda row: (-row.job.priority, row.id))
        return [self._read(row) for row in rows]

    def update_job(self, record_id: str, **changes: object) -> None:
        row = self._rows.get(record_id)
        if row is None:
            return
        if "reasons" in changes:
            changes["reasons"] = tuple(changes["reasons"])  # type: ignore[arg-type]
        if isinstance(changes.get("pick_counts"), dict):
            changes["pick_counts"] = dict(changes["pick_counts"])  # type: ignore[arg-type]
        if "state" in changes:
            row.ended_at = self.clock() if changes["state"] in FINAL_STATES else None
        row.job = replace(row.job, **changes)  # type: ignore[arg-type]
        row.updated_at = self.clock()

    def queue_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(ACTIVE_STATES, 0)
        for row in self._rows.values():
            if row.job.state in counts:
                counts[row.job.state] += 1
        return {"pending": counts["pending"], "held": counts["pending-held"],
                "processing": counts["processing"] + counts["processing-stopped"]}

    def ended_at(self, record_id: str) -> float | None:
        """When the job reached a final state (None while it is live)."""
        return self._rows[record_id].ended_at

    def drop_record(self, record_id: str) -> None:
        """The job's record is gone (what the spool's purge does to an ended job)."""
        self._records.pop(record_id, None)

    def _read(self, row: _Row) -> Job:
        job = row.job
        counts = dict(job.pick_counts) if job.pick_counts is not None else None
        return replace(job, payload=self._records.get(job.record_id), pick_counts=counts)

    # -- the blank-card ledger

    def book(self, kind: str, count: int = 1, record_id: str | None = None,
             detail: str = "") -> None:
        if kind not in LEDGER_KINDS:
            raise ValueError(f"no ledger kind {kind!r}")
        self._ledger.append((self.clock(), kind, count, record_id, detail))

    def ledger(self) -> Ledger:
        totals = dict.fromkeys(LEDGER_KINDS, 0)
        for _, kind, count, _, _ in self._ledger:
            totals[kind] += count
        booked = any(kind == "refill" for _, kind, _, _, _ in self._ledger)
        return Ledger(refills=totals["refill"], picks=totals["pick"], printed=totals["printed"],
                      spoiled=totals["spoiled"], booked=booked)

    # -- the register of blanks

    def register_blank(self, uid: str | None, record_id: str | None, document: str,
                       outcome: str, category: str | None, detail: str) -> BlankRow:
        row = BlankRow(len(self._blanks) + 1, self.clock(), uid, record_id, document, outcome,
                       category, detail)
        self._blanks.append(row)
        return row

    def declare_invalid(self, row_id: int, category: str, detail: str) -> BlankRow:
        row = replace(self._blanks[row_id - 1], outcome="invalid", category=category,
                      detail=detail, at=self.clock())
        self._blanks[row_id - 1] = row
        return row

    def blanks(self, *, uid: str | None = None, record_id: str | None = None,
               limit: int = -1) -> list[BlankRow]:
        rows = [row for row in reversed(self._blanks)
                if (uid is None or row.uid == uid)
                and (uid is not None or record_id is None or row.record_id == record_id)]
        return rows if limit < 0 else rows[:limit]

    def register_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(("printed", *INVALID_CATEGORIES), 0)
        for row in self._blanks:
            counts[row.category if row.outcome == "invalid" else "printed"] += 1
        return counts

    # -- the outbox

    def enqueue(self, topic: str, payload: bytes, response: bytes | None = None) -> OutboxItem:
        item = OutboxItem(next(self._outbox_ids), topic, payload, response)
        self._outbox[item.id] = item
        return item

    def outbox(self, after: int = 0, limit: int = -1) -> list[OutboxItem]:
        items = [item for item_id, item in sorted(self._outbox.items()) if item_id > after]
        return items if limit < 0 else items[:limit]

    def confirm(self, item_id: int) -> None:
        self._outbox.pop(item_id, None)

    # -- requests carried out once

    def request_reply(self, key: str) -> bytes | None:
        kept = self._requests.get(key)
        return kept[1] if kept else None

    def remember_request(self, key: str, name: str, reply: bytes) -> None:
        self._requests[key] = (name, reply, self.clock())

    def forget_requests(self, older_than: float) -> int:
        old = [key for key, (_, _, at) in self._requests.items() if at < older_than]
        for key in old:
            del self._requests[key]
        return len(old)

    # -- small counters and settings

    def get_meta(self, key: str, default: str = "") -> str:
        return self._meta.get(key, default)

    def set_meta(self, key: str, value: str) -> None:
        self._meta[key] = value

    def bump(self, key: str, by: int = 1) -> int:
        value = int(self.get_meta(key, "0")) + by
        self.set_meta(key, str(value))
        return value
