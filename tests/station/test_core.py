"""The station core on its own: events in, actions and stored rows out; no threads, no devices,
no file (its store is in memory; tests/station/test_spool_core.py has what only the spool does)."""

from __future__ import annotations

import json
import time

import pytest

from kiosk.sim.samples import make_record
from kiosk.station.core import events as ev
from kiosk.station.core.outbound import OUTBOX_WINDOW
from tests.support.core import BASE, Harness, of


@pytest.fixture
def h():
    return Harness()


def test_record_is_spooled_before_it_is_acked_and_starts_when_printer_ready(h):
    body, actions = h.record(1)
    assert of(actions, ev.Ack) == [ev.Ack(1, 1)]
    assert of(actions, ev.StartCard) == []  # the printer has not said it is ready
    assert h.store.job(body["record_id"]).state == "pending"
    assert h.job_states(body["record_id"]) == ["pending"]
    actions = h.send(ev.PrinterReady())
    start = of(actions, ev.StartCard)
    assert [a.record_id for a in start] == [body["record_id"]]
    assert h.job_states(body["record_id"]) == ["pending", "processing"]


def test_card_lifecycle_books_pick_and_print_then_starts_the_next(h):
    h.send(ev.PrinterReady())
    first, _ = h.record(1)
    second, _ = h.record(2)
    actions = h.print_one(first["record_id"])
    assert [a.record_id for a in of(actions, ev.StartCard)] == [second["record_id"]]
    assert h.job_states(first["record_id"]) == ["pending", "processing", "completed"]
    ledger = h.store.ledger()
    assert (ledger.picks, ledger.printed, ledger.spoiled) == (1, 1, 0)
    assert h.store.job(first["record_id"]).phase is None


def test_same_record_twice_is_acked_and_spooled_once(h):
    body, _ = h.record(1)
    _, actions = h.record(1)
    assert of(actions, ev.Ack) == [ev.Ack(2, 1)]
    assert h.job_states(body["record_id"]) == ["pending"]


@pytest.mark.parametrize(("change", "code"), [
    ({"schema": "ektp.record/9"}, "unknown-schema"),
    ({"nik": "123"}, "invalid-field"),
    ({"photo_jpeg": "!!!"}, "bad-image"),
])
def test_bad_record_is_acked_rejected_and_counted(h, change, code):
    body, actions = h.record(1, **change)
    assert of(actions, ev.Ack)
    rejected = h.events("rejected")
    assert [r["error"] for r in rejected] == [code]
    assert make_record(1)["photo_jpeg"][:40] not in json.dumps(rejected)  # never the photo
    assert h.core.state_document()["counters"]["rejected"] == 1
    assert h.store.job(body["record_id"]) is None


def test_not_json_is_rejected_without_a_record_id(h):
    h.mid += 1
    h.send(ev.MessageArrived(f"{BASE}/jobs", b"\xff{not json", h.mid, 1))
    (rejected,) = h.events("rejected")
    assert rejected["error"] == "not-json" and rejected["record_id"] is None


def test_higher_priority_prints_first_then_arrival_order(h):
    low, _ = h.record(1)
    high, _ = h.record(2, priority=5)
    also_low, _ = h.record(3)
    order = []
    actions = h.send(ev.PrinterReady())
    while (start := of(actions, ev.StartCard)):
        order.append(start[0].record_id)
        actions = h.print_one(start[0].record_id)
    assert order == [high["record_id"], low["record_id"], also_low["record_id"]]


def test_jam_spoils_the_card_stops_the_job_and_reprints_it_when_cleared(h):
    h.send(ev.PrinterReady())
    body, _ = h.record(1)
    rid = body["record_id"]
    h.send(ev.PickRequested(rid))
    h.send(ev.CardPicked(rid))
    h.send(ev.PrinterFault(("media-jam-error",), "Se: CARD JAM"))
    actions = h.send(ev.CardFailed(rid, ("media-jam-error",), "Se: CARD JAM",
                                   blank=ev.BLANK_GONE))
    assert of(actions, ev.StartCard) == []
    assert h.store.job(rid).state == "processing-stopped"
    state = h.core.state_document()
    assert state["printer_state"] == "stopped"
    assert "media-jam-error" in state["printer_state_reasons"]
    assert [a["reason"] for a in h.events("alert")] == ["media-jam-error"]
    actions = h.send(ev.PrinterReady())
    assert [a.record_id for a in of(actions, ev.StartCard)] == [rid]
    h.print_one(rid)
    assert h.job_states(rid) == ["pending", "processing", "processing-stopped", "processing",
                                 "completed"]
    ledger = h.store.ledger()
    assert (ledger.picks, ledger.printed, ledger.spoiled) == (2, 1, 1) and ledger.balanced
    assert [a.get("cleared", False) for a in h.events("alert")] == [False, True]


