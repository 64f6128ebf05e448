"""The blank-card ledger's bookings: what each end of a card books and what it clears.

Every way a card ends goes through here: the printer's word (`StationCore`), a
person's confirm or reprint at the device (`Desk`) and the district's commands
(`commands`) alike, so that they cannot disagree. The rules:

* a pick books one ``pick`` row, adds one to the job's attempts and one to the stock
  rate; it is booked once per blank: when the printer confirms it (the job's phase
  becomes ``picked``), or, if it never did, when the blank's end is booked;
* a printed blank books ``printed``, a spoiled one ``spoiled``; a completed card
  reprinted is booked back (``printed`` −1) and spoiled;
* a blank's end clears the job's ``phase`` and ``pick_counts``: no card of the job
  is in the printer any more, so a restart has nothing of it to doubt.

Each booking is one call taking the blank's facts (`Blank`) and returns the job's
columns it changes, for the caller to write in the same update as the job's state
(between two cards every statement counts). The chip's UID and a blank's custody
category (issues 26/27) are facts of a `Blank`: new fields there, booked here.
"""

from __future__ import annotations

from dataclasses import dataclass

from kiosk.station.core.state import Phase
from kiosk.station.core.stock import StockWatch
from kiosk.station.core.store import Job, Ledger, Store

# A blank's end: no card of the job is in the printer any more.
CLEARED: dict[str, object] = {"phase": None, "pick_counts": None}


@dataclass(frozen=True)
class Blank:
    """The facts of one blank card a booking takes."""

    record_id: str
    detail: str = ""


class CardLedger:
    """Books picks, printed and spoiled blanks and refills in the store, and keeps the
    stock watch's figures in step."""

    def __init__(self, store: Store, stock: StockWatch) -> None:
        self.store = store
        self.stock = stock

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
        return {**columns, **CLEARED}

    def spoiled(self, blank: Blank, job: Job | None = None) -> dict[str, object]:
        """The blank will never come out printed; *job* as with `printed`."""
        columns = self._unconfirmed_pick(blank, job)
        self.store.book("spoiled", 1, blank.record_id, blank.detail)
        return {**columns, **CLEARED}

    def unprinted(self, blank: Blank) -> dict[str, object]:
        """A card booked printed is taken back as spoiled (a reprint of a completed card)."""
        self.store.book("printed", -1, blank.record_id, blank.detail)
        self.store.book("spoiled", 1, blank.record_id, blank.detail)
        return dict(CLEARED)

    def refilled(self, count: int, detail: str) -> Ledger:
        self.store.book("refill", count, None, detail)
        totals = self.store.ledger()
        self.stock.refilled(totals)
        return totals

    def totals(self) -> Ledger:
        return self.store.ledger()

    def _unconfirmed_pick(self, blank: Blank, job: Job | None) -> dict[str, object]:
        if job is None or job.phase == Phase.PICKED:  # picked: booked when it was confirmed
            return {}
        detail = "the printer never confirmed the pick"
        detail += f": {blank.detail}" if blank.detail else ""
        return self.picked(Blank(blank.record_id, detail), job)
