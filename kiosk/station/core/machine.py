"""The station's decisions: events in, actions out, a `Store` as memory.

`StationCore` owns the job lifecycle (pending → processing → completed, with
processing-stopped while the printer is faulted, aborted when the job itself is
bad), the blank-card ledger bookings, the rule that a record is acknowledged
only after its commit, and the choice of which card prints next. It has no
thread and touches no device: the station loop feeds it events and carries out
the actions it returns, after committing the store's transaction they belong to.

The crash rule: a job is marked ``phase='picking'`` durably before ``Ss`` is
sent, with the printer's counters read just then. A job found in ``picking`` or
``picked`` at start-up may have come out of the printer, so it becomes
processing-stopped with reason ``uncertain``; when the printer connects, its
counters decide it where they can (`counted_fate`; an IPP print server, through the
job-id kept at its pick, `CardFate`), else it waits for a person
(the OK button, or the district's ``reprint``/``confirm``). What a failed card's
blank means, the same for every driver, is in `_on_card_failed`; what every end of a
card books and clears is `kiosk.station.core.ledger`.

Its mutable facts are one `StationState` (kiosk.station.core.state, with the job
lifecycle table every state change is checked against); its parts (commands, the
front desk) see it as `CoreAccess` (kiosk.station.core.parts) and change them only
through the methods under "for the core's parts".
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from kiosk import __version__
from kiosk.contract.custody import INVALID_CATEGORIES
from kiosk.contract.documents import document_of, parse_job
from kiosk.contract.record import Rejected, mask_nik
from kiosk.station.config import Config
from kiosk.station.core import commands
from kiosk.station.core import events as ev
from kiosk.station.core.desk import Desk
from kiosk.station.core.ledger import CLEARED, Blank, CardLedger
from kiosk.station.core.outbound import Outbound
from kiosk.station.core.state import (
    JobState,
    Phase,
    PrinterCondition,
    Reason,
    StationState,
    check_transition,
    is_uncertain,
)
from kiosk.station.core.stock import StockWatch
from kiosk.station.core.store import BlankRow, Job, Store
from kiosk.station.core.supplies import supply_reasons
from kiosk.station.core.throttle import LogThrottle

UPDATE_FIELDS = {"version": 64, "outcome": 32, "detail": 300}  # an update event, capped

log = logging.getLogger(__name__)

PURGE_EVERY_S = 60.0
PURGE_UNCLEAN_ALERT = 3  # purges in a row that left copies in the WAL before it is an alert
REJECT_LOG_PER_MINUTE = 20



def tray_refilled(was_empty: bool, estimate: int | None) -> list:
    """The tray sensor sees cards where it saw none: evidence for the printer's fault."""
    return [ev.FaultGone("tray")] if was_empty and estimate is not None and estimate > 0 else []


def counted_fate(phase: str | None, before: dict, after: dict) -> str | None:
    """``printed``, ``spoiled`` or ``not-picked`` from the printer's counters read before
    a card's pick and after; None when they cannot tell (a person decides).

    Only one card is ever in the printer, so every change since the pick is this card's.
    """
    try:
        taken = after["taken"] - before["taken"]
        printed = after["printed"] - before["printed"]
    except (KeyError, TypeError):
        return None
    if (taken, printed) == (1, 1):
        return "printed"
    if (taken, printed) == (1, 0):
        return "spoiled"
    if (taken, printed) == (0, 0) and phase != Phase.PICKED:  # picked: the printer took one
        return "not-picked"
    return None


def _count_change(before: dict, after: dict) -> str:
    return ", ".join(f"{key} {before[key]}→{after.get(key)}" for key in sorted(before))


