"""The blank-card ledger's bookings and the register of blanks: what each end of a card
books, records and clears.

Every way a card ends goes through here: the printer's word (`StationCore`), a
person's confirm or reprint at the device (`Desk`) and the district's commands
(`commands`) alike, so that they cannot disagree. The rules:

* a pick books one ``pick`` row, adds one to the job's attempts and one to the stock
  rate; it is booked once per blank: when the printer confirms it (the job's phase
  becomes ``picked``), or, if it never did, when the blank's end is booked;
* a printed blank books ``printed``, a spoiled one ``spoiled``; a completed card
  reprinted is booked back (``printed`` −1) and spoiled;
* a blank's end clears the job's ``phase``, ``pick_counts`` and ``chip_uid``: no card of
  the job is in the printer any more, so a restart has nothing of it to doubt.

Each blank's end is also a row of the register of blanks (chip.md, Custody: its chip's
UID where the job committed one, the record_id, ``printed`` or ``invalid`` with its
category, a detail; never personal data), and each change of a row is told (*tell*: the
core publishes it as a ``blank`` event through the outbox). A spoiled blank is invalid
``gagal-cetak`` unless its facts say otherwise (a chip step that failed: ``gagal-encode``);
a completed card taken back for a reprint is ``rusak``, unless a person declared it
already. A blank's spoiling and its register row are one booking, so the ledger's
``spoiled`` and the register's invalid rows cannot drift apart.

Each booking is one call taking the blank's facts (`Blank`) and returns the job's
columns it changes, for the caller to write in the same update as the job's state
(between two cards every statement counts).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kiosk.station.core.state import Phase
from kiosk.station.core.stock import StockWatch
from kiosk.station.core.store import BlankRow, Job, Ledger, Store

# A blank's end: no card of the job is in the printer any more.
CLEARED: dict[str, object] = {"phase": None, "pick_counts": None, "chip_uid": None}
MAX_DETAIL = 300


@dataclass(frozen=True)
class Blank:
    """The facts of one blank card a booking takes.

    ``uid``: its chip, when known (else the one the job committed, if any);
    ``category``: what a spoiled blank is invalid as (``gagal-cetak`` when not said)."""

    record_id: str
    detail: str = ""
    uid: str | None = None
    category: str | None = None


class CardLedger:
    """Books picks, printed and spoiled blanks and refills in the store, keeps the stock
    watch's figures in step, and keeps the register of blanks (*tell*: each row changed;
    *document*: the document a job's blank is for)."""

    def __init__(self, store: Store, stock: StockWatch, *,
                 tell: Callable[[BlankRow], None] = lambda row: None,
                 document: Callable[[Job | None], str] = lambda job: "ektp") -> None:
        self.store = store
        self.stock = stock
        self.tell = tell
        self.document = document

    def picked(self, blank: Blank, job: Job | None) -> dict[str, object]:
        """A blank left the tray for *job*: the pick, an attempt, the stock rate."""
        self.store.book("pick", 1, blank.record_id, blank.detail)
        self.stock.picked(self.store.ledger())
        return {"attempts": (job.attempts if job else 0) + 1}

    def printed(self, blank: Blank, job: Job | None = None) -> dict[str, object]:
        """The blank came out printed. *job* as read before, when the printer may never
        have confirmed its pick (a card decided after the fact): then the pick too."""
        columns = self._unconfirmed_pick(blank, job)
        self.store.book("printed", 1, blank.record_id, blank.detail)
        self._record(blank, job, "printed", None)
        return {**columns, **CLEARED}

    def spoiled(self, blank: Blank, job: Job | None = None) -> dict[str, object]:
        """The blank will never come out printed; *job* as with `printed`."""
        columns = self._unconfirmed_pick(blank, job)
        self.store.book("spoiled", 1, blank.record_id, blank.detail)
        self._record(blank, job, "invalid", blank.category or "gagal-cetak")
        return {**columns, **CLEARED}

    def unprinted(self, blank: Blank) -> dict[str, object]:
        """A card booked printed is taken back as spoiled (a reprint of a completed card);
        its register row becomes invalid ``rusak``, unless a person declared it already."""
        self.store.book("printed", -1, blank.record_id, blank.detail)
        self.store.book("spoiled", 1, blank.record_id, blank.detail)
        made = self.store.blanks(record_id=blank.record_id, limit=1)
        if made and made[0].outcome == "printed":
            self.invalidate(made[0], blank.category or "rusak", blank.detail)
        return dict(CLEARED)

    def invalidate(self, row: BlankRow, category: str, detail: str) -> BlankRow:
        """A blank declared invalid by a person (or a reprint): the row changes, told."""
        changed = self.store.declare_invalid(row.id, category, detail[:MAX_DETAIL])
        self.tell(changed)
        return changed

    def declared(self, uid: str, category: str, detail: str) -> BlankRow:
        """A blank that never went through the printer declared invalid (found damaged in
        the tray): it leaves the stock (a pick and a spoiled blank), and has its row."""
        self.store.book("pick", 1, None, detail)
        self.store.book("spoiled", 1, None, detail)
        self.stock.picked(self.store.ledger())
        row = self.store.register_blank(uid, None, self.document(None), "invalid", category,
                                        detail[:MAX_DETAIL])
        self.tell(row)
        return row

    def find(self, *, uid: str | None = None, record_id: str | None = None) -> BlankRow | None:
        """The newest row of the register with this UID or record_id."""
        rows = self.store.blanks(uid=uid, record_id=record_id, limit=1)
        return rows[0] if rows else None

    def unpicked(self, blank: Blank) -> None:
        """A blank booked picked that was never used lies untouched in the printer and
        goes to the next card (chip.md, after a crash): its pick is booked back, so the
        next card's pick of it is its only one."""
        self.store.book("pick", -1, blank.record_id, blank.detail)

    def refilled(self, count: int, detail: str) -> Ledger:
        self.store.book("refill", count, None, detail)
        totals = self.store.ledger()
        self.stock.refilled(totals)
        return totals

    def totals(self) -> Ledger:
        return self.store.ledger()

    def _record(self, blank: Blank, job: Job | None, outcome: str,
                category: str | None) -> None:
        uid = blank.uid or (job.chip_uid if job else None)
        row = self.store.register_blank(uid, blank.record_id, self.document(job), outcome,
                                        category, blank.detail[:MAX_DETAIL])
        self.tell(row)

    def _unconfirmed_pick(self, blank: Blank, job: Job | None) -> dict[str, object]:
        if job is None or job.phase == Phase.PICKED:  # picked: booked when it was confirmed
            return {}
        detail = "the printer never confirmed the pick"
        detail += f": {blank.detail}" if blank.detail else ""
        return self.picked(Blank(blank.record_id, detail), job)
