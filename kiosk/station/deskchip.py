"""Desk mode (chip.md, ``[encoder] mode = "desk"``): the chip encoded on a reader on the
desk, the card fed by hand into the printer's manual slot, and the handover scan.

For printers whose driver cannot stop a card at an encoder (a Fargo behind CUPS, an
Evolis), the operator carries the card between the steps, and the LCD says what to do
next (`ev.DeskPrompt`, shown through the core's panel view). `DeskChip` is the step
object the print worker calls for each card in desk mode; it talks to the encoder, the
operator (prompts) and the core (the card's hooks: the pick, the chip's commit), and
reports every failure as the driver would, a `CardError` with the blank's fate:

1. the reader must be clear (a card left on it is asked off first);
2. the pick is asked (`may_pick`): a blank may be taken from now on;
3. the operator lays one blank on the reader; its UID is committed to the job
   (`ChipSeen` → `AnswerPick`) before anything is written, then the blank is booked
   taken (`picked`); a chip the core refuses (one the register knows) is not a blank of
   ours: nothing is written, nothing booked, and it is asked off the reader;
4. personalize, verify, read the UID again: any failure → invalid ``gagal-encode``: the
   blank never entered the printer, the LCD says to put it aside (waited for), and the
   job tries again on a new blank under ``printer.max_attempts``;
5. the operator feeds the card into the printer's manual slot; the driver prints it with
   manual feed (Evolis ``Pmi;M``, IPP ``media-source`` = ``manual``). A print that fails
   after the encode loses the blank whatever the driver says (it was taken at the desk):
   ``gagal-cetak``;
6. the handover scan (`handover`): the printed card on the reader again; its UID must be
   the one committed, else `ev.HandoverMismatch` and the card is held.

No wait is longer than ``wait_s`` (``[encoder] card_wait_s``, 120 s by default at a desk):
a blank not laid in time ends the card with nothing taken (the job starts again at once,
so the LCD keeps asking). Nothing is ever written to a chip that is not the one committed
for the record: the encoder itself refuses (kiosk/devices/encoder/pcsc.py).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from kiosk.devices.encoder.facts import (
    CardPresent,
    ChipUnreadable,
    NoCard,
    Personalized,
    ReaderGone,
    ReaderPresent,
    SecondCard,
    why_not,
)
from kiosk.devices.printer.base import CardError, PrinterError
from kiosk.station.core import events as ev

log = logging.getLogger(__name__)

POLL_S = 0.2  # how often the reader is looked at while waiting for a card to leave it

# The prompts (their texts, in Bahasa Indonesia and English: kiosk/devices/panel/screens.py).
CLEAR = "clear-reader"  # a card lies on the reader before a new blank is asked for
LAY = "lay-blank"  # lay one blank on the reader
SECOND = "second-card"  # two cards on the reader: take one off
ENCODING = "encoding"  # the chip is being written: do not lift the card
NOT_BLANK = "not-blank"  # the card on the reader is not a blank of ours: take it off
FAILED = "encode-failed"  # gagal-encode: put this card aside, take a new blank
TO_PRINTER = "to-printer"  # feed the card into the printer's manual slot
PRINT_FAILED = "print-failed"  # gagal-cetak: put this card aside
HANDOVER = "handover"  # lay the printed card on the reader (handover scan)
HANDED = "hand-over"  # it matches: hand the card over
MISMATCH = "mismatch"  # it does not: put it aside, a person decides
PROMPTS = (CLEAR, LAY, SECOND, ENCODING, NOT_BLANK, FAILED, TO_PRINTER, PRINT_FAILED,
           HANDOVER, HANDED, MISMATCH)


def _untouched(detail: str, reasons: tuple[str, ...] = ()) -> CardError:
    return CardError(PrinterError(reasons, detail), blank=ev.BLANK_UNTOUCHED)


class DeskChip:
    """The desk reader's *encoder* (a `PcscEncoder`), the operator's prompts (*emit*)::

        desk = DeskChip(encoder, events.put, wait_s=120)
        how = desk.make(printer, card)     # encode, then print with manual feed
        verdict = desk.handover(card, how)  # CardPrinted or HandoverMismatch
        desk.after(verdict)                 # the card is taken off the reader
    """

    def __init__(self, encoder: Any, emit: Callable[[object], None], *, wait_s: float,
                 poll_s: float = POLL_S) -> None:
        self.encoder = encoder
        self.emit = emit
        self.wait_s = wait_s
        self.poll_s = poll_s
        self._shown: tuple[str | None, str | None] = (None, None)

    def close(self) -> None:
        self.encoder.close()

    def check(self) -> tuple[str, ...]:
        """The reasons the desk gives for not taking a card now (its reader is gone)."""
        seen = self.encoder.check()
        if isinstance(seen, ReaderPresent):
            return ()
        log.warning("desk reader: %s", why_not(seen))
        return (ev.READER_MISSING,)

    # -- before the print ------------------------------------------------------------------

    def make(self, printer: Any, card: Any) -> str | None:
        """Encode a blank at the desk for *card*, then print it from the manual slot."""
        try:
            self.encode(card)
        except CardError:
            self._prompt(None, None)  # the card is put aside already, or none was taken
            raise
        finally:
            self.encoder.release()
        try:
            return printer.print_card(card)
        except CardError as error:
            if error.blank in (ev.BLANK_UNTOUCHED, ev.BLANK_MAYBE_TAKEN):
                # The printer took nothing, but the blank was taken at the desk and holds
                # the record: it never comes back (gagal-cetak), put aside by the operator.
                error = CardError(PrinterError(error.reasons, f"{error.detail}; the card"
                                               " encoded at the desk was set aside",
                                               link_lost=error.link_lost), blank=ev.BLANK_GONE)
            if error.blank == ev.BLANK_GONE:
                self._prompt(card.record_id, PRINT_FAILED)
            raise error

    def encode(self, card: Any) -> None:
        """Steps 1-4; returns with the chip personalized for *card*'s record, else raises
        `CardError` (untouched: nothing taken; gone: invalid, the reason on *card*)."""
        rid = card.record_id
        self._clear_reader(rid)
        if not card.may_pick():
            raise _untouched("pick withdrawn by the station")
        seen = self._one_card(rid, LAY, "no blank was laid on the desk reader")
        if not isinstance(seen, CardPresent):
            card.picked()
            self._spoil(card, why_not(seen))
        card.uid = seen.uid
        self._prompt(rid, ENCODING)
        if not card.commit_chip(seen.uid):
            self.encoder.release()
            self._wait_clear(rid, NOT_BLANK)
            raise _untouched(f"chip {seen.uid} on the desk reader was not committed to the job"
                             " (the register knows it: not a new blank): nothing written")
        card.picked()
        done = self.encoder.personalize(json.loads(card.job.payload), seen.uid)
        if not isinstance(done, Personalized):
            self._spoil(card, why_not(done))
        again = self.encoder.read_card(wait_s=0)
        if again != seen:
            self._spoil(card, f"the chip on the desk reader is no longer {seen.uid}:"
                              f" {why_not(again)}")
        log.info("chip %s personalized at the desk for %s", seen.uid, rid)
        self._prompt(rid, TO_PRINTER)

    def _spoil(self, card: Any, reason: str) -> None:
        """The chip step failed: the blank is invalid (gagal-encode) and put aside."""
        card.chip_failed(reason)
        self.encoder.release()
        self._wait_clear(card.record_id, FAILED)
        raise CardError(PrinterError((), f"chip step failed at the desk: {card.chip_failure};"
                                         " the blank was put aside"), blank=ev.BLANK_GONE)

    # -- after the print -------------------------------------------------------------------

    def handover(self, card: Any, how: str) -> ev.CardPrinted | ev.HandoverMismatch:
        """The handover scan of *card*, printed: its event for the core."""
        rid, expected = card.record_id, card.uid
        seen = self._one_card(rid, HANDOVER, "", spoil=False)
        self.encoder.release()
        if isinstance(seen, CardPresent) and seen.uid == expected:
            detail = f"handover scan: chip {expected}, the one encoded for it"
            return ev.CardPrinted(rid, f"{how}; {detail}" if how else detail)
        uid = seen.uid if isinstance(seen, CardPresent) else None
        what = f"chip {uid}" if uid else why_not(seen)
        log.warning("handover scan of %s: %s, not chip %s: card held", rid, what, expected)
        return ev.HandoverMismatch(rid, uid, expected,
                                   f"handover scan: {what}, not chip {expected} encoded for"
                                   " this record: card held until a person decides")

    def after(self, verdict: object) -> None:
        """The card of *verdict* is taken off the reader (waited for), then nothing is asked."""
        rid = getattr(verdict, "record_id", None)
        matched = isinstance(verdict, ev.CardPrinted)
        self._wait_clear(rid, HANDED if matched else MISMATCH)
        self._prompt(None, None)

    # -- the reader ------------------------------------------------------------------------

    def _clear_reader(self, rid: str) -> None:
        seen = self.encoder.read_card(wait_s=0)
        self.encoder.release()
        if isinstance(seen, ReaderGone):
            raise _untouched(f"desk reader: {seen.reason}", (ev.READER_MISSING,))
        if not isinstance(seen, NoCard) and not self._wait_clear(rid, CLEAR):
            raise _untouched(f"a card stayed on the desk reader for {self.wait_s:g} s:"
                             " a new blank cannot be told from it")

    def _one_card(self, rid: str, prompt: str, none: str, *, spoil: bool = True) -> Any:
        """The one card laid on the reader within ``wait_s``, as read (a second card is
        asked off and waited for). With *spoil*, no card or a gone reader ends the card
        with nothing taken (`CardError`); without, that fact is returned."""
        self._prompt(rid, prompt)
        deadline = time.monotonic() + self.wait_s
        while True:
            seen = self.encoder.read_card(wait_s=max(0.0, deadline - time.monotonic()))
            if isinstance(seen, SecondCard) and time.monotonic() < deadline:
                self.encoder.release()
                self._prompt(rid, SECOND)
                time.sleep(self.poll_s)
                continue
            if isinstance(seen, ChipUnreadable) or not spoil:
                return seen
            if isinstance(seen, SecondCard):
                raise _untouched(f"{len(seen.slots)} cards stayed on the desk reader for"
                                 f" {self.wait_s:g} s: nothing read, nothing taken")
            if isinstance(seen, ReaderGone):
                raise _untouched(f"desk reader: {seen.reason}", (ev.READER_MISSING,))
            if isinstance(seen, NoCard):
                raise _untouched(f"{none} within {self.wait_s:g} s: nothing taken")
            return seen

    def _wait_clear(self, rid: str | None, prompt: str) -> bool:
        """Ask with *prompt* until the reader is empty (or gone), up to ``wait_s``."""
        self._prompt(rid, prompt)
        deadline = time.monotonic() + self.wait_s
        while True:
            seen = self.encoder.read_card(wait_s=0)
            self.encoder.release()
            if isinstance(seen, NoCard | ReaderGone):
                return True
            if time.monotonic() >= deadline:
                log.warning("desk reader: the card was not taken off within %g s", self.wait_s)
                return False
            time.sleep(self.poll_s)

    def _prompt(self, rid: str | None, prompt: str | None) -> None:
        if (rid, prompt) != self._shown:
            self._shown = (rid, prompt)
            self.emit(ev.DeskPrompt(rid, prompt))
