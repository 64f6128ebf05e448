"""The station's custody of blanks in its core (chip.md, Custody; mqtt.md ``blank``,
``invalidate``): every blank's end is a register row and a ``blank`` event, in its
category; a chip is committed to its job before it is written, and never twice; the
district's word on a foreign blank stands as an alert until the blank is declared."""

from __future__ import annotations

import json

import pytest

from kiosk.station.core import events as ev
from kiosk.station.core.state import JobState
from tests.support.core import Harness, of

UID_A, UID_B = "04A1B2C3D4E5F6", "04A1B2C3D4E5F7"


def started(h: Harness, index: int = 1) -> str:
    h.send(ev.PrinterReady())
    body, actions = h.record(index)
    assert of(actions, ev.StartCard)
    return body["record_id"]


def picked_with_chip(h: Harness, rid: str, uid: str) -> list:
    assert ev.AnswerPick(rid, True) in h.send(ev.PickRequested(rid))
    h.send(ev.CardPicked(rid))
    return h.send(ev.ChipSeen(rid, uid, token=7))


def test_a_chip_is_committed_to_its_job_before_anything_is_written():
    h = Harness()
    rid = started(h)
    assert picked_with_chip(h, rid, UID_A) == [ev.AnswerPick(rid, True, 7)]
    assert h.store.job(rid).chip_uid == UID_A
    h.send(ev.CardPrinted(rid))
    assert [(e["uid"], e["record_id"], e["outcome"], e["category"], e["document"])
            for e in h.events("blank")] == [(UID_A, rid, "printed", None, "ektp")]
    assert h.events("job")[-1]["chip_uid"] == UID_A
    assert h.store.job(rid).chip_uid is None  # the card is out: nothing of it to doubt


def test_a_chip_the_register_knows_is_never_committed_again():
    h = Harness()
    first = started(h, 1)
    picked_with_chip(h, first, UID_A)
    h.send(ev.CardPrinted(first))
    second = started(h, 2)
    assert picked_with_chip(h, second, UID_A) == [ev.AnswerPick(second, False, 7)]
    assert h.store.job(second).chip_uid is None


def test_a_chip_for_a_job_that_is_not_the_card_in_the_printer_is_refused():
    h = Harness()
    rid = started(h)
    assert h.send(ev.ChipSeen("someone-else", UID_A, 3)) == [
        ev.AnswerPick("someone-else", False, 3)]
    assert h.send(ev.ChipSeen(rid, UID_A, 4)) == [ev.AnswerPick(rid, False, 4)]  # not picked


def test_a_failed_chip_step_is_gagal_encode_and_the_job_goes_on_a_new_blank():
    h = Harness()
    rid = started(h)
    picked_with_chip(h, rid, UID_A)
    actions = h.send(ev.CardFailed(rid, (), "chip step failed: card ejected", ev.BLANK_GONE,
                                   chip="personalizer failed: 6A82", uid=UID_A))
    assert of(actions, ev.StartCard) == [ev.StartCard(rid, h.store.job(rid).payload)]
    [blank] = h.events("blank")
    assert (blank["uid"], blank["outcome"], blank["category"]) == (
        UID_A, "invalid", "gagal-encode")
    assert "personalizer failed: 6A82" in blank["detail"]
    counters = h.core.state_document()["counters"]
    assert counters["invalid"] == {"gagal-encode": 1, "gagal-cetak": 0, "rusak": 0,
                                   "perubahan-elemen-data": 0}
    assert counters["spoiled"] == 1


def test_a_jam_is_gagal_cetak_and_without_an_encoder_the_blank_has_no_uid():
    h = Harness()
    rid = started(h)
    h.send(ev.PickRequested(rid))
    h.send(ev.CardPicked(rid))
    h.send(ev.CardFailed(rid, ("media-jam-error",), "Se: ERROR JAM", ev.BLANK_GONE))
    [blank] = h.events("blank")
    assert (blank["uid"], blank["record_id"], blank["category"]) == (None, rid, "gagal-cetak")


def test_a_reprint_of_a_card_made_takes_it_back_as_rusak_unless_declared_already():
    h = Harness()
    rid = started(h)
    picked_with_chip(h, rid, UID_A)
    h.send(ev.CardPrinted(rid))
    h.command("reprint", json.dumps({"record_id": rid, "reason": "tergores"}).encode())
    declared = h.events("blank")[-1]
    assert (declared["uid"], declared["outcome"], declared["category"]) == (
        UID_A, "invalid", "rusak")
    assert h.store.register_counts()["printed"] == 0


def invalidate(h: Harness, **args):
    h.command("invalidate", json.dumps(args).encode())
    return h.replies()[-1][1]


def test_invalidate_declares_a_card_made_without_touching_the_counters():
    h = Harness()
    rid = started(h)
    h.print_one(rid)
    before = h.core.state_document()["counters"]
    reply = invalidate(h, record_id=rid, category="perubahan-elemen-data", reason="NIK baru")
    assert reply["ok"] is True, reply
    after = h.core.state_document()["counters"]
    assert (after["printed"], after["spoiled"]) == (before["printed"], before["spoiled"])
    assert after["invalid"]["perubahan-elemen-data"] == 1
    assert h.events("blank")[-1]["detail"] == "NIK baru"