def fail_at_pick(h, reason: str, detail: str, *, blank: str = ev.BLANK_UNTOUCHED) -> str:
    """A record whose pick (``Ss``) fails with *reason*; its record_id."""
    h.send(ev.PrinterReady())
    body, _ = h.record(1)
    rid = body["record_id"]
    h.send(ev.PickRequested(rid))
    h.send(ev.PrinterFault((reason,), detail))
    h.send(ev.CardFailed(rid, (reason,), detail, blank=blank))
    return rid


def test_empty_feeder_at_pick_stops_without_spoiling(h):
    rid = fail_at_pick(h, "media-empty-error", "Ss: FEEDER EMPTY")
    assert h.store.job(rid).state == "processing-stopped"
    assert h.store.ledger().picks == 0
    assert [a.record_id for a in of(h.send(ev.PrinterReady()), ev.StartCard)] == [rid]


def test_too_many_spoiled_cards_abort_the_job():
    h = Harness(max_attempts=2)
    h.send(ev.PrinterReady())
    body, _ = h.record(1)
    rid = body["record_id"]
    for _ in range(2):
        h.send(ev.PickRequested(rid))
        h.send(ev.CardPicked(rid))
        h.send(ev.CardFailed(rid, ("media-jam-error",), "CARD JAM", blank=ev.BLANK_GONE))
        h.send(ev.PrinterReady())
    assert h.store.job(rid).state == "aborted"
    assert h.store.ledger().spoiled == 2


def test_bad_job_is_aborted_and_the_queue_goes_on(h):
    h.send(ev.PrinterReady())
    bad, _ = h.record(1)
    good, _ = h.record(2)
    actions = h.send(ev.CardFailed(bad["record_id"], ("document-format-error",), "cannot render",
                                   job_error=True))
    assert h.store.job(bad["record_id"]).state == "aborted"
    assert [a.record_id for a in of(actions, ev.StartCard)] == [good["record_id"]]


def test_restart_with_a_card_in_the_printer_makes_it_uncertain_and_never_reprints_it():
    h = Harness()
    h.send(ev.PrinterReady())
    body, _ = h.record(1)
    other, _ = h.record(2)
    rid = body["record_id"]
    h.send(ev.PickRequested(rid))
    h.send(ev.CardPicked(rid))
    h2 = h.restart()  # the process dies here
    job = h2.store.job(rid)
    assert (job.state, job.reasons) == ("processing-stopped", ("uncertain",))
    actions = h2.send(ev.PrinterReady())
    assert [a.record_id for a in of(actions, ev.StartCard)] == [other["record_id"]]
    h2.print_one(other["record_id"])
    assert h2.store.job(rid).state == "processing-stopped"  # still waiting for a person
    h2.command("confirm", json.dumps({"record_id": rid}).encode())
    assert h2.store.job(rid).state == "completed"
    ledger = h2.store.ledger()
    assert (ledger.picks, ledger.printed, ledger.spoiled) == (2, 2, 0) and ledger.balanced


def test_restart_before_any_card_was_picked_requeues_the_job():
    h = Harness()
    h.send(ev.PrinterReady())
    body, _ = h.record(1)
    h2 = h.restart()
    assert h2.store.job(body["record_id"]).state == "pending"
    assert [a.record_id for a in of(h2.send(ev.PrinterReady()), ev.StartCard)] == [
        body["record_id"]]


def test_uncertain_card_reprinted_by_command_counts_a_spoiled_blank():
    h = Harness()
    h.send(ev.PrinterReady())
    body, _ = h.record(1)
    rid = body["record_id"]
    h.send(ev.PickRequested(rid))
    h.send(ev.CardPicked(rid))
    h.send(ev.CardFailed(rid, ("timed-out-error",), "no reply to Se", blank=ev.BLANK_UNKNOWN))
    assert h.store.job(rid).reasons == ("uncertain",)
    h.send(ev.PrinterFault(("timed-out-error",), "no reply to Se"))
    h.command("reprint", json.dumps({"record_id": rid, "reason": "no card came out"}).encode())
    actions = h.send(ev.PrinterReady())
    assert [a.record_id for a in of(actions, ev.StartCard)] == [rid]
    h.print_one(rid)
    ledger = h.store.ledger()
    assert (ledger.picks, ledger.printed, ledger.spoiled) == (2, 1, 1) and ledger.balanced


