"""The card-printer driver interface, and the facts a driver reports.

A driver moves one card at a time through its printer and says what it saw,
never what it means for the ledger: the station's core turns these facts into
picks, prints, spoiled blanks and uncertain cards (card-printer.md, "Printer
drivers"). A new printer family is one class with the methods of `CardPrinter`.

The fate of the blank when a card fails is one of the `BLANK_*` facts of
`kiosk.station.core.events`:

* ``untouched``   no blank was taken (the printer refused before the pick);
* ``maybe-taken`` the pick was asked for and the printer never confirmed it;
* ``gone``        a blank was taken and will not come out printed;
* ``unknown``     the card may have come out printed: nobody here can tell;
* ``inside``      a blank was taken and lies untouched in the printer (`HoldCard`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from kiosk.card.render import CardImages
from kiosk.station.core.events import BLANK_UNTOUCHED


class PrinterError(Exception):
    """The printer could not do what was asked.

    ``reasons`` are IPP printer-state-reasons; ``link_lost`` means the link to
    the printer failed or stopped answering, so the driver must reconnect.
    """

    def __init__(self, reasons: tuple[str, ...], detail: str, *, link_lost: bool = False):
        super().__init__(detail)
        self.reasons = reasons
        self.detail = detail
        self.link_lost = link_lost


class CardError(PrinterError):
    """A card failed; ``blank`` says what became of its blank (a BLANK_* fact)."""

    def __init__(self, cause: PrinterError, *, blank: str = BLANK_UNTOUCHED):
        super().__init__(cause.reasons, cause.detail, link_lost=cause.link_lost)
        self.blank = blank


class HoldCard(Exception):
    """Raised by a smart-card step that could not start (the encoder's reader is gone): the
    card stays inside the printer, untouched, for the next card; ``reasons`` say why."""

    def __init__(self, reasons: tuple[str, ...], detail: str) -> None:
        super().__init__(detail)
        self.reasons = reasons
        self.detail = detail


class CardHooks(Protocol):
    record_id: str  # the job's name at a print server (never a name or a NIK)

    def document(self) -> Any:
        """The card as this driver sends it (`CardPrinter.prepare`'s result); waited for
        only once the printer is ready for it."""

    def ask_pick(self) -> None:
        """The printer is ready for this card: ask now whether a blank may be taken, so the
        answer is on its way while the card is still being rendered (`may_pick` asks
        itself if this was not called)."""

    def may_pick(self) -> bool:
        """Asked just before a blank may be taken; False withdraws the card."""

    def picked(self, marks: dict | None = None) -> None:
        """From now on a blank may be in the printer; *marks* (e.g. an IPP job-id) are
        kept with the card, to ask the printer about it after a crash."""

    def trouble(self, reasons: tuple[str, ...]) -> None:
        """The printer reports these error reasons while the card waits in it."""


class CardPrinter(Protocol):
    def connect(self) -> str:
        """Reach the printer; a line that names it. PrinterError if it cannot."""

    def close(self) -> None: ...

    def check(self) -> tuple[str, ...]:
        """IPP reasons the printer cannot take a card now; () when it can."""

    def prepare(self, card: CardImages) -> Any:
        """The rendered card → what `print_card` sends (runs ahead, on another thread)."""

    def print_card(self, hooks: CardHooks) -> str | None:
        """One card; raises CardError on failure; `finish` follows success. May return
        how it knows the card came out, when that is not the plain way."""

    def finish(self) -> None: ...

    def counters(self) -> dict[str, int] | None:
        """The printer's own counts that tell what became of a card (None: it has none)."""


DriverFactory = Callable[[Any], CardPrinter]
