"""The pick answer is tied to its question: the printer thread on a real pty simulator."""

from __future__ import annotations

import json
import queue
import time

from kiosk.devices.printer.evolis.driver import EvolisPrinter
from kiosk.sim.samples import make_record
from kiosk.station.core import events as ev
from kiosk.station.loop import make_renderer
from kiosk.station.printing import PrintWorker


def next_of(heard: queue.Queue, kind: type, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # other events may keep coming: the deadline holds
        event = heard.get(timeout=max(0.01, deadline - time.monotonic()))
        if isinstance(event, kind):
            return event
    raise AssertionError(f"no {kind.__name__} within {timeout} s")


def test_a_late_answer_to_an_earlier_request_is_not_taken_for_a_new_one(
    printer_sim
):
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
        time.sleep(0.5)
        assert printer_sim.picked == 0, "a blank was picked on an answer to another request"
        worker.answer_pick(ev.AnswerPick(rid, True, request.token))
        assert next_of(heard, ev.CardPrinted).record_id == rid
        assert printer_sim.picked == 1
    finally:
        worker.stop()