def test_reprint_of_a_completed_card_rebooks_it_spoiled_and_prints_it_again(h):
    h.send(ev.PrinterReady())
    body, _ = h.record(1)
    rid = body["record_id"]
    h.print_one(rid)
    h.command("reprint", json.dumps({"record_id": rid, "reason": "laminate peeled"}).encode())
    assert h.replies()[-1][1] == {"ok": True}
    assert h.job_states(rid)[-3:] == ["completed", "pending", "processing"]
    h.print_one(rid)
    ledger = h.store.ledger()
    assert (ledger.picks, ledger.printed, ledger.spoiled) == (2, 1, 1) and ledger.balanced


def test_pause_withdraws_the_pick_and_resume_restarts(h):
    h.send(ev.PrinterReady())
    body, _ = h.record(1)
    rid = body["record_id"]
    h.command("pause")
    assert ev.AnswerPick(rid, False) in h.send(ev.PickRequested(rid))
    assert of(h.send(ev.CardFailed(rid, (), "pick withdrawn")), ev.StartCard) == []
    assert h.store.job(rid).state == "pending"
    assert "paused" in h.core.state_document()["printer_state_reasons"]
    actions = h.command("resume")
    assert [a.record_id for a in of(actions, ev.StartCard)] == [rid]


def test_commands_reply_with_correlation_and_are_audited(h):
    h.command("refill", b'{"count": 120}', correlation=b"abc")
    h.command("nope", correlation=b"def")
    h.command("refill", b'{"count": "many"}', correlation=b"ghi")
    replies = h.replies()
    assert replies[0] == (b"abc", {"ok": True, "remaining": 120})
    assert replies[1][0] == b"def" and replies[1][1]["error"] == "unknown-command"
    assert replies[2][1]["ok"] is False and replies[2][1]["error"] == "bad-arguments"
    audits = h.events("command")
    assert [(a["name"], a["ok"]) for a in audits] == [
        ("refill", True), ("nope", False), ("refill", False)]
    assert h.core.state_document()["stock"]["remaining"] == 120


def test_release_hands_back_unstarted_jobs(h):
    h.send(ev.PrinterReady())
    first, _ = h.record(1)
    second, _ = h.record(2)
    h.command("release")
    assert h.store.job(first["record_id"]).state == "processing"  # already in the printer
    job = h.store.job(second["record_id"])
    assert (job.state, job.reasons) == ("canceled", ("released",))
    assert h.replies()[0][1] == {"ok": True, "released": [second["record_id"]]}


def test_drain_refuses_new_records_with_a_reason(h):
    h.command("drain")
    _, actions = h.record(1)
    assert of(actions, ev.Ack)
    assert [r["error"] for r in h.events("rejected")] == ["not-accepting"]
    assert h.core.state_document()["accepting_jobs"] is False


def test_cancel_only_before_printing(h):
    h.send(ev.PrinterReady())
    first, _ = h.record(1)
    second, _ = h.record(2)
    h.command("cancel", json.dumps({"record_id": second["record_id"]}).encode())
    h.send(ev.PickRequested(first["record_id"]))
    h.command("cancel", json.dumps({"record_id": first["record_id"]}).encode())
    assert h.store.job(second["record_id"]).state == "canceled"
    assert [r[1].get("error") for r in h.replies()] == [None, "job-printing"]


def test_state_document_follows_mqtt_md(h):
    state = h.core.state_document()
    assert state["printer_state"] == "stopped"
    assert state["printer_state_reasons"] == ["connecting-to-device"]
    assert state["queue"] == {"pending": 0, "held": 0, "processing": 0}
    assert state["stock"]["remaining"] is None
    h.send(ev.PrinterReady())
    assert h.core.state_document()["printer_state_reasons"] == ["none"]
    assert h.core.state_document()["printer_state"] == "idle"