def test_invalidate_of_a_blank_never_taken_takes_it_out_of_the_stock():
    h = Harness()
    h.command("refill", b'{"count": 10}')
    reply = invalidate(h, uid=UID_B, category="rusak", reason="retak di baki")
    assert reply["ok"] is True, reply
    assert h.core.state_document()["stock"]["remaining"] == 9
    ledger = h.store.ledger()
    assert (ledger.picks, ledger.spoiled, ledger.balanced) == (1, 1, True)
    assert (h.events("blank")[-1]["uid"], h.events("blank")[-1]["record_id"]) == (UID_B, None)


@pytest.mark.parametrize(("args", "error", "words"), [
    ({"uid": UID_A, "category": "gagal-cetak", "reason": "x"}, "bad-arguments",
     "decided by the station"),
    ({"uid": UID_A, "record_id": "r", "category": "rusak", "reason": "x"}, "bad-arguments",
     "not both"),
    ({"category": "rusak", "reason": "x"}, "bad-arguments", "not both"),
    ({"uid": "04a1b2", "category": "rusak", "reason": "x"}, "bad-arguments", "upper-case hex"),
    ({"uid": UID_A, "category": "rusak", "reason": ""}, "bad-arguments", "reason"),
    ({"record_id": "nobody", "category": "rusak", "reason": "x"}, "unknown-blank", "nobody"),
    ({"uid": UID_A, "category": "rusak", "reason": "x", "nik": "1"}, "bad-arguments", "nik"),
])
def test_invalidate_refuses_bad_arguments_with_a_precise_reason_and_changes_nothing(
        args, error, words):
    h = Harness()
    reply = invalidate(h, **args)
    assert (reply["ok"], reply["error"]) == (False, error)
    assert words in reply["detail"]
    assert h.events("blank") == [] and h.store.register_counts()["rusak"] == 0


def test_a_blank_declared_twice_is_refused_the_second_time():
    h = Harness()
    rid = started(h)
    h.print_one(rid)
    assert invalidate(h, record_id=rid, category="rusak", reason="a")["ok"] is True
    reply = invalidate(h, record_id=rid, category="rusak", reason="b")
    assert (reply["ok"], reply["error"]) == (False, "already-invalid")


def foreign(h: Harness, uid: str, request_id: str = "f-1"):
    h.command("foreign-blank", json.dumps({"request_id": request_id, "uid": uid,
                                            "record_id": "r-9", "detail": "no manifest"}).encode())
    return h.replies()[-1][1]


def test_a_foreign_blank_stands_as_an_alert_until_it_is_declared():
    h = Harness()
    assert foreign(h, UID_A)["ok"] is True
    alerts = [e for e in h.events("alert") if e["reason"] == "foreign-blank-warning"]
    assert len(alerts) == 1 and UID_A in alerts[0]["detail"]
    assert "foreign-blank-warning" in h.core.state_document()["printer_state_reasons"]
    again = h.restart()  # it outlives a restart
    assert "foreign-blank-warning" in again.core.state_document()["printer_state_reasons"]
    assert invalidate(again, uid=UID_A, category="rusak", reason="bukan milik kami")["ok"]
    assert "foreign-blank-warning" not in again.core.state_document()["printer_state_reasons"]
    cleared = [e for e in again.events("alert") if e.get("cleared")]
    assert [e["reason"] for e in cleared] == ["foreign-blank-warning"]


def test_a_foreign_blank_with_a_bad_uid_is_refused():
    h = Harness()
    reply = foreign(h, "XYZ")
    assert (reply["ok"], reply["error"]) == (False, "bad-arguments")
    assert h.core.foreign_blanks() == {}


def test_a_card_found_written_after_a_restart_is_gagal_encode_and_prints_again():
    h = Harness()
    rid = started(h)
    picked_with_chip(h, rid, UID_A)
    h = h.restart()
    assert h.store.job(rid).state == JobState.PROCESSING_STOPPED
    h.send(ev.ChipFound(UID_A, False, f"chip {UID_A} written and the card not printed"))
    job = h.store.job(rid)
    assert job.state in (JobState.PENDING, JobState.PROCESSING)
    blank = h.events("blank")[-1]
    assert (blank["uid"], blank["category"]) == (UID_A, "gagal-encode")


def test_an_untouched_card_found_after_a_restart_books_its_pick_back():
    h = Harness()
    rid = started(h)
    picked_with_chip(h, rid, UID_A)
    h = h.restart()
    h.send(ev.ChipFound(UID_A, True, f"chip {UID_A} untouched"))
    assert h.events("blank") == []
    assert h.store.ledger().picks == 0  # the next card's pick of it is its only one
    assert h.store.job(rid).state in (JobState.PENDING, JobState.PROCESSING)


def test_a_blank_declared_before_the_district_calls_it_foreign_raises_no_warning():
    h = Harness()
    assert invalidate(h, uid=UID_B, category="rusak", reason="retak di baki")["ok"]
    reply = foreign(h, UID_B)
    assert reply["ok"] is True and reply["detail"].startswith("nothing raised")
    assert "foreign-blank-warning" not in h.core.state_document()["printer_state_reasons"]
