"""The running station: adapters around the core, and the loop between them.

Adapters (broker link, print worker, tray link) put events on one queue (the
printer's first). The
station loop takes whatever is waiting, lets the core handle it inside one
spool transaction, commits, and only then carries out the actions (so an ack
never leaves before the commit of the record it acknowledges). A tick every
second drives heartbeats, alert timers and personal-data purging.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiosk.card.render import render_card
from kiosk.contract.documents import DOCUMENTS, parse_job
from kiosk.contract.signing import Verifier
from kiosk.devices.encoder import make_encoder
from kiosk.devices.encoder.personalizer import UnknownPersonalizer
from kiosk.devices.panel.buttons import DevicePanel, PanelTiming
from kiosk.devices.panel.lcd import open_lcd
from kiosk.devices.printer import make_printer
from kiosk.devices.printer.base import CardPrinter
from kiosk.devices.tray.driver import TrayLink
from kiosk.extras import require
from kiosk.ops.update.cli import DEFAULT_CONFIG
from kiosk.ops.update.command import Launcher, UpdateEvents, systemd_run
from kiosk.ops.update.command import accept as accept_update
from kiosk.station.config import Config, ConfigError
from kiosk.station.core import events as ev
from kiosk.station.core.machine import StationCore
from kiosk.station.deskchip import DeskChip
from kiosk.station.mqttlink import MqttLink
from kiosk.station.printing import PICK_ANSWER_TIMEOUT, PrintWorker
from kiosk.station.spool import Spool

if TYPE_CHECKING:
    from kiosk.devices.receipt import ReceiptPrinter

log = logging.getLogger(__name__)

TICK_S = 1.0
MAX_BATCH = 32  # events per commit: bounds how long the printer's next answer can wait
PRINTER_EVENTS = (ev.PrinterCounters, ev.CardFate, ev.PickRequested, ev.CardPicked, ev.CardPrinted,
                  ev.CardFailed, ev.PrinterReady, ev.PrinterFault, ev.ChipSeen, ev.ChipFound,
                  ev.DeskPrompt, ev.HandoverMismatch, ev.PickAheadRequested)


def make_renderer(printer: CardPrinter) -> Callable[[bytes], Any]:
    """Spooled record JSON → the document *printer* gets (its driver's `prepare`)."""

    def render(payload: bytes) -> Any:
        # Checked in full on arrival; any document, so a record spooled before a change of
        # [station] documents still reads.
        record = parse_job(payload, documents=DOCUMENTS, decode_images=False)
        return printer.prepare(render_card(record))

    return render


def card_budget_s(config: Config) -> float:
    """The longest a card may take when every timeout inside it runs out, and a margin."""
    printer = config.printer
    downloads = 6 * printer.download_timeout_s  # five panels and the overlay, at worst
    settings = 10 * printer.setting_timeout_s
    encoder = config.encoder  # two card waits, the personalizer, the chip's commit
    waits = {"none": 0, "inline": 2, "desk": 5}[encoder.mode]  # desk: clear, lay, feed, scan, off
    chip = 0.0 if encoder.mode == "none" else (
        waits * encoder.wait_s + encoder.timeout_s + PICK_ANSWER_TIMEOUT)
    return downloads + settings + printer.print_seconds + 10 + PICK_ANSWER_TIMEOUT + 60 + chip


def make_verifier(config: Config) -> Verifier:
    """Trusted district keys; a missing key file is a configuration error when required."""
    security = config.security
    if not security.require_signed_jobs:
        present = [path for path in security.trusted_keys if Path(path).is_file()]
        return Verifier.from_pem_files(present, required=False)
    try:
        return Verifier.from_pem_files(security.trusted_keys, required=True)
    except ValueError as error:
        raise ConfigError("security.trusted_keys", str(error)) from error


def free_mb(path: str) -> float:
    """Free space for an unprivileged writer on the filesystem holding *path*."""
    stat = os.statvfs(Path(path).parent)
    return stat.f_bavail * stat.f_frsize / 1e6


class EventQueue:
    """The station's one inbox, where the printer's events overtake everything else.

    A burst of records (and the broker's confirmations of their events) must not
    keep the printer waiting for the answer to its next pick.
    """

    def __init__(self) -> None:
        self._queue: queue.PriorityQueue[tuple[int, int, object]] = queue.PriorityQueue()
        self._order = itertools.count()

    def put(self, event: object) -> None:
        urgent = event is None or isinstance(event, PRINTER_EVENTS)
        self._queue.put((0 if urgent else 1, next(self._order), event))

    def get(self, timeout: float | None = None) -> object:
        return self._queue.get(timeout=timeout)[2]

    def get_nowait(self) -> object:
        return self._queue.get_nowait()[2]


def make_chip_parts(config: Config, printer: CardPrinter,
                    emit: Callable[[object], None]) -> tuple[Any | None, DeskChip | None]:
    """The print worker's chip parts for ``[encoder] mode``: (inline encoder, desk step).
    In desk mode the printer takes every card from its manual slot."""
    encoder = _encoder(config)
    if config.encoder.mode != "desk":
        return encoder, None
    printer.use_manual_feed(config.encoder.wait_s)  # type: ignore[attr-defined]
    return None, DeskChip(encoder, emit, wait_s=config.encoder.wait_s)


def _encoder(config: Config) -> object | None:
    """The chip encoder; a personalizer that cannot be loaded is a configuration error
    (exit 2, the key named), not a traceback at start-up."""
    try:
        return make_encoder(config.encoder)
    except UnknownPersonalizer as error:
        raise ConfigError("encoder.personalizer", str(error)) from error


class Station:
    """One print station: build it from a config, then ``run()`` until ``stop()``."""

    def __init__(self, config: Config, *, notify: Callable[[str], None] | None = None,
                 config_path: str = DEFAULT_CONFIG,
                 update_launcher: Launcher | None = None) -> None:
        self.config = config
        self.config_path = config_path  # what the updater it starts reads (kiosk update)
        self.update_launcher = update_launcher or systemd_run
        self.update_events = UpdateEvents(config.station.spool)
        self.events = EventQueue()
        self.spool = Spool(config.station.spool)
        self.core = StationCore(config, self.spool, verifier=make_verifier(config))
        self.link = MqttLink(config, self.events.put)
        printer = make_printer(config.printer)
        keep_jobs = getattr(printer, "keep_jobs", None)
        if keep_jobs is not None:  # a print server's job-ids, durable beside the spool
            keep_jobs(f"{config.station.spool}.ipp-jobs.json")
        encoder, desk = make_chip_parts(config, printer, self.events.put)
        self.worker = PrintWorker(printer, make_renderer(printer), self.events.put,
                                  poll_s=config.printer.poll_s,
                                  resync_s=config.printer.resync_s,
                                  card_budget_s=card_budget_s(config),
                                  encoder=encoder, desk=desk)
        self.tray = TrayLink(config.tray.port, self.events.put) if config.tray.enabled else None
        self.receipt = self._receipt(config)
        self.panel = self._panel(config)
        self.notify = notify or (lambda status: None)
        self._starving = False  # the watchdog is not being fed (a stuck thread)
        self._stop = threading.Event()
        self._next_tick = 0.0
        self._held: list[object] = []
        self.executors: dict[type, Callable[[object], None]] = {
            ev.Ack: lambda a: self.link.ack(a.mid, a.generation),
            ev.Publish: lambda a: self.link.publish(a.topic, a.payload, retain=a.retain),
            ev.SendOutbox: lambda a: self.link.send(a.items, again=a.again),
            ev.StartCard: lambda a: self.worker.start_card(a.record_id, a.payload),
            ev.Prefetch: lambda a: self.worker.prefetch(a.record_id, a.payload),
            ev.AnswerPick: self.worker.answer_pick,
            ev.Show: lambda a: self.panel and self.panel.show(a.view),
            ev.ProbePrinter: lambda a: self.worker.probe_now(),
            ev.FaultGone: lambda a: self.worker.fault_gone(a.kind),
            ev.ResolveCards: lambda a: self.worker.resolve(a.cards),
            ev.PurgePersonalData: self._purge,
            ev.CalibrateTray: self._calibrate,
            ev.PrintSlip: lambda a: self.receipt and self.receipt.slip(a),
            ev.PrintShiftReport: lambda a: self.receipt and self.receipt.shift_report(a),
            ev.StartUpdate: self._start_update,
            ev.UpdateOutcomesTold: lambda a: self.update_events.done(),
        }

    def _start_update(self, action: ev.StartUpdate) -> None:
        """The updater, started outside this unit (it restarts it); a start that fails is
        told to the district as the update's outcome."""
        reply = accept_update(action.args, config=self.config_path,
                              launcher=self.update_launcher)
        if not reply["ok"]:
            log.error("cannot start the update to %s: %s", action.args.get("version"),
                      reply.get("detail"))
            self.events.put(ev.UpdateOutcomes(({
                "version": action.args.get("version"), "outcome": "failed",
                "detail": f"{reply.get('error')}: {reply.get('detail', '')}"},)))

    def _calibrate(self, action: ev.CalibrateTray) -> None:
        """The board answers within 2 s: wait for it off the loop."""
        def ask() -> None:
            if self.tray is None:
                ok, reason = False, "no tray board configured"
            else:
                ok, reason = self.tray.calibrate(action.empty_height_um, action.card_um)
            self.events.put(ev.TrayCalibrated(ok, action.empty_height_um, action.card_um, reason))

        threading.Thread(target=ask, name="tray-calibrate", daemon=True).start()

    def _purge(self, action: ev.PurgePersonalData) -> None:
        outcome = self.spool.purge_personal_data(action.before)
        if outcome.clean and outcome.removed:
            log.info("personal data of %d finished jobs removed from the spool", outcome.removed)
        elif not outcome.clean:
            log.warning("personal data of %d finished jobs deleted, but a reader holds the"
                        " spool: copies stay in its WAL until the checkpoint can finish"
                        " (retried)", outcome.removed)
        self.events.put(ev.PurgeDone(outcome.removed, outcome.clean))

    def _receipt(self, config: Config) -> ReceiptPrinter | None:
        if not config.receipt.enabled:
            return None
        require("escpos", "receipt", "a receipt printer ([receipt] enabled = true)")
        from kiosk.devices.receipt import ReceiptPrinter  # python-escpos is heavy: only when used

        return ReceiptPrinter(config.receipt.port, self.events.put,
                              language=config.panel.language)

    def _panel(self, config: Config) -> DevicePanel | None:
        """The buttons, lights and LCD; a station without them still prints."""
        if not config.panel.enabled:
            return None
        try:
            return DevicePanel(config.panel, self.events.put, lcd=open_lcd(config.panel.lcd),
                               timing=PanelTiming(hold_s=config.panel.hold_s))
        except Exception as error:  # no GPIO here, pins taken, no I2C: run headless
            log.warning("device panel unavailable, running without it: %s", error)
            return None

    def run(self) -> None:
        with self.spool.transaction():
            actions = self.core.start()
        self.link.start()
        self.worker.start()
        if self.tray:
            self.tray.start()
        if self.receipt:
            self.receipt.start()
        self._execute(actions)
        self.notify("READY=1")
        try:
            while not self._stop.is_set():
                self._step()
        finally:
            self._shutdown()

    def stop(self) -> None:
        self._stop.set()
        self.events.put(None)

    def _step(self) -> None:
        batch = self._admit(self._take_batch())
        # The printer's events go first, in a commit of their own: a burst of records
        # must not keep the printer waiting for its answer.
        printer = [e for e in batch if isinstance(e, PRINTER_EVENTS)]
        actions = self._handle(printer) if printer else []
        others = [e for e in batch if not isinstance(e, PRINTER_EVENTS)]
        if others:
            actions += self._handle(others)
        actions.extend(self.core.state_actions())
        self._execute(actions)
        self._feed_watchdog()
        if any(isinstance(a, ev.Publish) and a.topic.endswith("/state") for a in actions):
            self.notify("STATUS=" + self._status_line())

    def _handle(self, events: list[object]) -> list:
        """Let the core handle *events* in one commit; returns the actions still to do."""
        actions: list = []
        with self.spool.transaction():
            for event in events:
                for action in self.core.handle(event):
                    if isinstance(action, ev.StartCard):
                        # Before the commit, safely: the printer only gets ready. No blank
                        # is picked before AnswerPick, which follows a later commit.
                        self._execute([action])
                    else:
                        actions.append(action)
        # Committed: the printer hears first.
        self._execute([a for a in actions if isinstance(a, ev.AnswerPick)])
        return [a for a in actions if not isinstance(a, ev.AnswerPick)]

    def _feed_watchdog(self) -> None:
        """Tell systemd we are alive, unless a thread of ours is stuck beyond its timeouts:
        then systemd restarts the service rather than leave it looking alive."""
        if self.worker.stuck():
            if not self._starving:
                log.critical("the printer thread is stuck beyond its timeouts: the watchdog"
                             " is no longer fed, systemd will restart the station")
            self._starving = True
            return
        self._starving = False
        self.notify("WATCHDOG=1")

    def _status_line(self) -> str:
        """One line for `systemctl status`: state, reasons, queue, stock."""
        state = self.core.out.last_state or self.core.state_document()
        reasons = ",".join(state["printer_state_reasons"])
        stock = state["stock"]["remaining"]
        return (f"{state['printer_state']} ({reasons}); queue {state['queue']['pending']};"
                f" stock {'?' if stock is None else stock}")

    def _take_batch(self) -> list[object]:
        now = time.monotonic()
        if now >= self._next_tick:
            self._next_tick = now + TICK_S
            self.link.retry_due(now)  # what the broker refused goes again after its back-off
            outcomes = self.update_events.take()  # an updater's word, once it has finished
            told = [ev.UpdateOutcomes(tuple(outcomes))] if outcomes else []
            return [ev.Tick(time.time()), *told, *self._drain()]
        try:
            first = self.events.get(timeout=self._next_tick - now)
        except queue.Empty:
            return []
        return [event for event in (first, *self._drain()) if event is not None]

    def _admit(self, batch: list[object]) -> list[object]:
        """Records wait at the broker, unacknowledged, while the spool's disk is nearly full.

        Everything else (printer progress, commands) still goes through: it is small,
        and the reserve of ``station.min_free_mb`` is there for it.
        """
        full = free_mb(self.spool.path) < self.config.station.min_free_mb
        if full != self.core.state.spool_full:
            log.log(logging.ERROR if full else logging.INFO, "spool disk %s",
                    "nearly full: records are left at the broker" if full else "has room again")
            self.core.set_spool_full(full)
        if full:
            self._held.extend(e for e in batch if self._is_record(e))
            return [e for e in batch if not self._is_record(e)]
        held, self._held = self._held, []
        return held + batch

    def _is_record(self, event: object) -> bool:
        return isinstance(event, ev.MessageArrived) and event.topic == self.core.topic("jobs")

    def _drain(self) -> list[object]:
        batch: list[object] = []
        while len(batch) < MAX_BATCH:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                break
            if event is not None:
                batch.append(event)
        return batch

    def _execute(self, actions: list) -> None:
        for action in actions:
            self.executors[type(action)](action)

    def _shutdown(self) -> None:
        self.notify("STOPPING=1")
        self.worker.stop()
        if self.tray:
            self.tray.stop()
        if self.receipt:
            self.receipt.stop()
        if self.panel:
            self.panel.close()
        self.link.stop()
        self.spool.close()
