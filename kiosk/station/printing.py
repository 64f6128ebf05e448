"""The print worker: one thread that owns the card printer.

It connects (and reconnects when the port vanishes or stops answering),
watches for faults and their clearing, renders cards ahead of time on a
second thread, and runs each card the core starts. Everything it learns goes
back to the core as events; it decides nothing about jobs. A card's pick is asked
and answered through its `_Card` (the driver's `CardHooks`); when the next card is
rendered by the time one comes out, its pick is asked with that card's end
(`CardPrinted.then`), so that one commit books the one and marks the other.

Wiring::

    worker = PrintWorker(make_printer(config.printer), render, queue.put)
    worker.start()
    worker.start_card("rec-1", payload)      # from a StartCard action
    worker.answer_pick(answer)               # from an AnswerPick action (its token)
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kiosk.devices.encoder.facts import (
    CardPresent,
    ChipState,
    Personalized,
    ReaderGone,
    why_not,
)
from kiosk.devices.printer.base import CardError, CardPrinter, HoldCard, PrinterError
from kiosk.station.core import events as ev

log = logging.getLogger(__name__)

Renderer = Callable[[bytes], Any]  # spooled record → the driver's document
PICK_ANSWER_TIMEOUT = 30.0
PROBE = ev.ProbePrinter()


class RenderFailed(Exception):
    """The card could not be rendered: the job is bad, the printer is fine."""


@dataclass
class _Ahead:
    """The card the core said is next (`Prefetch`) and its render, under way or done."""

    job: ev.StartCard
    render: Future
    next: bool = True  # may still be chained to the card printing now


class PrintWorker:
    """Drives a `CardPrinter` on its own thread; reports with *emit*.

    Threads: the station thread calls the methods under "called from the station
    thread"; every other field belongs to the printer thread, except the card rendered
    ahead (`_ahead`), which both touch under `_lock`, and `_busy`, which only the
    printer thread writes (`stuck` reads it whole).
    """

    def __init__(
        self,
        printer: CardPrinter,
        render: Renderer,
        emit: Callable[[object], None],
        *,
        poll_s: float = 1.0,
        idle_check_s: float = 5.0,
        resync_s: float = 6.0,
        card_budget_s: float = 600.0,
        step_budget_s: float = 60.0,
        encoder: Any | None = None,
        desk: Any | None = None,
    ) -> None:
        self.printer = printer
        # Inline encoding (chip.md): the chip of each card is read, committed and
        # personalized at the printer's encoder before its surface is printed.
        self.encoder = encoder
        # Desk mode (kiosk/station/deskchip.py): the chip encoded on a reader on the desk,
        # the card fed by hand into the manual slot, and a handover scan after the print.
        self.desk = desk
        self.render = render
        self.emit = emit
        self.poll_s = poll_s
        self.idle_check_s = idle_check_s
        self.resync_s = resync_s
        self._jobs: queue.Queue[ev.StartCard | ev.ProbePrinter | ev.ResolveCards | None] = (
            queue.Queue())
        self._unresolved: tuple[tuple[str, dict | None], ...] = ()
        self._answers: queue.Queue[ev.AnswerPick] = queue.Queue()
        self._tokens = itertools.count(1)  # one per pick request (PickRequested.token)
        self._lock = threading.Lock()
        self._ahead: _Ahead | None = None
        # The card a print server holds behind the one printing (its pick ahead allowed):
        # run right after it, whatever became of that one (`_AheadCard`). Printer thread only.
        self._held_ahead: ev.StartCard | None = None
        self._supplies: tuple[dict, ...] = ()  # as last reported (SuppliesSeen); printer thread
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="render")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="printer", daemon=True)
        self._connected = False
        self._reasons: tuple[str, ...] | None = None
        # Each blocking step is given a budget beyond every timeout inside it (a card:
        # its downloads, print time, the pick answer). Past it the thread is stuck.
        self.card_budget_s, self.step_budget_s = card_budget_s, step_budget_s
        self._busy: tuple[float, float] | None = None  # (since, budget) of the step under way

    # -- called from the station thread -------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stuck(self, now: float | None = None) -> bool:
        """The printer thread is in a step for longer than that step's budget (any thread)."""
        busy = self._busy
        now = time.monotonic() if now is None else now
        return busy is not None and now - busy[0] > busy[1]

    def busy(self) -> bool:
        """The printer thread is in a step (connecting, a check, a card) (any thread)."""
        return self._busy is not None

    def stop(self) -> None:
        self._stop.set()
        self._jobs.put(None)
        self._thread.join(timeout=15)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.printer.close()
        if self.encoder is not None:
            self.encoder.close()
        if self.desk is not None:
            self.desk.close()

    def start_card(self, record_id: str, payload: bytes) -> None:
        self._jobs.put(ev.StartCard(record_id, payload))

    def prefetch(self, record_id: str, payload: bytes) -> None:
        """Render this card ahead; only one is kept (a card is 1.5 MB of panels), so a
        card rendered for a job that another overtook is dropped."""
        job = ev.StartCard(record_id, payload)
        with self._lock:
            if self._ahead is not None and self._ahead.job.record_id == record_id:
                self._ahead.next = True
            else:
                self._ahead = _Ahead(job, self._pool.submit(self.render, payload))

    def probe_now(self) -> None:
        """Look at the printer at once (a person says the fault is cleared)."""
        self._jobs.put(PROBE)

    def fault_gone(self, kind: str) -> None:
        """Evidence that the printer's fault is gone (`ev.FaultGone`): handed to a driver
        that waits for it (IPP: a set it reads at its next look, so safe from this thread),
        then the printer is looked at at once."""
        accept = getattr(self.printer, "fault_gone", None)
        if accept is not None:
            accept(kind)
        self.probe_now()

    def resolve(self, cards: tuple[tuple[str, dict | None], ...]) -> None:
        """Ask the printer about cards found in it at start-up, once it answers."""
        self._jobs.put(ev.ResolveCards(tuple(cards)))

    def answer_pick(self, answer: ev.AnswerPick) -> None:
        """The core's answer to a pick request (`AnswerPick`), for the printer thread."""
        self._answers.put(answer)

    # -- the printer thread ---------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._connected:
                self._connect()
                continue
            wait = self.poll_s if self._reasons else self.idle_check_s
            try:
                job = self._jobs.get(timeout=wait)
            except queue.Empty:
                self._check()
                continue
            if job is PROBE:
                self._check()
            elif isinstance(job, ev.ResolveCards):
                self._unresolved += job.cards
                self._resolve()
            elif job is not None:
                card: _Card | None = _Card(self, job)
                while card is not None:
                    with self._step(self.card_budget_s):
                        card = self._print(card)
                    if card is None and self._held_ahead is not None:
                        card, self._held_ahead = _Card.allowed(self, self._held_ahead), None

    @contextmanager
    def _step(self, budget: float) -> Iterator[None]:
        self._busy = (time.monotonic(), budget)
        try:
            yield
        finally:
            self._busy = None

    def _connect(self) -> None:
        try:
            with self._step(self.step_budget_s):
                info = self.printer.connect()
        except PrinterError as error:
            self._report(error.reasons or ("connecting-to-device",), error.detail)
            self._fail_waiting_jobs()
            # A printer that opened but did not answer may be waiting for the rest of a
            # download from a host that died: stay silent until its receive timeout ends it.
            silent = "timed-out-error" in error.reasons
            self._stop.wait(self.resync_s if silent else self.poll_s)
            return
        log.info("card printer connected: %s", info)
        self._connected = True
        if self.encoder is not None:
            self._identify_card_inside()
        counts = self._counters()
        if counts is not None:
            self.emit(ev.PrinterCounters(counts))
        self._resolve()
        self._check()

    def _resolve(self) -> None:
        """What the printer says of cards found in it at start-up (drivers that can tell)."""
        fate = getattr(self.printer, "card_fate", None)
        if not self._connected or fate is None:
            return
        while self._unresolved:
            record_id, marks = self._unresolved[0]
            try:
                verdict, how = fate(record_id, marks or {})
            except PrinterError as error:
                log.warning("cannot ask the printer about %s: %s", record_id, error.detail)
                return
            self._unresolved = self._unresolved[1:]
            self.emit(ev.CardFate(record_id, verdict, how))

    def _encoder_reasons(self) -> tuple[str, ...]:
        """No card is started while the encoder's reader is gone: it would be picked for
        nothing."""
        if self.encoder is None:
            return ()
        seen = self.encoder.check()
        if isinstance(seen, ReaderGone):
            log.warning("chip encoder: %s", seen.reason)
            return (ev.READER_MISSING,)
        return ()

    def _identify_card_inside(self) -> None:
        """After a (re)start, a card inside the printer is carried to the encoder and told
        by its chip (chip.md, "A crash"): untouched, it stays there for the next card;
        written or unreadable, it goes to the reject box. The core books it (`ChipFound`)."""
        try:
            if not self.printer.card_inside():  # type: ignore[attr-defined]
                return
            self.printer.pick_to_encoder()  # type: ignore[attr-defined]
        except PrinterError as error:
            log.warning("cannot look at the card inside the printer: %s", error.detail)
            return
        uid, untouched, detail = self._chip_inside()
        if not untouched:
            with contextlib.suppress(PrinterError):
                self.printer.reject_card()  # type: ignore[attr-defined]
            self.printer.finish()
        log.warning("card found in the printer at start: chip %s, %s", uid or "unreadable",
                    detail)
        self.emit(ev.ChipFound(uid, untouched, detail))

    def _chip_inside(self) -> tuple[str | None, bool | None, str]:
        encoder = self.encoder
        seen = encoder.read_card()
        if not isinstance(seen, CardPresent):
            return None, None, f"no chip read: {why_not(seen)}"
        state = encoder.untouched(seen.uid)
        encoder.release()
        if not isinstance(state, ChipState):
            return seen.uid, None, f"chip {seen.uid}: cannot tell if written: {why_not(state)}"
        if state.untouched:
            return seen.uid, True, f"chip {seen.uid} untouched"
        return seen.uid, False, f"chip {seen.uid} written and the card not printed"

    def _counters(self) -> dict[str, int] | None:
        try:
            return self.printer.counters()
        except PrinterError as error:
            log.warning("cannot read the printer's counters: %s", error.detail)
            return None

    def _check(self) -> None:
        try:
            with self._step(self.step_budget_s):
                reasons = self.printer.check() + self._encoder_reasons()
                if self.desk is not None:
                    reasons += self.desk.check()
        except PrinterError as error:
            self._lost(error)
            return
        if reasons:
            self._report(reasons, "printer reports " + ", ".join(reasons))
        elif self._reasons != ():
            self._reasons = ()
            self.emit(ev.PrinterReady())
        self._report_supplies()

    def _report_supplies(self) -> None:
        """The printer's supplies, when its driver tells them and they changed."""
        supplies = tuple(getattr(self.printer, "supplies", None) or ())
        if supplies != self._supplies:
            self._supplies = supplies
            self.emit(ev.SuppliesSeen(supplies))

    def _report(self, reasons: tuple[str, ...], detail: str) -> None:
        if reasons != self._reasons:
            self._reasons = reasons
            log.warning("card printer: %s", detail)
            self.emit(ev.PrinterFault(reasons, detail))

    def _lost(self, error: PrinterError) -> None:
        self._connected = False
        self._report(error.reasons, error.detail)

    def _fail_waiting_jobs(self) -> None:
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return
            if isinstance(job, ev.StartCard):
                self._refuse(job)
            elif isinstance(job, ev.ResolveCards):
                self._unresolved += job.cards

    def _refuse(self, job: ev.StartCard) -> None:
        reasons = self._reasons or ("connecting-to-device",)
        self.emit(ev.CardFailed(job.record_id, reasons, "the printer is not ready"))

    def _print(self, card: _Card) -> _Card | None:
        """One card; returns the next one when its pick was asked with this card's end."""
        job = card.job
        if self._reasons and not card.chained:
            self._refuse(job)
            return None
        try:
            if self.desk is not None:
                how = self.desk.make(self.printer, card)
            elif self.encoder is None:
                how = self.printer.print_card(card)
            else:
                how = self.printer.print_encoded_card(  # type: ignore[attr-defined]
                    card, lambda: self._encode(card))
        except CardError as error:
            self._card_failed(job.record_id, error, report=card.started(),
                              chip=card.chip_failure, uid=card.uid)
            return None
        except RenderFailed as failed:  # the job's fault, not the station's
            log.warning("cannot render %s: %s", job.record_id, failed)
            if card.started():
                self.emit(ev.CardFailed(job.record_id, ("document-format-error",),
                                        f"cannot render the card: {failed}", job_error=True))
            return None
        except Exception as exc:  # a driver fault we did not foresee: assume the worst
            log.exception("card printer driver failed on %s", job.record_id)
            self._connected = False
            if card.started():
                blank = ev.BLANK_UNKNOWN if card.was_picked else ev.BLANK_UNTOUCHED
                self.emit(ev.CardFailed(job.record_id, ("other-error",),
                                        f"driver error: {exc}", blank=blank))
            return None
        if self.desk is not None:
            return self._hand_over(card, how or "")
        return self._card_out(job, how or "")

    def _hand_over(self, card: _Card, how: str) -> None:
        """Desk mode: the card is out; the handover scan decides its end (chip.md)."""
        self._report_supplies()
        self.printer.finish()
        try:
            verdict = self.desk.handover(card, how)
        except Exception as exc:  # a reader fault we did not foresee: nobody checked the card
            log.exception("the handover scan of %s failed", card.record_id)
            verdict = ev.HandoverMismatch(card.record_id, None, card.uid,
                                          f"handover scan failed: {type(exc).__name__}: {exc}")
        self.emit(verdict)
        with contextlib.suppress(Exception):
            self.desk.after(verdict)

    def _card_out(self, job: ev.StartCard, how: str) -> _Card | None:
        """Report the card printed; with it, ask to pick the next one if it is rendered
        (one commit books this card and marks that one picking)."""
        self._report_supplies()
        if self._held_ahead is not None:  # the next card is at the print server already
            self.emit(ev.CardPrinted(job.record_id, how))
            self.printer.finish()
            return None
        upcoming = self._upcoming(job.record_id)
        if upcoming is None:
            self.emit(ev.CardPrinted(job.record_id, how))  # committed while the job closes
            self.printer.finish()
            return None
        counts = self._counters()  # the card is out: these are the next pick's counts
        card = _Card(self, upcoming, token=next(self._tokens))
        self.emit(ev.CardPrinted(job.record_id, how,
                                 then=ev.PickRequested(upcoming.record_id, counts, card.token)))
        self.printer.finish()  # and the next card's settings, while the core commits
        return card

    def _upcoming(self, record_id: str) -> ev.StartCard | None:
        """The card the core said is next, if it is rendered and the printer is ready;
        asked once per card end (a card not chained now is started by the core)."""
        with self._lock:
            ahead = self._ahead
            if ahead is None or not ahead.next:
                return None
            ahead.next = False
        if ahead.job.record_id == record_id or self._reasons or self._stop.is_set():
            return None
        return ahead.job if ahead.render.done() else None

    def _card_failed(self, record_id: str, error: CardError, *, report: bool = True,
                     chip: str = "", uid: str | None = None) -> None:
        """The printer's fault in any case; the card's end if the core started it."""
        if error.reasons:
            self._reasons = error.reasons
            self.emit(ev.PrinterFault(error.reasons, error.detail))
        if report:
            self.emit(ev.CardFailed(record_id, error.reasons, error.detail, blank=error.blank,
                                    chip=chip, uid=uid))
        if error.link_lost:
            self._connected = False

    # -- the chip step (inline, chip.md) ---------------------------------------------------

    def _encode(self, card: _Card) -> bool:
        """The card is at the encoder: its UID read and committed to the job, the chip
        personalized and verified, its UID read again. False (the card goes to the reject
        box) with the reason kept on *card* for the core (``gagal-encode``)."""
        try:
            return self._chip_step(card)
        except HoldCard:
            raise
        except Exception as exc:  # a personalizer or reader fault we did not foresee
            log.exception("the chip step of %s failed", card.record_id)
            return card.chip_failed(f"encoder error: {type(exc).__name__}: {exc}")
        finally:
            with contextlib.suppress(Exception):
                self.encoder.release()

    def _chip_step(self, card: _Card) -> bool:
        encoder = self.encoder
        seen = encoder.read_card()
        if isinstance(seen, ReaderGone):  # nothing was written: the card waits inside
            raise HoldCard((ev.READER_MISSING,), f"the chip encoder is gone: {seen.reason}")
        if not isinstance(seen, CardPresent):
            return card.chip_failed(why_not(seen))
        card.uid = seen.uid
        if not card.commit_chip(seen.uid):
            return card.chip_failed(f"the station did not commit chip {seen.uid} to the job"
                                    " (used before, or the job was withdrawn): nothing written")
        record = json.loads(card.job.payload)
        done = encoder.personalize(record, seen.uid)
        if not isinstance(done, Personalized):
            return card.chip_failed(why_not(done))
        again = encoder.read_card(wait_s=0)
        if again != seen:
            return card.chip_failed(f"the chip at the encoder is no longer {seen.uid}:"
                                    f" {why_not(again)}")
        log.info("chip %s personalized for %s", seen.uid, card.record_id)
        return True

    def commit_chip(self, record_id: str, uid: str) -> bool:
        """Ask the core to commit the chip *uid* to *record_id*'s job; its answer."""
        token = next(self._tokens)
        self.emit(ev.ChipSeen(record_id, uid, token))
        return self.await_answer(token)

    # -- for a card's hooks (the printer thread) ---------------------------------------

    def document(self, job: ev.StartCard) -> Any:
        """The card rendered ahead if it was prefetched, else rendered now."""
        with self._lock:
            ahead = self._ahead
            if ahead is not None and ahead.job.record_id == job.record_id:
                self._ahead = None
            else:
                ahead = None
        try:
            return ahead.render.result() if ahead else self.render(job.payload)
        except Exception as exc:
            raise RenderFailed(str(exc)) from exc

    def request_pick(self, record_id: str) -> int:
        """Ask the core whether a blank may be taken for *record_id*; the request's token."""
        counts = self._counters()  # kept with the picking mark, for a restart
        token = next(self._tokens)
        self.emit(ev.PickRequested(record_id, counts, token))
        return token

    def await_answer(self, token: int) -> bool:
        """The core's answer to request *token*; answers to earlier requests are dropped."""
        deadline = time.monotonic() + PICK_ANSWER_TIMEOUT
        while not self._stop.is_set():
            try:
                answer = self._answers.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return False
            if answer.token == token:
                return answer.allow
            log.info("dropped a late pick answer for %s (request %d, waiting for %d)",
                     answer.record_id, answer.token, token)
        return False

    def trouble(self, reasons: tuple[str, ...]) -> None:
        """Shown at once; the printer is seen ready again after this card ends."""
        if reasons:
            self._report(reasons, "printer reports " + ", ".join(reasons))

    def offer_ahead(self, record_id: str) -> _AheadCard | None:
        """The card after *record_id*, for a print server that holds it while that one
        prints (IPP: one job ahead), if the core named it and it is rendered or rendering."""
        with self._lock:
            ahead = self._ahead
        if (ahead is None or ahead.job.record_id == record_id or self._reasons
                or self._stop.is_set() or self.desk is not None):  # desk: one card at a time
            return None
        return _AheadCard(self, ahead)

    def hold_ahead(self, ahead: _Ahead) -> None:
        """The core allowed the card ahead: it runs right after the card printing."""
        with self._lock:
            if self._ahead is ahead:
                self._ahead = None
        self._held_ahead = ahead.job