def test_link_up_publishes_online_and_state_and_outbox_survives_restart():
    h = Harness()
    h.record(1)
    actions = h.send(ev.LinkUp(1, False))
    publishes = of(actions, ev.Publish)
    assert publishes[0] == ev.Publish(f"{BASE}/availability", b"online")
    assert json.loads(publishes[1].payload)["schema"] == "ektp.state/1"
    h2 = h.restart()
    (resend,) = of(h2.start_actions, ev.SendOutbox)
    assert len(resend.items) == 1  # the pending event was never confirmed
    h2.send(ev.Delivered(resend.items[0].id))
    assert h2.store.outbox() == []


def test_purge_is_asked_for_on_the_tick_when_due():
    h = Harness()
    purge = of(h.send(ev.Tick(time.time())), ev.PurgePersonalData)
    keep_s = h.core.config.security.keep_personal_data_h * 3600
    assert len(purge) == 1 and abs(purge[0].before - (time.time() - keep_s)) < 5
    assert of(h.send(ev.Tick(time.time())), ev.PurgePersonalData) == []  # not every second


def test_a_flood_of_rejections_is_counted_and_evented_but_logged_sparingly(h, caplog):
    for index in range(60):
        h.mid += 1
        h.send(ev.MessageArrived(f"{BASE}/jobs", b"not json %d" % index, h.mid, 1))
    assert len(h.events("rejected")) == 60
    assert h.core.state_document()["counters"]["rejected"] == 60
    logged = [r for r in caplog.records if r.getMessage().startswith("rejected")]
    assert len(logged) == 20


def test_a_pick_refused_by_the_printer_leaves_no_doubt_after_a_restart():
    h = Harness()
    h.send(ev.PrinterReady())
    body, _ = h.record(1)
    rid = body["record_id"]
    h.send(ev.PickRequested(rid))  # phase "picking" is committed
    h.send(ev.PrinterFault(("media-empty-error",), "Ss: FEEDER EMPTY"))
    h.send(ev.CardFailed(rid, ("media-empty-error",), "Ss: FEEDER EMPTY"))
    h2 = h.restart()  # the station dies while waiting for blank cards
    job = h2.store.job(rid)
    assert (job.state, job.phase) == ("pending", None)  # not "uncertain": no card was taken


def test_no_answer_to_ss_books_the_pick_it_spoils(h):
    rid = fail_at_pick(h, "connecting-to-device", "port lost during Ss", blank=ev.BLANK_MAYBE_TAKEN)
    ledger = h.store.ledger()
    assert (ledger.picks, ledger.spoiled) == (1, 1) and ledger.balanced
    assert h.store.job(rid).attempts == 1


def test_the_link_gets_the_outbox_in_order_a_window_at_a_time():
    """A long outage leaves more events than the window: the rest wait in the spool and
    follow as the broker confirms, each handed over once and in order, new events after
    the backlog."""
    h = Harness()
    backlog = OUTBOX_WINDOW + 150
    with h.store.transaction():
        for n in range(backlog):
            h.core.out.event("test", n=n)
    h = h.restart()
    (first,) = of(h.start_actions, ev.SendOutbox)
    assert len(first.items) == OUTBOX_WINDOW
    assert of(h.send(ev.Tick(0.0)), ev.SendOutbox) == [], "nothing more before confirmations"
    handed = list(first.items)
    unconfirmed = list(first.items)
    for round_ in range(40):
        with h.store.transaction():  # the station goes on talking meanwhile
            h.core.out.event("test", n=backlog + round_)
            actions = h.core.out.flush()
        for item in unconfirmed[:25]:
            actions += h.send(ev.Delivered(item.id))
        unconfirmed = unconfirmed[25:]
        for action in of(actions, ev.SendOutbox):
            handed += action.items
            unconfirmed += action.items
        assert len(unconfirmed) <= OUTBOX_WINDOW
    numbers = [json.loads(item.payload).get("n") for item in handed]
    numbers = [n for n in numbers if n is not None]
    assert numbers == list(range(backlog + 40)), "in order, each once"


def test_rebirth_sends_the_whole_outbox_again(h):
    h.record(1)
    h.record(2)
    actions = h.command("rebirth")
    (again,) = of(actions, ev.SendOutbox)
    assert again.again
    assert [item.id for item in again.items] == [item.id for item in h.store.outbox()]


# -- once per request (mqtt.md, Commands) ---------------------------------------------------


