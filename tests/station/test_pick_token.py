"""The pick answer is tied to its question: the printer thread on a real pty simulator."""

from __future__ import annotations

import json
import logging
import queue

from kiosk.devices.printer.evolis.driver import EvolisPrinter
from kiosk.sim.samples import make_record
from kiosk.station.core import events as ev
from kiosk.station.loop import make_renderer
from kiosk.station.printing import PrintWorker
from tests.support.rigs import next_of
from tests.support.wait import wait_until


def test_a_late_answer_to_an_earlier_request_is_not_taken_for_a_new_one(
    printer_sim, caplog
):
    caplog.set_level(logging.INFO, logger="kiosk.station.printing")
    heard: queue.Queue = queue.Queue()
    printer = EvolisPrinter(printer_sim.path, print_seconds=2.0, setting_timeout=0.5,
                            download_timeout=1.0)
    worker = PrintWorker(printer, make_renderer(printer), heard.put, poll_s=0.1, resync_s=1.2)
    worker.start()
    try:
        next_of(heard, ev.PrinterReady)
        record = make_record(1)
        rid = record["record_id"]
        worker.start_card(rid, json.dumps(record).encode())
        request = next_of(heard, ev.PickRequested)
        worker.answer_pick(ev.AnswerPick(rid, True, request.token - 1))  # a stale yes
        wait_until(lambda: "dropped a late pick answer" in caplog.text, 10,
                   what="the stale answer dropped")
        assert printer_sim.picked == 0, "a blank was picked on an answer to another request"
        worker.answer_pick(ev.AnswerPick(rid, True, request.token))
        assert next_of(heard, ev.CardPrinted).record_id == rid
        assert printer_sim.picked == 1
    finally:
        worker.stop()