class _Card:
    """One card's pick handshake between the driver (`CardHooks`) and the core.

    *token*: the pick request asked with the previous card's end (`CardPrinted.then`),
    if any; the core started this card only if it allows that pick.
    """

    def __init__(self, worker: PrintWorker, job: ev.StartCard, token: int | None = None) -> None:
        self.worker = worker
        self.job = job
        self.record_id = job.record_id
        self.token = token
        self.chained = token is not None
        self.was_picked = False
        self._answer: bool | None = None
        self.uid: str | None = None  # its chip, once read at the encoder
        self.chip_failure = ""  # why its chip step failed, if it did

    @classmethod
    def allowed(cls, worker: PrintWorker, job: ev.StartCard) -> _Card:
        """A card whose pick the core already allowed (a print server holds it)."""
        card = cls(worker, job, token=0)
        card._answer = True
        return card

    def ahead(self) -> _AheadCard | None:
        """The next card, to send to a print server while this one prints (IPP)."""
        return self.worker.offer_ahead(self.record_id)

    def started(self) -> bool:
        """The core started this card (so its end is reported); a chained card is started
        only if its pick was allowed (waited for here if the card ended before it)."""
        return not self.chained or self.may_pick()

    def document(self) -> Any:
        return self.worker.document(self.job)

    def ask_pick(self) -> None:
        """Ask the core for the pick now (once); `may_pick` waits for its answer."""
        if self.token is None:
            self.token = self.worker.request_pick(self.record_id)

    def may_pick(self) -> bool:
        if self._answer is None:
            self.ask_pick()
            self._answer = self.worker.await_answer(self.token)
        return self._answer

    def picked(self, marks: dict | None = None) -> None:
        if self.was_picked:  # desk mode: booked when the blank was laid on the desk reader
            return
        self.was_picked = True
        self.worker.emit(ev.CardPicked(self.record_id, marks))

    def trouble(self, reasons: tuple[str, ...]) -> None:
        self.worker.trouble(reasons)

    def commit_chip(self, uid: str) -> bool:
        return self.worker.commit_chip(self.record_id, uid)

    def chip_failed(self, reason: str) -> bool:
        """The chip step failed for *reason*: False, so the card goes to the reject box."""
        self.chip_failure = reason[:160]
        log.warning("chip step of %s failed: %s", self.record_id, self.chip_failure)
        return False


class _AheadCard:
    """The card after the one printing, sent to a print server to wait there: its pick is
    asked now (`ev.PickAheadRequested`); once allowed, the worker runs it right after the
    card printing, and the driver follows the job it already sent."""

    def __init__(self, worker: PrintWorker, ahead: _Ahead) -> None:
        self.worker = worker
        self.entry = ahead
        self.record_id = ahead.job.record_id

    def document(self) -> Any:
        try:
            return self.entry.render.result()
        except Exception as exc:
            raise RenderFailed(str(exc)) from exc

    def may_pick(self) -> bool:
        token = next(self.worker._tokens)
        self.worker.emit(ev.PickAheadRequested(self.record_id, token))
        allowed = self.worker.await_answer(token)
        if allowed:
            self.worker.hold_ahead(self.entry)
        return allowed
