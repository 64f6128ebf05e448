"""The core's memory, as the core needs it: `Store`, and the facts it returns.

The core decides; what it must not lose across a power cut (jobs and their records,
the blank-card ledger, the outbox of events and replies, a few counters, the requests
carried out) it keeps in a `Store`. This module owns that interface: the SQLite spool
(`kiosk.station.spool.Spool`, durable, one transaction per step of the station loop)
is its adapter, and the core's unit tests run on an implementation in memory
(`tests/support/memstore.py`). The core never imports the adapter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

ACTIVE_STATES = ("pending", "pending-held", "processing", "processing-stopped")
FINAL_STATES = ("completed", "canceled", "aborted")
LEDGER_KINDS = ("refill", "pick", "printed", "spoiled")


@dataclass(frozen=True)
class Job:
    record_id: str
    priority: int
    state: str
    reasons: tuple[str, ...]
    phase: str | None
    attempts: int
    nik_masked: str
    payload: bytes | None
    detail: str
    pick_counts: dict | None = None
    chip_uid: str | None = None  # the chip of the blank committed to the job (chip.md)


@dataclass(frozen=True)
class BlankRow:
    """One row of the station's register of blanks (chip.md, Custody): no personal data."""

    id: int
    at: float
    uid: str | None  # upper-case hex; None where the station has no encoder
    record_id: str | None
    document: str
    outcome: str  # printed | invalid
    category: str | None  # when invalid: one of kiosk.contract.custody.INVALID_CATEGORIES
    detail: str


@dataclass(frozen=True)
class OutboxItem:
    id: int
    topic: str
    payload: bytes
    response: bytes | None  # correlation data for a command reply, else None


@dataclass(frozen=True)
class Ledger:
    """The blank-card ledger's totals."""

    refills: int
    picks: int
    printed: int
    spoiled: int
    booked: bool  # a refill was ever booked

    @property
    def remaining(self) -> int | None:
        return self.refills - self.picks if self.booked else None

    @property
    def balanced(self) -> bool:
        """Every picked card is printed or spoiled (none in flight)."""
        return self.picks == self.printed + self.spoiled


class Store(Protocol):
    """What the core keeps; every change is part of the caller's transaction."""

    # -- jobs and their records
    def add_job(self, record_id: str, priority: int, nik_masked: str, payload: bytes) -> bool:
        """Spool a new job as pending; False if the record_id was seen before."""

    def restore_payload(self, record_id: str, payload: bytes) -> bool:
        """Give a held job whose record was missing its record again; False if not such."""

    def job(self, record_id: str) -> Job | None: ...

    def next_pending(self) -> Job | None:
        """The job to print next: highest priority, then arrival order."""

    def jobs(self, *states: str) -> list[Job]:
        """Jobs in *states*, in print order."""

    def update_job(self, record_id: str, **changes: object) -> None:
        """Set columns of a job (state, reasons, phase, attempts, detail, pick_counts);
        a final state stamps its end (the record's retention starts), another clears it."""

    def queue_counts(self) -> dict[str, int]:
        """``pending``, ``held`` and ``processing`` (with processing-stopped) jobs."""

    # -- the blank-card ledger
    def book(self, kind: str, count: int = 1, record_id: str | None = None,
             detail: str = "") -> None: ...

    def ledger(self) -> Ledger: ...

    # -- the register of blanks (one row per blank taken, by its chip where it has one)
    def register_blank(self, uid: str | None, record_id: str | None, document: str,
                       outcome: str, category: str | None, detail: str) -> BlankRow: ...

    def declare_invalid(self, row_id: int, category: str, detail: str) -> BlankRow:
        """A printed blank declared invalid afterwards (rusak, perubahan-elemen-data)."""

    def blanks(self, *, uid: str | None = None, record_id: str | None = None,
               limit: int = -1) -> list[BlankRow]:
        """Rows with this UID or record_id (or all), newest first."""

    def register_counts(self) -> dict[str, int]:
        """``printed`` and each invalid category: how many rows are so now."""

    # -- the outbox
    def enqueue(self, topic: str, payload: bytes, response: bytes | None = None) -> OutboxItem:
        ...

    def outbox(self, after: int = 0, limit: int = -1) -> list[OutboxItem]:
        """Unconfirmed items in order: those after id *after*, at most *limit* of them."""

    def confirm(self, item_id: int) -> None: ...

    # -- requests carried out once
    def request_reply(self, key: str) -> bytes | None: ...

    def remember_request(self, key: str, name: str, reply: bytes) -> None: ...

    def forget_requests(self, older_than: float) -> int: ...

    # -- small counters and settings
    def get_meta(self, key: str, default: str = "") -> str: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def bump(self, key: str, by: int = 1) -> int: ...
