"""The print worker: one thread that owns the card printer.

It connects (and reconnects when the port vanishes or stops answering),
watches for faults and their clearing, renders cards ahead of time on a
second thread, and runs each card the core starts. Everything it learns goes
back to the core as events; it decides nothing about jobs.

Wiring::

    worker = PrintWorker(make_printer(config.printer), render, queue.put)
    worker.start()
    worker.start_card("rec-1", payload)      # from a StartCard action
    worker.answer_pick("rec-1", True)        # from an AnswerPick action
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from kiosk.devices.printer.base import CardError, CardPrinter, PrinterError
from kiosk.station.core import events as ev

log = logging.getLogger(__name__)

Renderer = Callable[[bytes], Any]  # spooled record → the driver's document
PICK_ANSWER_TIMEOUT = 30.0
# How long the station thread stands aside after allowing a pick the printer thread is
# waiting for, so that `Ss` goes out before the rest of the station's step (see answer_pick).
PICK_HANDOFF_S = 0.005
PROBE = ev.ProbePrinter()


class RenderFailed(Exception):
    """The card could not be rendered: the job is bad, the printer is fine."""


class PrintWorker:
    """Drives a `CardPrinter` on its own thread; reports with *emit*."""

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
        pick_handoff_s: float = PICK_HANDOFF_S,
    ) -> None:
        self.printer = printer
        self.render = render
        self.emit = emit
        self.poll_s = poll_s
        self.idle_check_s = idle_check_s
        self.resync_s = resync_s
        self._jobs: queue.Queue[ev.StartCard | ev.ProbePrinter | ev.ResolveCards | None] = (
            queue.Queue())
        self._unresolved: tuple[tuple[str, dict | None], ...] = ()
        self._answers: queue.Queue[ev.AnswerPick] = queue.Queue()
        # The pick request whose answer the printer thread waits for, or will as soon as
        # its current command is answered (a chained card's): see answer_pick.
        self._awaiting: int | None = None
        self._pick_sent = threading.Event()
        self.pick_handoff_s = pick_handoff_s
        self.tokens = itertools.count(1)  # one per pick request (PickRequested.token)
        self._renders: dict[str, Future] = {}
        self._ahead: ev.StartCard | None = None  # the card the core said is next (Prefetch)
        # The card a print server holds behind the one printing (its pick ahead allowed):
        # run right after it, whatever became of that one (see _AheadHooks).
        self._held_ahead: ev.StartCard | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="render")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="printer", daemon=True)
        self._connected = False
        self._reasons: tuple[str, ...] | None = None
        self._supplies: tuple[dict, ...] = ()  # as last reported (SuppliesSeen)
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

    @contextmanager
    def _step(self, budget: float) -> Iterator[None]:
        self._busy = (time.monotonic(), budget)
        try:
            yield
        finally:
            self._busy = None

    def stop(self) -> None:
        self._stop.set()
        self._jobs.put(None)
        self._thread.join(timeout=15)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.printer.close()

    def start_card(self, record_id: str, payload: bytes) -> None:
        self._jobs.put(ev.StartCard(record_id, payload))

    def prefetch(self, record_id: str, payload: bytes) -> None:
        """Render this card ahead; only one is kept (a card is 1.5 MB of panels), so a
        card rendered for a job that another overtook is dropped."""
        if record_id not in self._renders:
            self._renders = {record_id: self._pool.submit(self.render, payload)}
        self._ahead = ev.StartCard(record_id, payload)

    def probe_now(self) -> None:
        """Look at the printer at once (a person says the fault is cleared)."""
        self._jobs.put(PROBE)

    def fault_gone(self, kind: str) -> None:
        """Evidence that the printer's fault is gone (`ev.FaultGone`): handed to a driver
        that waits for it (IPP; a set it reads at its next look, so safe from this
        thread), then the printer is looked at at once."""
        accept = getattr(self.printer, "fault_gone", None)
        if accept is not None:
            accept(kind)
        self.probe_now()

    def resolve(self, cards: tuple[tuple[str, dict | None], ...]) -> None:
        """Ask the printer about cards found in it at start-up, once it answers."""
        self._jobs.put(ev.ResolveCards(tuple(cards)))

    def answer_pick(self, answer: ev.AnswerPick) -> None:
        """Hand the core's answer over. If the printer thread waits for it (or will, once its
        current command is answered) and the pick is allowed, wait at most PICK_HANDOFF_S
        for `Ss` to be answered. The caller's thread would otherwise go on with Python work
        while the printer thread waits for the GIL at every step to `Ss` (each serial call
        gives the GIL up; CPython hands it back when its holder blocks, or after a 5 ms
        switch interval): the gap between two cards was ~1 ms longer (docs/performance.md)."""
        hand_off = answer.allow and self._awaiting == answer.token
        self._pick_sent.clear()
        self._answers.put(answer)
        if hand_off:
            self._pick_sent.wait(self.pick_handoff_s)

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
                chained: _Chained | None = None
                while job is not None:
                    with self._step(self.card_budget_s):
                        job, chained = self._print(job, chained)
                    if job is None and self._held_ahead is not None:
                        job, chained = self._held_ahead, _Chained.allowed()
                        self._held_ahead = None

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

    def _counters(self) -> dict[str, int] | None:
        try:
            return self.printer.counters()
        except PrinterError as error:
            log.warning("cannot read the printer's counters: %s", error.detail)
            return None

    def _check(self) -> None:
        try:
            with self._step(self.step_budget_s):
                reasons = self.printer.check()
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

    def _print(self, job: ev.StartCard, chained: _Chained | None = None,
               ) -> tuple[ev.StartCard | None, _Chained | None]:
        """One card; returns the next card to run at once (its pick asked with this card's
        end) and that request, or (None, None)."""
        if self._reasons and chained is None:
            self._refuse(job)
            return None, None
        hooks = _Hooks(self, job, chained)
        try:
            how = self.printer.print_card(hooks)
        except CardError as error:
            self._card_failed(job.record_id, error, report=hooks.started())
            return None, None
        except RenderFailed as failed:  # the job's fault, not the station's
            log.warning("cannot render %s: %s", job.record_id, failed)
            if hooks.started():
                self.emit(ev.CardFailed(job.record_id, ("document-format-error",),
                                        f"cannot render the card: {failed}", job_error=True))
            return None, None
        except Exception as exc:  # a driver fault we did not foresee: assume the worst
            log.exception("card printer driver failed on %s", job.record_id)
            self._connected = False
            if hooks.started():
                blank = ev.BLANK_UNKNOWN if hooks.was_picked else ev.BLANK_UNTOUCHED
                self.emit(ev.CardFailed(job.record_id, ("other-error",),
                                        f"driver error: {exc}", blank=blank))
            return None, None
        return self._card_out(job, how or "")

    def _card_out(self, job: ev.StartCard, how: str,
                  ) -> tuple[ev.StartCard | None, _Chained | None]:
        """Report the card printed; with it, ask to pick the next one if it is rendered."""
        self._report_supplies()
        if self._held_ahead is not None:  # the next card is at the print server already
            self.emit(ev.CardPrinted(job.record_id, how))
            self.printer.finish()
            return None, None
        upcoming = self._upcoming(job.record_id)
        if upcoming is None:
            self.emit(ev.CardPrinted(job.record_id, how))  # committed while the job closes
            self.printer.finish()
            return None, None
        counts = self._counters()  # the card is out: these are the next pick's counts
        chained = _Chained(next(self.tokens))
        self._awaiting = chained.token  # waited for right after the next card's settings
        self.emit(ev.CardPrinted(job.record_id, how,
                                 then=ev.PickRequested(upcoming.record_id, counts, chained.token)))
        self.printer.finish()  # and the next card's settings, while the core commits
        return upcoming, chained

    def _upcoming(self, record_id: str) -> ev.StartCard | None:
        """The card the core said is next, if it is rendered and the printer is ready."""
        ahead, self._ahead = self._ahead, None
        if ahead is None or ahead.record_id == record_id or self._reasons or self._stop.is_set():
            return None
        render = self._renders.get(ahead.record_id)
        return ahead if render is not None and render.done() else None

    def _card_failed(self, record_id: str, error: CardError, *, report: bool = True) -> None:
        """The printer's fault in any case; the card's end if the core started it."""
        if error.reasons:
            self._reasons = error.reasons
            self.emit(ev.PrinterFault(error.reasons, error.detail))
        if report:
            self.emit(ev.CardFailed(record_id, error.reasons, error.detail, blank=error.blank))
        if error.link_lost:
            self._connected = False

    def _await_answer(self, token: int) -> bool:
        """The core's answer to request *token*; answers to earlier requests are dropped."""
        deadline = time.monotonic() + PICK_ANSWER_TIMEOUT
        self._awaiting = token
        try:
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
        finally:
            self._awaiting = None