class StationCore:
    """Decides what the station does next; see the module docstring."""

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        verifier: object | None = None,
        boot_id: str | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.store = store
        self.verifier = verifier
        self.boot_id = boot_id or str(uuid.uuid4())
        self.clock = clock
        self.out = Outbound(store, config.topic_base, self.boot_id, clock)
        self.monotonic = monotonic
        self.state = StationState()
        self.stock = StockWatch(config.tray, monotonic)
        self.ledger = CardLedger(store, self.stock, tell=self._tell_blank,
                                 document=self._document)
        self.desk = Desk(self)
        self._doubts: set[str] = set()  # found in the printer at start, with counts to compare
        self._next_purge = 0.0
        self._reject_log = LogThrottle(REJECT_LOG_PER_MINUTE)

    # -- entry points ------------------------------------------------------------

    def start(self) -> list:
        """Recover after a (possibly unclean) stop; returns the first actions.

        A card found in the printer is uncertain until the printer's counters (read
        when it connects, `PrinterCounters`) tell what became of it, or a person does.
        """
        found: list[tuple[str, dict | None]] = []
        for job in self.store.jobs(JobState.PROCESSING, JobState.PROCESSING_STOPPED):
            if job.phase in (Phase.PICKING, Phase.PICKED):
                found.append((job.record_id, job.pick_counts))
                if Reason.UNCERTAIN not in job.reasons:
                    self.set_job(job.record_id, JobState.PROCESSING_STOPPED, (Reason.UNCERTAIN,),
                                  "station restarted while this card was in the printer;"
                                  " check whether it came out")
                if job.pick_counts:
                    self._doubts.add(job.record_id)
            else:
                self.set_job(job.record_id, JobState.PENDING, (), "requeued after restart")
        self.stock.load(self.store)
        # An operator's pause and a district's drain outlive a power cut.
        self.state.paused = self.store.get_meta("paused") == "1"
        self.state.accepting = self.store.get_meta("accepting", "1") == "1"
        self.state.foreign = json.loads(self.store.get_meta("foreign_blanks", "{}"))
        return ([ev.ResolveCards(tuple(found))] if found else []) + self.out.flush()

    def handle(self, event: object) -> list:
        """Everything the station does in answer to one event."""
        actions = self._route(event)
        actions.extend(self._dispatch())
        self.out.sync_alerts(self._active_alerts())
        actions.extend(self.out.flush())
        return actions

    def _route(self, event: object) -> list:
        handlers: dict[type, Callable[[Any], list]] = {
            ev.MessageArrived: self._on_message,
            ev.LinkUp: self._on_link_up,
            ev.LinkDown: self._on_link_down,
            ev.LinkFailed: self._on_link_failed,
            ev.Delivered: self._on_delivered,
            ev.PrinterReady: self._on_printer_ready,
            ev.PrinterFault: self._on_printer_fault,
            ev.PrinterCounters: self._on_printer_counters,
            ev.CardFate: self._on_card_fate,
            ev.PickRequested: self._on_pick_requested,
            ev.PickAheadRequested: self._on_pick_ahead,
            ev.CardPicked: self._on_card_picked,
            ev.CardPrinted: self._on_card_printed,
            ev.CardFailed: self._on_card_failed,
            ev.ChipSeen: self._on_chip_seen,
            ev.ChipFound: self._on_chip_found,
            ev.DeskPrompt: self.desk.on_prompt,
            ev.HandoverMismatch: self._on_handover_mismatch,
            ev.Tick: self._on_tick,
            ev.UpdateOutcomes: self._on_update_outcomes,
            ev.PurgeDone: self._on_purge_done,
            ev.OperatorIntent: self.desk.on_intent,
            ev.ReceiptFault: self.desk.on_receipt_fault,
            ev.TrayCalibrated: self._on_tray_calibrated,
            ev.TrayFrame: self._on_tray,
            ev.TrayOnline: self._on_tray,
            ev.TrayOffline: self._on_tray,
            ev.TrayBooted: self._on_tray,
            ev.SuppliesSeen: self._on_supplies,
        }
        handler = handlers.get(type(event))
        if handler is None:
            log.warning("ignored unknown event %r", event)
            return []
        return handler(event)

    # -- the broker link -------------------------------------------------------------

    def _on_link_up(self, event: ev.LinkUp) -> list:
        self.state.generation = event.generation
        self.state.link_error = None
        state = self.out.state(self.state_document(), force=True)
        return [ev.Publish(self.topic("availability"), b"online"), state]

    def _on_link_down(self, event: ev.LinkDown) -> list:
        if self.state.generation == event.generation:
            self.state.generation = None
        return []

    def _on_link_failed(self, event: ev.LinkFailed) -> list:
        """Counted and kept for ``kiosk status``; the panel shows it while offline."""
        self.state.link_error = event.cause
        self.store.bump("link_failures")
        self.store.set_meta("link_error", f"{ev.rfc3339(self.clock())} {event.cause}")
        return []

    def _on_delivered(self, event: ev.Delivered) -> list:
        self.store.confirm(event.item_id)
        self.out.delivered(event.item_id)
        return []

    def _on_message(self, msg: ev.MessageArrived) -> list:
        actions: list = []
        if msg.topic == self.topic("jobs"):
            self._take_record(msg.payload)
        elif msg.topic.startswith(self.topic("cmd/")):
            name = msg.topic[len(self.topic("cmd/")):]
            actions = commands.run(self, name, msg.payload, msg.response_topic, msg.correlation)
        else:
            log.warning("message on unexpected topic %s", msg.topic)
        # The ack follows the commit of everything above (the station commits first).
        return [*actions, ev.Ack(msg.mid, msg.generation)]

    def _take_record(self, payload: bytes) -> None:
        try:
            record = parse_job(payload, documents=self.config.station.documents,
                               verifier=self.verifier)
        except Rejected as rejected:
            self.reject(rejected.code, rejected.detail, rejected.record_id)
            return
        if not self.state.accepting:
            self.reject("not-accepting", "the station is draining; route it elsewhere",
                        record.record_id)
            return
        if self.store.add_job(record.record_id, record.priority, mask_nik(record.nik), payload):
            self.out.job_event(record.record_id, JobState.PENDING, (), "spooled")
        elif self.store.restore_payload(record.record_id, payload):
            self.set_job(record.record_id, JobState.PENDING, (), "its record arrived again")
        else:
            log.info("record %s seen before: acknowledged and ignored", record.record_id)

    def reject(self, code: str, detail: str, record_id: str | None) -> None:
        self.store.bump("rejected")
        if self._reject_log.allow(self.monotonic()):
            log.warning("rejected %s: %s (%s)", record_id or "record", code, detail)
        self.out.event("rejected", record_id=record_id, error=code, detail=detail)

    # -- the printer -----------------------------------------------------------------

    def _on_printer_ready(self, event: ev.PrinterReady) -> list:
        self._set_printer(PrinterCondition.IDLE, ())
        return []

    def _on_printer_fault(self, event: ev.PrinterFault) -> list:
        self._set_printer(PrinterCondition.FAULT, event.reasons, event.detail)
        return []

    def _on_supplies(self, event: ev.SuppliesSeen) -> list:
        self.state.supplies = tuple(event.supplies)
        return []

    def _on_pick_requested(self, event: ev.PickRequested) -> list:
        job = self.store.job(event.record_id)
        allow = (
            not self.state.paused and event.record_id == self.state.current and job is not None
            and job.state == JobState.PROCESSING
        )
        if allow:
            self.store.update_job(event.record_id, phase=Phase.PICKING,
                                  pick_counts=event.counts)
            if self.config.printer.driver == "ipp":  # the next card goes while this prints
                return [ev.AnswerPick(event.record_id, allow, event.token), *self._prefetch()]
        return [ev.AnswerPick(event.record_id, allow, event.token)]

    def _on_pick_ahead(self, event: ev.PickAheadRequested) -> list:
        """The next card to the print server while this one prints: allowed for the job
        the core would start next, once; it is started now (processing, picking)."""
        job = self.store.job(event.record_id)
        upcoming = self.store.next_pending()
        allow = (not self.state.paused and self.state.printer is PrinterCondition.BUSY
                 and self.state.current not in (None, event.record_id)
                 and self.state.ahead is None and job is not None and upcoming is not None
                 and upcoming.record_id == event.record_id and job.payload is not None)
        if allow:
            self.state.ahead = event.record_id
            self.set_job(event.record_id, JobState.PROCESSING, (),
                         "sent to the print server: it waits there behind the card printing",
                         job=job, phase=Phase.PICKING, pick_counts=None)
            return [ev.AnswerPick(event.record_id, allow, event.token), *self._prefetch()]
        return [ev.AnswerPick(event.record_id, allow, event.token)]

    def _on_card_picked(self, event: ev.CardPicked) -> list:
        job = self.store.job(event.record_id)
        columns = self.ledger.picked(Blank(event.record_id), job)
        if event.marks and job is not None:
            columns["pick_counts"] = {**(job.pick_counts or {}), **event.marks}
        self.store.update_job(event.record_id, phase=Phase.PICKED, **columns)
        return self._prefetch()

    def _on_card_printed(self, event: ev.CardPrinted) -> list:
        self._complete(event.record_id, event.detail or "card printed")
        self._release_printer(event.record_id)
        actions = self.desk.slip(event.record_id)
        if event.then is None:
            return actions
        return actions + self._chained_pick(event.then)

    def _chained_pick(self, pick: ev.PickRequested) -> list:
        """The next card's pick, asked with the previous card's end: allowed only if it is
        the job the core starts now, which the printer thread then already runs."""
        started = self._dispatch()
        if any(isinstance(a, ev.StartCard) and a.record_id == pick.record_id for a in started):
            started = []  # no StartCard: the printer thread has this card under way
        return started + self._on_pick_requested(pick)

    def _complete(self, record_id: str, detail: str) -> None:
        job = self.store.job(record_id)
        uid = job.chip_uid if job else None
        self.set_job(record_id, JobState.COMPLETED, (), detail, job=job,
                     **self.ledger.printed(Blank(record_id, uid=uid)))

    def _on_card_failed(self, event: ev.CardFailed) -> list:
        """The ledger rules, stated once for every driver (card-printer.md, Printer drivers):

        * ``untouched``: nothing is booked; the job waits or goes back to the queue;
        * ``maybe-taken`` (the printer never confirmed the pick, e.g. no reply to
          ``Ss``): it counts as a pick and a spoiled blank, never printed on;
        * ``gone``: the blank is spoiled (its pick booked if the printer never said);
        * ``unknown`` (e.g. no reply to ``Se``, an IPP job aborted after
          ``processing``): the card is uncertain and a person or the district decides.
        """
        rid = event.record_id
        job = self.store.job(rid)
        self._release_printer(rid)
        if job is None:
            return []
        if event.blank == ev.BLANK_UNKNOWN:
            self.set_job(rid, JobState.PROCESSING_STOPPED, (Reason.UNCERTAIN,), event.detail)
            return []
        if event.blank == ev.BLANK_INSIDE:
            return self._held_inside(job, event)
        taken = event.blank in (ev.BLANK_MAYBE_TAKEN, ev.BLANK_GONE)
        if event.chip:
            event = _chip_failure(event)
        blank = Blank(rid, event.detail, uid=event.uid,
                      category="gagal-encode" if event.chip else None)
        # No card of this job is in the printer any more (none was taken, or it is spoiled).
        columns = self.ledger.spoiled(blank, job) if taken else dict(CLEARED)
        attempts = int(columns.get("attempts", job.attempts))
        if event.job_error:
            self.set_job(rid, JobState.ABORTED, event.reasons, event.detail, **columns)
        elif taken and attempts >= self.config.printer.max_attempts:
            self.set_job(rid, JobState.ABORTED, event.reasons,
                         f"{attempts} blank cards spoiled; giving up: {event.detail}", **columns)
        elif job.state == JobState.PROCESSING and (event.reasons or taken):
            spoiled = " (card spoiled; it will be printed again)" if taken else ""
            self.set_job(rid, JobState.PROCESSING_STOPPED, event.reasons,
                         event.detail + spoiled, **columns)
            self.state.current = rid  # it goes first once the printer is back
        elif job.state == JobState.PROCESSING:
            self.set_job(rid, JobState.PENDING, (), event.detail, **columns)
        else:
            self.store.update_job(rid, **columns)
        return []

    def _on_printer_counters(self, event: ev.PrinterCounters) -> list:
        """Cards found in the printer at start-up, decided by its counters where they tell."""
        for rid in sorted(self._doubts):
            job = self.store.job(rid)
            if job is None or Reason.UNCERTAIN not in job.reasons or not job.pick_counts:
                continue
            verdict = counted_fate(job.phase, job.pick_counts, event.counts)
            if verdict is not None:
                self._settle(job, verdict, _count_change(job.pick_counts, event.counts))
        self._doubts.clear()
        return []

    def _on_card_fate(self, event: ev.CardFate) -> list:
        """A card found in the printer at start-up, decided by what its print server says."""
        job = self.store.job(event.record_id)
        if event.verdict is None or job is None or Reason.UNCERTAIN not in job.reasons:
            return []
        if event.verdict == "not-picked" and job.phase == Phase.PICKED:
            return []  # the printer said it took a blank: a person decides
        self._settle(job, event.verdict, how=event.how)
        return []

    def _settle(self, job, verdict: str, change: str = "", *, how: str = "",
                category: str | None = None) -> None:
        """Book and move a card the printer (or its chip) decided (*verdict*: a fate)."""
        rid = job.record_id
        how = how or f"decided by the printer's counters ({change})"
        if verdict == "not-picked":
            self.set_job(rid, JobState.PENDING, (), f"no blank was taken: {how}", **CLEARED)
            return
        if verdict == "printed":
            self.set_job(rid, JobState.COMPLETED, (), f"card printed: {how}",
                         **self.ledger.printed(Blank(rid, how), job))
            return
        columns = self.ledger.spoiled(Blank(rid, how, category=category), job)
        attempts = int(columns.get("attempts", job.attempts))
        if attempts >= self.config.printer.max_attempts:
            self.set_job(rid, JobState.ABORTED, (),
                         f"{attempts} blank cards spoiled; giving up: {how}", **columns)
        else:
            self.set_job(rid, JobState.PENDING, (),
                         f"card spoiled, it will be printed again: {how}", **columns)

    # -- the chip (chip.md) -------------------------------------------------------------

    def _on_chip_seen(self, event: ev.ChipSeen) -> list:
        """The blank at the encoder is committed to its job before its chip is written: a
        crash from here on finds the card by this UID. Refused for a job that is not the
        card in the printer, and for a chip the register knows already (a blank used
        before): nothing is written to it."""
        job = self.store.job(event.record_id)
        used = self.store.blanks(uid=event.uid, limit=1)
        allow = (job is not None and job.state == JobState.PROCESSING
                 and event.record_id == self.state.current and job.phase is not None
                 and not used)
        if used:
            log.warning("chip %s at the encoder for %s is already in the register (%s %s):"
                        " not written", event.uid, event.record_id, used[0].outcome,
                        used[0].record_id)
        if allow:
            self.store.update_job(event.record_id, chip_uid=event.uid)
        return [ev.AnswerPick(event.record_id, allow, event.token)]

    def _on_chip_found(self, event: ev.ChipFound) -> list:
        """A card found inside the printer after a restart, told by its chip: it did not
        come out, so the job whose card it is did not print. Untouched, it goes to the
        next card (its pick is booked back); written or unreadable, it was rejected and is
        invalid ``gagal-encode``. Either way its job prints again."""
        job = self._card_inside(event.uid)
        if job is None:
            log.warning("a card was found in the printer (chip %s, %s): no job waits for it"
                        " (a card whose end was booked already, or none of this station's): %s",
                        event.uid or "unreadable",
                        "left for the next card" if event.untouched else "rejected",
                        event.detail)
            return []
        rid = job.record_id
        self._doubts.discard(rid)
        if event.untouched:
            if job.phase == Phase.PICKED:
                self.ledger.unpicked(Blank(rid, f"blank {event.uid} found untouched in the"
                                                " printer after a restart: used for the next"
                                                " card"))
            self.set_job(rid, JobState.PENDING, (), f"found in the printer after a restart,"
                         f" its chip {event.uid} untouched: the blank is used again",
                         job=job, **CLEARED)
            return []
        if event.uid is not None and job.chip_uid is None:
            job = self._with_uid(job, event.uid)
        self._settle(job, "spoiled", how=f"found in the printer after a restart and rejected"
                     f" (Ser): {event.detail}", category="gagal-encode")
        return []

    def _held_inside(self, job: Job, event: ev.CardFailed) -> list:
        """The card waits untouched inside the printer until its fault clears; the job goes
        first then, and its ``Sic`` takes that card: its pick is booked back now."""
        rid = job.record_id
        if job.phase == Phase.PICKED:
            self.ledger.unpicked(Blank(rid, f"untouched blank left in the printer: {event.detail}"))
        self.set_job(rid, JobState.PROCESSING_STOPPED, event.reasons,
                     f"{event.detail}; the blank waits in the printer for this card",
                     job=job, **CLEARED)
        self.state.current = rid
        return []

    # -- desk mode: the handover scan (chip.md; kiosk/station/deskchip.py) ----------------

    def _on_handover_mismatch(self, event: ev.HandoverMismatch) -> list:
        """The card came out printed, but its handover scan did not show the chip encoded
        for its record: the job is held, processing-stopped with ``uncertain`` and
        ``handover-mismatch-warning`` (an alert while it stands), until a person confirms
        (the card is right) or reprints (it is spoiled). Its card is out of the printer:
        the counters kept at its pick must not decide it after a restart."""
        job = self.store.job(event.record_id)
        self._release_printer(event.record_id)
        if job is None or job.state != JobState.PROCESSING:
            return []
        self.set_job(job.record_id, JobState.PROCESSING_STOPPED,
                     (Reason.UNCERTAIN, ev.HANDOVER_MISMATCH), event.detail, job=job,
                     pick_counts=None)
        return []

    def _card_inside(self, uid: str | None) -> Job | None:
        """The job whose card is in the printer: by its committed chip, else the one job
        that was picking (only one card is ever in the printer)."""
        doubtful = [job for job in self.store.jobs(JobState.PROCESSING_STOPPED)
                    if job.phase is not None and Reason.UNCERTAIN in job.reasons]
        by_uid = [job for job in doubtful if uid is not None and job.chip_uid == uid]
        if by_uid:
            return by_uid[0]
        unknown = [job for job in doubtful if job.chip_uid is None]
        return unknown[0] if len(unknown) == 1 else None

    def _with_uid(self, job: Job, uid: str) -> Job:
        self.store.update_job(job.record_id, chip_uid=uid)
        return self.store.job(job.record_id) or job

    def _tell_blank(self, row: BlankRow) -> None:
        """A change of the register of blanks, to the district (mqtt.md ``blank``)."""
        self.out.event("blank", uid=row.uid, record_id=row.record_id, document=row.document,
                       outcome=row.outcome, category=row.category, detail=row.detail)

    def _document(self, job: Job | None) -> str:
        """The document a job's blank is: its record's, else the station's first."""
        if job is not None and job.payload is not None:
            try:
                found = document_of(json.loads(job.payload))
            except ValueError:
                found = None
            if found:
                return found
        return self.config.station.documents[0]

    def foreign_blank(self, uid: str, record_id: str | None, detail: str) -> bool:
        """The district says *uid* is in none of its shipment manifests: raised as
        ``foreign-blank-warning`` until the blank is declared (``invalidate``). False if it
        was known already, or a person has declared it invalid already."""
        foreign = self.foreign_blanks()
        declared = self.store.blanks(uid=uid, limit=1)
        if uid in foreign or (declared and declared[0].outcome == "invalid"
                              and declared[0].category in ("rusak", "perubahan-elemen-data")):
            return False  # told before, or a person declared it already: nothing stands
        foreign[uid] = f"{record_id or 'no record'}: {detail}"[:200]
        self._keep_foreign(foreign)
        log.warning("foreign-blank-warning: the district received no blank %s (%s)", uid,
                    record_id or "no record")
        return True

    def foreign_blanks(self) -> dict[str, str]:
        """The foreign blanks told and not yet declared: UID → what the district said."""
        return dict(self.state.foreign)

    def forget_foreign(self, uid: str | None) -> None:
        foreign = self.foreign_blanks()
        if uid in foreign:
            del foreign[uid]
            self._keep_foreign(foreign)

    def _keep_foreign(self, foreign: dict[str, str]) -> None:
        """Kept in the spool (it outlives a restart) and in the state (read every step)."""
        self.state.foreign = foreign
        self.store.set_meta("foreign_blanks", json.dumps(foreign))

    def _release_printer(self, record_id: str) -> None:
        if self.state.ahead == record_id:
            self.state.ahead = None
        if self.state.current == record_id and self.state.ahead is not None:
            # The card the print server held behind it is the one printing now.
            self.state.current, self.state.ahead = self.state.ahead, None
            return
        if self.state.current == record_id:
            self.state.current = None
        if self.state.printer is PrinterCondition.BUSY:
            self.state.printer = PrinterCondition.IDLE

    def _set_printer(self, status: str, reasons: tuple[str, ...], detail: str = "") -> None:
        busy = status == "idle" and self.state.printer is PrinterCondition.BUSY
        self.state.printer = PrinterCondition.BUSY if busy else status
        self.state.printer_reasons = tuple(reasons)
        self.state.printer_detail = detail

    def _dispatch(self) -> list:
        if self.state.printer is not PrinterCondition.IDLE or self.state.paused:
            return []
        job = self.store.job(self.state.current) if self.state.current else None
        resumes = job is not None and job.state == JobState.PROCESSING_STOPPED
        if not resumes or is_uncertain(job.state, job.reasons):
            job = self.store.next_pending()
        while job is not None and job.payload is None:
            self._set_aside(job.record_id)  # no job may block the ones behind it
            job = self.store.next_pending()
        if job is None:
            return []
        self.state.current = job.record_id
        self.state.printer = PrinterCondition.BUSY
        self.set_job(job.record_id, JobState.PROCESSING, (), "sent to the card printer", job=job)
        return [ev.StartCard(job.record_id, job.payload)]

    def _set_aside(self, record_id: str) -> None:
        """Hold a job whose record is gone; the rest of the queue prints."""
        self.forget_current(record_id)
        self.set_job(record_id, JobState.PENDING_HELD, (Reason.RECORD_MISSING,),
                     "its record is no longer on this station: send the record again")

    def _prefetch(self) -> list:
        """Render the next card while this one prints (never in the gap between cards)."""
        upcoming = self.store.next_pending()
        if upcoming is None or upcoming.payload is None:
            return []
        if upcoming.record_id == self.state.prefetched:
            return []
        self.state.prefetched = upcoming.record_id
        return [ev.Prefetch(upcoming.record_id, upcoming.payload)]

    # -- the tray and the clock --------------------------------------------------------

    def _on_tray(self, event: object) -> list:
        empty = self.stock.estimate is not None and self.stock.estimate <= 0
        self.stock.on_tray(event)
        return tray_refilled(empty, self.stock.estimate)

    def _on_tray_calibrated(self, event: ev.TrayCalibrated) -> list:
        if event.ok:
            self.stock.calibrated(self.store, event.empty_height_um, event.card_um)
        detail = "tray board calibrated" if event.ok else f"tray board refused: {event.reason}"
        self.out.event("command", name="calibrate", source="tray",
                       args={"empty_height_um": event.empty_height_um, "card_um": event.card_um},
                       ok=event.ok, error=None if event.ok else "tray-refused", detail=detail)
        return []

    def _on_update_outcomes(self, event: ev.UpdateOutcomes) -> list:
        """Tell the district what became of each update (mqtt.md event ``update``)."""
        for outcome in event.events:
            self.out.event("update", **{key: str(outcome.get(key, ""))[:limit]
                                        for key, limit in UPDATE_FIELDS.items()})
        return [ev.UpdateOutcomesTold()]

    def _on_tick(self, event: ev.Tick) -> list:
        self.stock.on_tick()
        actions: list = self._purge_due(self.clock())
        if self.out.heartbeat_due():
            actions.append(self.out.state(self.state_document(), force=True))
        return actions

    def _purge_due(self, now: float) -> list:
        """Personal data goes keep_personal_data_h after a job ends (checked often enough)."""
        keep_s = self.config.security.keep_personal_data_h * 3600
        if now < self._next_purge:
            return []
        self._next_purge = now + min(PURGE_EVERY_S, keep_s / 4)
        # Requests carried out are remembered beyond the session the broker may redeliver in.
        self.store.forget_requests(now - self.config.mqtt.session_expiry_s - 86400)
        return [ev.PurgePersonalData(now - keep_s)]

    def _on_purge_done(self, event: ev.PurgeDone) -> list:
        self.state.purges_unclean = 0 if event.clean else self.state.purges_unclean + 1
        return []

    # -- for the core's parts (commands, the front desk: `CoreAccess`) and the loop -----

    def now(self) -> float:
        return self.clock()

    def job(self, record_id: str) -> Job | None:
        return self.store.job(record_id)

    def jobs(self, *states: str) -> list[Job]:
        return self.store.jobs(*states)

    def rejected(self) -> int:
        return int(self.store.get_meta("rejected", "0"))

    def tray_online(self) -> bool | None:
        return self.stock.tray_online

    def event(self, kind: str, **fields: object) -> None:
        self.out.event(kind, **fields)

    def reply(self, topic: str, body: dict, correlation: bytes) -> None:
        self.out.outbox(topic, body, correlation)

    def rebirth(self) -> list:
        """The whole outbox again, from its first item; the state after this step."""
        self.out.resend_all()
        self.out.forget_state()
        return [ev.Publish(self.topic("availability"), b"online")]

    def request_reply(self, key: str) -> bytes | None:
        return self.store.request_reply(key)

    def remember_request(self, key: str, name: str, reply: bytes) -> None:
        self.store.remember_request(key, name, reply)

    def set_paused(self, paused: bool) -> None:
        """Take no new card into the printer (the card in it finishes); kept in the spool."""
        self.state.paused = paused
        self.store.set_meta("paused", "1" if paused else "0")

    def set_accepting(self, accepting: bool) -> None:
        """Store new records (True) or refuse them with not-accepting (drain); kept."""
        self.state.accepting = accepting
        self.store.set_meta("accepting", "1" if accepting else "0")

    def set_spool_full(self, full: bool) -> None:
        """The spool's disk is nearly full (the station loop watches the free space)."""
        self.state.spool_full = full

    def forget_current(self, record_id: str) -> None:
        """*record_id* will not go first when the printer is back (it was canceled)."""
        if self.state.current == record_id:
            self.state.current = None

    def in_printer(self, record_id: str) -> bool:
        """A card of *record_id* is being printed now."""
        job = self.store.job(record_id)
        return job is not None and (job.phase is not None or (
            record_id == self.state.current and job.state == JobState.PROCESSING))

    # -- publishing ------------------------------------------------------------------

    def topic(self, leaf: str) -> str:
        return self.out.topic(leaf)

    def set_job(self, record_id: str, state: str, reasons: tuple[str, ...], detail: str,
                *, job: Job | None = None, **columns: object) -> None:
        """Move a job to *state* (a move of the lifecycle table) and tell the district.

        *job*: the job as just read, if the caller has it; *columns*: other columns
        changed in the same update (between two cards every statement counts)."""
        job = job or self.store.job(record_id)
        check_transition(record_id, job.state if job else None, state)
        self.store.update_job(record_id, state=state, reasons=reasons, detail=detail, **columns)
        self.out.job_event(record_id, state, reasons, detail,
                           chip_uid=job.chip_uid if job else None)

    def _active_alerts(self) -> dict[str, str]:
        active = {r: self.state.printer_detail or r for r in self.state.printer_reasons}
        active.update(self.stock.reasons())
        active.update(supply_reasons(self.state.supplies))
        active.update(self.desk.receipt_reasons)
        active.update(self.desk.handover_alerts())
        if self.state.spool_full:
            active[Reason.SPOOL_FULL] = "the spool's disk is nearly full: records wait"
        held = self.store.queue_counts()["held"]
        if held:
            active[Reason.JOB_HELD] = f"{held} jobs wait for their record: send them again"
        foreign = self.state.foreign
        if foreign:
            active[Reason.FOREIGN_BLANK] = (
                "blanks in no shipment manifest of the district: "
                + ", ".join(f"{uid} ({why})" for uid, why in sorted(foreign.items())))[:400]
        if self.state.purges_unclean >= PURGE_UNCLEAN_ALERT:
            active[Reason.PURGE_INCOMPLETE] = (
                "purged personal data is still in spool.db-wal: a reader holds the spool")
        return active

    def state_actions(self) -> list:
        """A retained state publish and a panel view, each only if it changed."""
        state = self.state_document()
        return [a for a in (self.out.state(state), self.desk.view_changed(state)) if a]

    def state_document(self) -> dict:
        """The state of mqtt.md without schema/boot_id/seq/ts."""
        reasons = set(self.state.printer_reasons) | set(self.stock.reasons())
        reasons |= set(self.desk.receipt_reasons)  # warnings only: they never stop a card
        reasons |= set(self.desk.handover_alerts())
        reasons |= set(supply_reasons(self.state.supplies))
        if self.state.printer is PrinterCondition.CONNECTING:
            reasons.add(Reason.CONNECTING)
        if self.state.spool_full:
            reasons.add(Reason.SPOOL_FULL)
        if self.state.foreign:  # a warning: it never stops a card
            reasons.add(Reason.FOREIGN_BLANK)
        if self.state.paused:
            reasons.add(Reason.PAUSED)
        if self.state.printer is PrinterCondition.BUSY:
            printer_state = "processing"
        elif self.state.printer is not PrinterCondition.IDLE or self.state.paused:
            printer_state = "stopped"
        else:
            printer_state = "idle"
        ledger = self.store.ledger()
        register = self.store.register_counts()
        return {
            "printer_state": printer_state,
            "printer_state_reasons": sorted(reasons) or ["none"],
            "accepting_jobs": self.state.accepting and not self.state.spool_full,
            "queue": self.store.queue_counts(),
            "stock": self.stock.document(ledger),
            "counters": {
                "printed": ledger.printed,
                "spoiled": ledger.spoiled,
                "rejected": self.rejected(),
                "invalid": {category: register[category] for category in INVALID_CATEGORIES},
            },
            "documents": list(self.config.station.documents),
            "encoder": self.config.encoder.mode,
            "supplies": [dict(s) for s in self.state.supplies],
            "version": __version__,
        }



def _chip_failure(event: ev.CardFailed) -> ev.CardFailed:
    """A chip step that failed says why in the job's detail (chip.md: gagal-encode)."""
    uid = f"chip {event.uid}" if event.uid else "no chip read"
    return ev.CardFailed(event.record_id, event.reasons,
                         f"chip step failed ({uid}): {event.chip}; the blank was ejected to"
                         " the reject box", event.blank, event.job_error, event.chip, event.uid)
