"""Cards found in the printer at a restart, decided by the printer's own counters.

The counters read just before the pick are kept with the picking mark; when the
printer connects after the restart (`PrinterCounters`) the core compares them: one
blank taken and one card printed → printed; one taken, none printed → spoiled and
printed again; none taken → not picked; anything else → a person decides.
"""

from __future__ import annotations

import pytest

from kiosk.station.core import events as ev
from kiosk.station.core.machine import counted_fate
from tests.support.core import Harness, of

BEFORE = {"taken": 40, "printed": 38}


def crashed_in_the_printer(*, confirmed: bool) -> tuple[Harness, str, str]:
    """A card killed between pick and eject; the restarted harness, its id, another's."""
    h = Harness()
    h.send(ev.PrinterReady())
    body, _ = h.record(1)
    other, _ = h.record(2)
    rid = body["record_id"]
    assert ev.AnswerPick(rid, True) in h.send(ev.PickRequested(rid, dict(BEFORE)))
    if confirmed:
        h.send(ev.CardPicked(rid))
    h2 = h.restart()  # the process dies here
    assert h2.store.job(rid).reasons == ("uncertain",)
    return h2, rid, other["record_id"]


def details(h: Harness, rid: str) -> list[str]:
    return [e["detail"] for e in h.events("job") if e["record_id"] == rid]


@pytest.mark.parametrize("confirmed", [True, False])
def test_a_card_the_printer_counted_as_printed_is_completed(confirmed):
    h, rid, other = crashed_in_the_printer(confirmed=confirmed)
    h.send(ev.PrinterCounters({"taken": 41, "printed": 39}))
    assert h.store.job(rid).state == "completed"
    assert "decided by the printer's counters (printed 38→39, taken 40→41)" in details(h, rid)[-1]
    ledger = h.store.ledger()
    assert (ledger.picks, ledger.printed, ledger.spoiled) == (1, 1, 0) and ledger.balanced
    assert [a.record_id for a in of(h.send(ev.PrinterReady()), ev.StartCard)] == [other]


def test_a_blank_taken_but_not_printed_is_spoiled_and_printed_again():
    h, rid, _ = crashed_in_the_printer(confirmed=True)
    h.send(ev.PrinterCounters({"taken": 41, "printed": 38}))
    assert h.store.job(rid).state == "pending"
    assert "card spoiled" in details(h, rid)[-1]
    assert [a.record_id for a in of(h.send(ev.PrinterReady()), ev.StartCard)] == [rid]
    h.print_one(rid)
    ledger = h.store.ledger()
    assert (ledger.picks, ledger.printed, ledger.spoiled) == (2, 1, 1) and ledger.balanced


def test_no_blank_taken_requeues_without_booking():
    h, rid, _ = crashed_in_the_printer(confirmed=False)
    h.send(ev.PrinterCounters(dict(BEFORE)))
    job = h.store.job(rid)
    assert (job.state, job.phase) == ("pending", None)
    assert h.store.ledger().picks == 0


@pytest.mark.parametrize("after", [{"taken": 42, "printed": 39}, {"taken": 40, "printed": 38},
                                   {}, {"taken": 39, "printed": 38}])
def test_counters_that_cannot_tell_leave_it_to_a_person(after):
    # 40→40 after a pick the printer confirmed is a contradiction; two blanks is not one card.
    h, rid, _ = crashed_in_the_printer(confirmed=True)
    h.send(ev.PrinterCounters(after))
    assert h.store.job(rid).reasons == ("uncertain",)


def test_without_counters_kept_at_the_pick_a_person_decides():
    h = Harness()
    h.send(ev.PrinterReady())
    body, _ = h.record(1)
    rid = body["record_id"]
    h.send(ev.PickRequested(rid))  # an IPP printer, or counters that could not be read
    h.send(ev.CardPicked(rid))
    h2 = h.restart()
    h2.send(ev.PrinterCounters({"taken": 1, "printed": 1}))
    assert h2.store.job(rid).reasons == ("uncertain",)


def test_only_cards_found_at_restart_are_decided_by_counters():
    """An unanswered Se while running stays uncertain (card-printer.md): the counters at the
    next connect are not compared for it."""
    h = Harness()
    h.send(ev.PrinterReady())
    body, _ = h.record(1)
    rid = body["record_id"]
    h.send(ev.PickRequested(rid, dict(BEFORE)))
    h.send(ev.CardPicked(rid))
    h.send(ev.CardFailed(rid, ("timed-out-error",), "no reply to Se", blank=ev.BLANK_UNKNOWN))
    h.send(ev.PrinterCounters({"taken": 41, "printed": 39}))
    assert h.store.job(rid).reasons == ("uncertain",)


def test_counted_fate_table():
    assert counted_fate("picked", BEFORE, {"taken": 41, "printed": 39}) == "printed"
    assert counted_fate("picking", BEFORE, {"taken": 41, "printed": 38}) == "spoiled"
    assert counted_fate("picking", BEFORE, BEFORE) == "not-picked"
    assert counted_fate("picked", BEFORE, BEFORE) is None
    assert counted_fate("picked", BEFORE, {"taken": 41}) is None
