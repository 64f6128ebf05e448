"""The card ledger's bookings agree wherever a card ends: the printer's word, a person's
confirm or reprint at the device, or the district's command (issue 23, point 1)."""

from __future__ import annotations

import json

import pytest

from kiosk.station.core import events as ev
from tests.support.core import Harness


class Clock:
    """A monotonic clock the test moves (the stock rate is picks per hour)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def uncertain_while_picking(clock: Clock) -> tuple[Harness, str]:
    """One card printed at t=0, then a second whose pick was allowed (``picking``, its
    counts kept) and whose fate nobody knows: the station stopped before ``Ss`` was answered."""
    h = Harness()
    h.core.stock.clock = clock
    h.send(ev.PrinterReady())
    first, _ = h.record(1)
    second, _ = h.record(2)
    h.print_one(first["record_id"])
    rid = second["record_id"]
    answer = h.send(ev.PickRequested(rid, {"taken": 5, "printed": 5}, 7))
    assert ev.AnswerPick(rid, True, 7) in answer
    h = h.restart()  # the process dies with Ss sent or about to be
    h.core.stock.clock = clock
    job = h.store.job(rid)
    assert (job.state, job.reasons, job.phase) == ("processing-stopped", ("uncertain",), "picking")
    clock.now += 3600.0  # an hour later a person decides
    return h, rid


def confirm(h: Harness, rid: str) -> None:
    h.command("confirm", json.dumps({"record_id": rid}).encode())


def reprint(h: Harness, rid: str) -> None:
    h.command("reprint", json.dumps({"record_id": rid, "reason": "no card came out"}).encode())


@pytest.mark.parametrize("decide", [confirm, reprint])
def test_a_decided_card_leaves_no_pick_counts_behind(decide):
    """As when the printer decides: a card that is no longer in the printer keeps no
    counters from its pick (they would be compared again after the next restart)."""
    h, rid = uncertain_while_picking(Clock())
    decide(h, rid)
    job = h.store.job(rid)
    assert (job.phase, job.pick_counts) == (None, None)


def test_a_confirmed_card_counts_its_pick_as_an_attempt():
    h, rid = uncertain_while_picking(Clock())
    confirm(h, rid)
    assert h.store.job(rid).attempts == 1
    ledger = h.store.ledger()
    assert (ledger.picks, ledger.printed, ledger.spoiled) == (2, 2, 0) and ledger.balanced


@pytest.mark.parametrize("decide", [confirm, reprint])
def test_a_pick_booked_by_a_person_counts_in_the_stock_rate(decide):
    """Two picks an hour apart since the restart: one card an hour, whoever booked the
    second."""
    h, rid = uncertain_while_picking(clock := Clock())
    h.send(ev.PrinterReady())
    third, _ = h.record(3)
    h.print_one(third["record_id"])
    assert h.core.state_document()["stock"]["rate_per_hour"] is None  # one pick: no rate
    clock.now += 3600.0
    decide(h, rid)
    assert h.core.state_document()["stock"]["rate_per_hour"] == 1.0


def test_the_device_and_the_district_book_a_confirm_alike():
    """The OK button at the device and the district's confirm book the same rows."""
    booked = []
    for way in ("device", "district"):
        h, rid = uncertain_while_picking(Clock())
        if way == "device":
            h.send(ev.OperatorIntent(ev.Intent.CONFIRM_UNCERTAIN, record_id=rid))
        else:
            confirm(h, rid)
        job = h.store.job(rid)
        ledger = h.store.ledger()
        booked.append((job.state, job.phase, job.pick_counts, job.attempts,
                       ledger.picks, ledger.printed, ledger.spoiled))
    assert booked[0] == booked[1]
