"""The next card's pick asked together with the previous card's end (`CardPrinted.then`):
one commit books card N printed and marks card N+1 picking, and only for the job the core
would start; the printer thread on a real pty simulator chains cards that way."""

from __future__ import annotations

import json
import queue

from kiosk.devices.printer.evolis.driver import EvolisPrinter
from kiosk.sim.samples import make_record
from kiosk.station.core import events as ev
from kiosk.station.loop import make_renderer
from kiosk.station.printing import PrintWorker
from tests.support.core import Harness, of
from tests.support.rigs import next_of
from tests.support.wait import wait_until


def printing(h: Harness, *indexes: int) -> list[str]:
    """Queue records; the first is in the printer, picked; returns their record ids."""
    h.send(ev.PrinterReady())
    rids = [h.record(i)[0]["record_id"] for i in indexes]
    h.send(ev.PickRequested(rids[0]))
    h.send(ev.CardPicked(rids[0]))
    return rids


def test_one_commit_books_the_card_printed_and_marks_the_next_picking():
    h = Harness()
    first, second = printing(h, 1, 2)
    counts = {"taken": 1, "printed": 1}
    actions = h.send(ev.CardPrinted(first, then=ev.PickRequested(second, counts, 7)))
    assert ev.AnswerPick(second, True, 7) in actions
    assert of(actions, ev.StartCard) == []  # the printer thread runs it already
    assert h.store.job(first).state == "completed"
    job = h.store.job(second)
    assert (job.state, job.phase, job.pick_counts) == ("processing", "picking", counts)
    h.send(ev.CardPicked(second))
    h.send(ev.CardPrinted(second))
    ledger = h.store.ledger()
    assert (ledger.picks, ledger.printed, ledger.spoiled) == (2, 2, 0)


def test_a_pick_for_a_job_that_is_not_next_is_refused_even_with_the_previous_end():
    h = Harness()
    first, second = printing(h, 1, 2)
    urgent = h.record(3, priority=5)[0]["record_id"]  # overtakes the one rendered ahead
    actions = h.send(ev.CardPrinted(first, then=ev.PickRequested(second, None, 8)))
    assert ev.AnswerPick(second, False, 8) in actions
    assert [a.record_id for a in of(actions, ev.StartCard)] == [urgent]
    assert h.store.job(first).state == "completed"
    assert (h.store.job(second).state, h.store.job(second).phase) == ("pending", None)
    assert h.store.job(urgent).state == "processing"


def test_a_chained_pick_is_refused_while_paused():
    h = Harness()
    first, second = printing(h, 1, 2)
    h.command("pause")
    actions = h.send(ev.CardPrinted(first, then=ev.PickRequested(second, None, 9)))
    assert ev.AnswerPick(second, False, 9) in actions
    assert of(actions, ev.StartCard) == []
    assert (h.store.job(second).state, h.store.job(second).phase) == ("pending", None)


class Rendered:
    """The renderer, counting the cards rendered of each record (a positive signal that
    a prefetched card is ready)."""

    def __init__(self, render) -> None:
        self.render = render
        self.counts: dict[str, int] = {}

    def __call__(self, payload: bytes):
        document = self.render(payload)
        rid = json.loads(payload)["record_id"]
        self.counts[rid] = self.counts.get(rid, 0) + 1
        return document


def test_the_printer_thread_chains_the_prefetched_card_and_drops_a_refused_one(
    printer_sim
):
    heard: queue.Queue = queue.Queue()
    printer = EvolisPrinter(printer_sim.path, print_seconds=2.0, setting_timeout=0.5,
                            download_timeout=1.0)
    rendered = Rendered(make_renderer(printer))
    worker = PrintWorker(printer, rendered, heard.put, poll_s=0.1, resync_s=1.2)
    picked_when_asked: dict[int, int] = {}  # request token → blanks picked when it waited
    await_answer = worker.await_answer

    def note_and_await(token: int) -> bool:
        picked_when_asked[token] = printer_sim.picked
        return await_answer(token)

    worker.await_answer = note_and_await
    worker.start()
    records = [make_record(i) for i in (1, 2, 3)]
    rids = [r["record_id"] for r in records]
    payloads = [json.dumps(r).encode() for r in records]
    try:
        next_of(heard, ev.PrinterReady)
        worker.start_card(rids[0], payloads[0])
        request = next_of(heard, ev.PickRequested)
        worker.prefetch(rids[1], payloads[1])
        wait_until(lambda: rendered.counts.get(rids[1]) == 1, 20, what="rendered ahead")
        worker.answer_pick(ev.AnswerPick(rids[0], True, request.token))
        printed = next_of(heard, ev.CardPrinted)
        assert printed.record_id == rids[0]
        chained = printed.then
        assert chained is not None and chained.record_id == rids[1]
        assert chained.counts == {"taken": 1, "printed": 1}  # read after the card came out
        # The printer thread waits for the core's answer: no blank was picked before.
        wait_until(lambda: chained.token in picked_when_asked, 10, what="waiting for the answer")
        assert picked_when_asked[chained.token] == 1, "the next blank was picked unasked"
        assert printer_sim.picked == 1, "the next blank was picked before the core's answer"
        worker.answer_pick(ev.AnswerPick(rids[1], True, chained.token))
        assert next_of(heard, ev.CardPrinted).record_id == rids[1]
        assert printer_sim.picked == 2
        # The same again, but the core refuses: no blank, no CardFailed, the thread goes on.
        worker.start_card(rids[2], payloads[2])
        worker.prefetch(rids[0], payloads[0])
        request = next_of(heard, ev.PickRequested)
        wait_until(lambda: rendered.counts.get(rids[0]) == 2, 20, what="rendered ahead again")
        worker.answer_pick(ev.AnswerPick(rids[2], True, request.token))
        printed = next_of(heard, ev.CardPrinted)
        assert printed.then is not None and printed.then.record_id == rids[0]
        wait_until(lambda: printed.then.token in picked_when_asked, 10,
                   what="waiting for the answer")
        worker.answer_pick(ev.AnswerPick(rids[0], False, printed.then.token))
        wait_until(lambda: not worker.busy(), 10, what="the withdrawn card ended")
        assert printer_sim.picked == 3
        left = []
        while not heard.empty():
            left.append(heard.get_nowait())
        assert not [e for e in left if isinstance(e, ev.CardFailed)], left
        assert printer_sim.commands[-1] == "Pem", "the withdrawn card's job was not closed"
    finally:
        worker.stop()
