"""The core on the SQLite spool, for what only the spool does: personal data purged from
its files, a rolled-back transaction, kept totals against a recount, requests forgotten
on its clock, and a reader holding its WAL."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from kiosk.sim.samples import make_record
from kiosk.station.core import events as ev
from kiosk.station.spool import Spool
from tests.support.core import Harness, of


@pytest.fixture
def h(tmp_path):
    return Harness(Spool(tmp_path / "spool.db"))


def test_replay_of_a_printed_record_is_refused_even_after_its_data_was_purged(h):
    h.send(ev.PrinterReady())
    body, _ = h.record(1)
    h.print_one(body["record_id"])
    assert h.store.purge_personal_data(time.time() + 1).removed == 1
    assert h.store.job(body["record_id"]).payload is None
    _, actions = h.record(1)  # the same record again
    assert of(actions, ev.Ack) and not of(actions, ev.StartCard)
    assert h.job_states(body["record_id"]) == ["pending", "processing", "completed"]


def test_kept_queue_counts_and_ledger_totals_agree_with_a_fresh_count(h, tmp_path):
    """The spool keeps both in memory (reading them must not cost O(history)); after
    cards, a rolled-back transaction and a command they must match a recount."""
    h.send(ev.PrinterReady())
    for index in (1, 2, 3):
        h.record(index)
    h.print_one(make_record(1)["record_id"])
    h.command("refill", json.dumps({"count": 5}).encode())
    with pytest.raises(RuntimeError), h.store.transaction():
        h.store.book("pick", 1, "x")
        h.store.add_job("rolled-back", 0, "", b"{}")
        raise RuntimeError("crash inside a transaction")
    kept = (h.store.queue_counts(), h.store.ledger())
    fresh = Spool(tmp_path / "spool.db")
    try:
        assert kept == (fresh.queue_counts(), fresh.ledger())
    finally:
        fresh.close()
    assert kept[0]["pending"] == 1 and kept[1].printed == 1 and kept[1].refills == 5


def test_requests_are_forgotten_only_after_the_session_expiry(tmp_path):
    clock = [time.time()]
    spool = Spool(tmp_path / "spool.db", clock=lambda: clock[0])
    spool.remember_request("c:refill::01", "refill", b"{}")
    expiry = 604800
    assert spool.forget_requests(clock[0] - expiry - 86400) == 0
    clock[0] += expiry + 86400 + 1
    assert spool.forget_requests(clock[0] - expiry - 86400) == 1


def test_a_reprint_waiting_behind_a_pause_keeps_its_record_through_the_purge(h):
    h.send(ev.PrinterReady())
    body, _ = h.record(1)
    rid = body["record_id"]
    h.print_one(rid)
    h.command("pause")
    h.command("reprint", json.dumps({"record_id": rid, "reason": "smudged"}).encode())
    assert h.store.purge_personal_data(time.time() + 3600).removed == 0
    assert h.store.job(rid).payload is not None
    h.store.update_job(rid, ended_at=time.time() - 7200)  # as an older station left it
    assert h.store.purge_personal_data(time.time() + 3600).removed == 0  # live: kept
    actions = h.command("resume")
    assert [a.record_id for a in of(actions, ev.StartCard)] == [rid]


def test_a_job_that_is_live_again_has_no_end_time(h):
    h.send(ev.PrinterReady())
    body, _ = h.record(1)
    rid = body["record_id"]
    h.print_one(rid)
    h.command("reprint", json.dumps({"record_id": rid, "reason": "smudged"}).encode())
    (ended_at,) = h.store._db.execute("SELECT ended_at FROM jobs WHERE record_id = ?",
                                      (rid,)).fetchone()
    assert ended_at is None


def test_a_purge_with_a_reader_holding_the_spool_is_not_clean_until_it_lets_go(h, tmp_path):
    h.send(ev.PrinterReady())
    body, _ = h.record(1)
    h.print_one(body["record_id"])
    name = body["fields"]["nama"].encode()
    reader = sqlite3.connect(tmp_path / "spool.db")
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM jobs").fetchone()  # holds a snapshot of the WAL
    outcome = h.store.purge_personal_data(time.time() + 1)
    assert (outcome.removed, outcome.clean) == (1, False)
    assert name in (tmp_path / "spool.db-wal").read_bytes()  # the old page is still there
    assert not h.store.purge_personal_data(time.time() + 1).clean  # retried, still held
    reader.rollback()
    reader.close()
    outcome = h.store.purge_personal_data(time.time() + 1)
    assert (outcome.removed, outcome.clean) == (0, True)
    for suffix in ("", "-wal"):
        path = tmp_path / f"spool.db{suffix}"
        assert not path.exists() or name not in path.read_bytes()