class _Chained:
    """A card whose pick was asked with the previous card's end (`CardPrinted.then`):
    the core has not started it unless it allows that pick."""

    def __init__(self, token: int) -> None:
        self.token = token
        self.answer: bool | None = None

    @classmethod
    def allowed(cls) -> _Chained:
        """A card whose pick the core already allowed (a print server holds it)."""
        chained = cls(0)
        chained.answer = True
        return chained


class _Hooks:
    """The pick handshake between the driver and the core, for one card."""

    def __init__(self, worker: PrintWorker, job: ev.StartCard,
                 chained: _Chained | None = None) -> None:
        self.worker = worker
        self.job = job
        self.record_id = job.record_id
        self.was_picked = False
        self.chained = chained
        self.asked: int | None = None  # the token of this card's own pick request

    def started(self) -> bool:
        """The core started this card (so its end is reported); a chained card is started
        only if its pick was allowed (waited for here if the card ended before it)."""
        chained = self.chained
        if chained is None:
            return True
        if chained.answer is None:
            chained.answer = self.worker._await_answer(chained.token)
        return chained.answer

    def document(self) -> Any:
        """Rendered ahead if it was prefetched, else now (the printer is already busy)."""
        ahead = self.worker._renders.pop(self.record_id, None)
        try:
            return ahead.result() if ahead else self.worker.render(self.job.payload)
        except Exception as exc:
            raise RenderFailed(str(exc)) from exc

    def ask_pick(self) -> None:
        """Ask the core for the pick now (once); `may_pick` waits for its answer."""
        if self.chained is None and self.asked is None:  # a chained card asked already
            self.asked = self._request_pick()

    def may_pick(self) -> bool:
        if self.chained is not None:  # asked with the previous card's end
            return self.started()
        if self.asked is None:
            self.asked = self._request_pick()
        return self.worker._await_answer(self.asked)

    def _request_pick(self) -> int:
        counts = self.worker._counters()  # kept with the picking mark, for a restart
        token = next(self.worker.tokens)
        self.worker.emit(ev.PickRequested(self.record_id, counts, token))
        return token

    def picked(self, marks: dict | None = None) -> None:
        self.worker._pick_sent.set()
        self.was_picked = True
        self.worker.emit(ev.CardPicked(self.record_id, marks))

    def trouble(self, reasons: tuple[str, ...]) -> None:
        """Shown at once; the printer is seen ready again after this card ends."""
        if reasons:
            self.worker._report(reasons, "printer reports " + ", ".join(reasons))

    def ahead(self) -> _AheadHooks | None:
        """The next card, for a print server that holds it while this one prints (IPP:
        one job ahead), if the core named it and it is rendered or rendering."""
        worker = self.worker
        upcoming = worker._ahead
        if (upcoming is None or upcoming.record_id == self.record_id or worker._reasons
                or worker._stop.is_set() or upcoming.record_id not in worker._renders):
            return None
        return _AheadHooks(worker, upcoming)


class _AheadHooks:
    """The card after the one printing, sent to a print server to wait there: its pick
    is asked now (`ev.PickAheadRequested`); once allowed, the worker runs it right after
    the card printing, and the driver follows the job it already sent."""

    def __init__(self, worker: PrintWorker, job: ev.StartCard) -> None:
        self.worker = worker
        self.job = job
        self.record_id = job.record_id

    def document(self) -> Any:
        render = self.worker._renders.get(self.record_id)
        try:
            return render.result() if render else self.worker.render(self.job.payload)
        except Exception as exc:
            raise RenderFailed(str(exc)) from exc

    def may_pick(self) -> bool:
        token = next(self.worker.tokens)
        self.worker.emit(ev.PickAheadRequested(self.record_id, token))
        allowed = self.worker._await_answer(token)
        if allowed:
            self.worker._held_ahead, self.worker._ahead = self.job, None
        return allowed
