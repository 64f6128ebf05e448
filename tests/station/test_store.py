"""The core's `Store`, in memory (the core's unit tests) and on SQLite (the station):
the same calls give the same answers, so the core's tests on the one hold for the other."""

from __future__ import annotations

import pytest

from kiosk.station.spool import Spool
from tests.support.memstore import MemoryStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture(params=["memory", "sqlite"])
def store(request, clock):
    made = MemoryStore(clock) if request.param == "memory" else Spool(":memory:", clock)
    yield made
    if isinstance(made, Spool):
        made.close()


def test_jobs_come_in_priority_then_arrival_order(store):
    assert store.add_job("a", 0, "", b"A")
    assert store.add_job("b", 5, "", b"B")
    assert store.add_job("c", 0, "", b"C")
    assert not store.add_job("a", 9, "", b"again")  # the record_id is the key
    assert store.next_pending().record_id == "b"
    assert [job.record_id for job in store.jobs("pending")] == ["b", "a", "c"]
    store.update_job("b", state="processing", phase="picking", pick_counts={"taken": 3},
                     reasons=("x",), attempts=2)
    job = store.job("b")
    assert (job.state, job.phase, job.pick_counts, job.reasons, job.attempts, job.payload) == (
        "processing", "picking", {"taken": 3}, ("x",), 2, b"B")
    assert store.next_pending().record_id == "a"
    assert store.queue_counts() == {"pending": 2, "held": 0, "processing": 1}
    store.update_job("b", phase=None, pick_counts=None)
    assert (store.job("b").phase, store.job("b").pick_counts) == (None, None)
    assert store.job("nobody") is None


def test_a_held_job_gets_its_record_again_once(store):
    store.add_job("a", 0, "", b"A")
    assert not store.restore_payload("a", b"A2")  # not held
    store.update_job("a", state="pending-held")
    assert store.queue_counts()["held"] == 1
    assert not store.restore_payload("a", b"A2")  # its record is still there
    store.add_job("b", 0, "", b"B")
    store.update_job("b", state="pending-held")
    if isinstance(store, Spool):
        store._db.execute("DELETE FROM records WHERE record_id = 'b'")
    else:
        store.drop_record("b")
    assert store.job("b").payload is None
    assert store.restore_payload("b", b"B2")
    assert store.job("b").payload == b"B2"


def test_the_ledger_totals(store):
    assert store.ledger().remaining is None  # no refill booked yet
    store.book("refill", 10, None, "refill")
    store.book("pick", 1, "a")
    store.book("printed", 1, "a")
    store.book("pick", 1, "b")
    store.book("spoiled", 1, "b")
    store.book("printed", -1, "a")
    store.book("spoiled", 1, "a")
    totals = store.ledger()
    assert (totals.refills, totals.picks, totals.printed, totals.spoiled) == (10, 2, 0, 2)
    assert totals.remaining == 8 and totals.balanced


def test_the_outbox_in_order_after_a_cursor_and_a_limit(store):
    items = [store.enqueue("t", b"%d" % n, b"c" if n == 2 else None) for n in range(5)]
    assert [item.payload for item in store.outbox()] == [b"0", b"1", b"2", b"3", b"4"]
    assert store.outbox(after=items[1].id, limit=2) == items[2:4]
    assert items[2].response == b"c"
    store.confirm(items[0].id)
    assert store.outbox(limit=1) == [items[1]]


def test_requests_and_meta(store, clock):
    store.remember_request("k", "refill", b"{}")
    assert store.request_reply("k") == b"{}" and store.request_reply("other") is None
    assert store.forget_requests(clock() - 1) == 0
    clock.now += 10
    assert store.forget_requests(clock()) == 1
    assert store.request_reply("k") is None
    assert store.get_meta("x", "d") == "d"
    store.set_meta("x", "1")
    assert store.bump("x", 2) == 3 and store.get_meta("x") == "3"


def test_the_register_counts_follow_every_row_and_its_declarations(store):
    printed = store.register_blank("04A1B2C3", "r-1", "ektp", "printed", None, "")
    store.register_blank(None, "r-2", "ektp", "invalid", "gagal-cetak", "jam")
    assert store.register_counts() == {"printed": 1, "gagal-encode": 0, "gagal-cetak": 1,
                                       "rusak": 0, "perubahan-elemen-data": 0}
    declared = store.declare_invalid(printed.id, "perubahan-elemen-data", "NIK baru")
    assert (declared.uid, declared.outcome, declared.category) == (
        "04A1B2C3", "invalid", "perubahan-elemen-data")
    assert store.register_counts()["printed"] == 0
    assert store.register_counts()["perubahan-elemen-data"] == 1
    assert [row.record_id for row in store.blanks()] == ["r-2", "r-1"]  # newest first
    assert [row.id for row in store.blanks(uid="04A1B2C3")] == [printed.id]
    assert [row.uid for row in store.blanks(record_id="r-2")] == [None]


def test_a_register_row_in_a_rolled_back_step_is_not_counted(tmp_path):
    from kiosk.station.spool import Spool

    spool = Spool(tmp_path / "spool.db")
    assert spool.register_counts()["printed"] == 0  # counted, then kept up to date
    with pytest.raises(RuntimeError), spool.transaction():
        spool.register_blank("04A1B2C3", "r-1", "ektp", "printed", None, "")
        raise RuntimeError("the step failed")
    assert spool.register_counts()["printed"] == 0
    assert spool.blanks() == []
    spool.close()
