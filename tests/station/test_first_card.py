"""The first card on an idle station: its pick is asked (and the picking mark committed)
while the card is still rendering, and a card that then fails to render takes no blank."""

from __future__ import annotations

import json
import queue
import threading

from kiosk.devices.printer.evolis.driver import EvolisPrinter
from kiosk.sim.samples import make_record
from kiosk.station.core import events as ev
from kiosk.station.loop import make_renderer
from kiosk.station.printing import PrintWorker
from tests.support.core import Harness
from tests.support.rigs import next_of


class HeldRenderer:
    """The station's renderer, held back until the test lets it go (or made to fail)."""

    def __init__(self, printer: EvolisPrinter, *, fail: bool = False) -> None:
        self.render = make_renderer(printer)
        self.fail = fail
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, payload: bytes):
        self.started.set()
        if not self.release.wait(10):
            raise TimeoutError("the test never let the render go")
        if self.fail:
            raise ValueError("photo cannot be drawn")
        return self.render(payload)


def a_worker(printer_sim, *, fail: bool = False):
    printer = EvolisPrinter(printer_sim.path, print_seconds=2.0, setting_timeout=0.5,
                            download_timeout=1.0)
    renderer = HeldRenderer(printer, fail=fail)
    heard: queue.Queue = queue.Queue()
    worker = PrintWorker(printer, renderer, heard.put, poll_s=0.1, resync_s=1.2)
    return worker, renderer, heard


def test_the_pick_is_asked_while_the_card_is_still_rendering(printer_sim):
    worker, renderer, heard = a_worker(printer_sim)
    record = make_record(1)
    worker.start()
    try:
        next_of(heard, ev.PrinterReady)
        worker.start_card(record["record_id"], json.dumps(record).encode())
        request = next_of(heard, ev.PickRequested, timeout=3)  # the render is still held
        assert not renderer.release.is_set()
        assert request.counts == {"taken": 0, "printed": 0}
        worker.answer_pick(ev.AnswerPick(record["record_id"], True, request.token))
        assert printer_sim.picked == 0, "a blank was picked before the card was rendered"
        renderer.release.set()
        assert next_of(heard, ev.CardPrinted).record_id == record["record_id"]
        assert printer_sim.picked == 1
    finally:
        renderer.release.set()
        worker.stop()


def test_a_card_that_fails_to_render_after_its_pick_was_allowed_takes_no_blank(printer_sim):
    worker, renderer, heard = a_worker(printer_sim, fail=True)
    record = make_record(1)
    worker.start()
    try:
        next_of(heard, ev.PrinterReady)
        worker.start_card(record["record_id"], json.dumps(record).encode())
        request = next_of(heard, ev.PickRequested, timeout=3)
        worker.answer_pick(ev.AnswerPick(record["record_id"], True, request.token))
        renderer.release.set()
        failed = next_of(heard, ev.CardFailed)
        assert (failed.reasons, failed.blank, failed.job_error) == (
            ("document-format-error",), ev.BLANK_UNTOUCHED, True)
        assert printer_sim.picked == 0
        assert printer_sim.commands[-1] == "Pem", "the job was not closed"
    finally:
        renderer.release.set()
        worker.stop()


def test_the_core_books_nothing_for_a_picking_card_that_could_not_be_rendered():
    h = Harness()
    h.send(ev.PrinterReady())
    bad, _ = h.record(1)
    good, _ = h.record(2)
    rid = bad["record_id"]
    assert ev.AnswerPick(rid, True) in h.send(ev.PickRequested(rid))
    assert h.store.job(rid).phase == "picking"
    h.send(ev.CardFailed(rid, ("document-format-error",), "cannot render the card",
                         job_error=True))
    job = h.store.job(rid)
    assert (job.state, job.phase) == ("aborted", None)
    ledger = h.store.ledger()
    assert (ledger.picks, ledger.printed, ledger.spoiled) == (0, 0, 0)
    h.print_one(good["record_id"])
    assert h.store.ledger().printed == 1