def test_a_repeated_request_gets_the_same_reply_and_changes_nothing(h):
    h.command("refill", b'{"count": 100}', correlation=b"req-1")
    h.command("refill", b'{"count": 100}', correlation=b"req-1")  # the broker redelivers
    assert h.store.ledger().refills == 100
    (first, again) = [reply for _, reply in h.replies()]
    assert first == again == {"ok": True, "remaining": 100}
    audits = h.events("command")
    assert [a["repeat"] for a in audits] == [False, True]
    h.command("refill", b'{"count": 100}', correlation=b"req-2")  # a new request
    assert h.store.ledger().refills == 200


def test_a_request_id_in_the_payload_identifies_a_request_without_correlation(h):
    h.mid += 1
    body = b'{"count": 5, "request_id": "r-77"}'
    for _ in range(2):
        h.mid += 1
        h.send(ev.MessageArrived(f"{BASE}/cmd/refill", body, h.mid, 1))
    assert h.store.ledger().refills == 5


def test_a_changing_command_without_an_identifier_is_refused(h):
    h.mid += 1
    h.send(ev.MessageArrived(f"{BASE}/cmd/refill", b'{"count": 5}', h.mid, 1,
                             response_topic="reply/here"))
    assert h.replies()[-1][1]["error"] == "no-request-id"
    assert h.store.ledger().refills == 0
    h.mid += 1  # status changes nothing: it needs no identifier
    h.send(ev.MessageArrived(f"{BASE}/cmd/status", b"{}", h.mid, 1, response_topic="reply/here"))
    assert h.replies()[-1][1]["ok"] is True


# -- operator decisions outlive a restart -------------------------------------------------------


def test_drain_and_pause_are_kept_across_a_restart():
    h = Harness()
    h.command("drain")
    h.command("pause")
    h2 = h.restart()
    assert h2.core.state.paused and not h2.core.state.accepting
    h2.send(ev.PrinterReady())
    body, _ = h2.record(1)
    (rejected,) = h2.events("rejected")
    assert rejected["error"] == "not-accepting" and rejected["record_id"] == body["record_id"]
    h2.command("accept")
    h2.command("resume")
    h3 = h2.restart()
    assert not h3.core.state.paused and h3.core.state.accepting


# -- no job blocks the queue; the purge takes nothing a live job needs ------------------------


def test_a_job_whose_record_is_gone_is_set_aside_and_the_rest_prints(h):
    body1, _ = h.record(1)
    body2, _ = h.record(2)
    first, second = body1["record_id"], body2["record_id"]
    # as an older purge left it
    h.store.drop_record(first)
    actions = h.send(ev.PrinterReady())
    assert [a.record_id for a in of(actions, ev.StartCard)] == [second]
    job = h.store.job(first)
    assert (job.state, job.reasons) == ("pending-held", ("job-record-missing",))
    alerts = {a["reason"] for a in h.events("alert") if not a.get("cleared")}
    assert "job-held-warning" in alerts
    h.print_one(second)
    _, actions = h.record(1)  # the district sends the record again
    assert [a.record_id for a in of(actions, ev.StartCard)] == [first]
    assert any(a["reason"] == "job-held-warning" and a.get("cleared")
               for a in h.events("alert"))


def test_purges_that_leave_copies_in_the_wal_become_an_alert_and_clear(h):
    for _ in range(2):
        h.send(ev.PurgeDone(1, clean=False))
    assert not [a for a in h.events("alert") if a["reason"] == "purge-incomplete-warning"]
    h.send(ev.PurgeDone(0, clean=False))
    raised = [a for a in h.events("alert") if a["reason"] == "purge-incomplete-warning"]
    assert len(raised) == 1 and not raised[0].get("cleared")
    h.send(ev.PurgeDone(0, clean=True))
    raised = [a for a in h.events("alert") if a["reason"] == "purge-incomplete-warning"]
    assert len(raised) == 2 and raised[1]["cleared"] is True




def test_the_core_opens_no_file_and_no_database(monkeypatch):
    """Its store is in memory: a card's whole life runs with files and SQLite refused."""
    import builtins
    import sqlite3

    def refuse(*args, **kwargs):
        raise AssertionError(f"the core opened {args[:1]}")

    h = Harness()
    h.send(ev.PrinterReady())
    h.record(1)  # the sample record is made (its images read) before the refusal
    monkeypatch.setattr(sqlite3, "connect", refuse)
    monkeypatch.setattr(builtins, "open", refuse)
    rid = make_record(1)["record_id"]
    h.print_one(rid)
    h.command("reprint", json.dumps({"record_id": rid, "reason": "smudged"}).encode())
    h.print_one(rid)
    assert h.store.job(rid).state == "completed"
