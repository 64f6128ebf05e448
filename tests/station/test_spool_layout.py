"""The spool's layout: a job's state change rewrites a small row, never its record (the
commit between two cards stays short), and spools written before the ``records`` table
are carried over with every record kept."""

from __future__ import annotations

import sqlite3

from kiosk.station.spool import Spool

# The jobs table as the spool wrote it until the records moved to their own table.
OLD_SCHEMA = """
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id TEXT NOT NULL UNIQUE,
    priority INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    reasons TEXT NOT NULL DEFAULT '[]',
    phase TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    nik_masked TEXT NOT NULL DEFAULT '',
    payload BLOB,
    detail TEXT NOT NULL DEFAULT '',
    pick_counts TEXT,
    received_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    ended_at REAL
);
CREATE INDEX jobs_queue ON jobs(state, priority DESC, id);
CREATE INDEX jobs_ended ON jobs(ended_at) WHERE payload IS NOT NULL;
"""


def a_record(marker: bytes) -> bytes:
    """A record the size of a real one (photo and signature: overflow pages), *marker* last."""
    return b'{"photo":"' + b"A" * 20_000 + b'","end":"' + marker + b'"}'


def test_a_job_state_change_does_not_rewrite_its_record(tmp_path):
    spool = Spool(tmp_path / "spool.db")
    marker = b"MARKER-AT-THE-END-OF-THE-RECORD"
    with spool.transaction():
        spool.add_job("rec-1", 0, "3210********0001", a_record(marker))
    spool._checkpoint()  # the WAL is empty: what follows is all it holds
    with spool.transaction():
        spool.update_job("rec-1", state="processing", phase="picking",
                         pick_counts={"taken": 1, "printed": 0})
    with spool.transaction():
        spool.update_job("rec-1", state="completed", phase=None)
    wal = (tmp_path / "spool.db-wal").read_bytes()
    assert len(wal) > 0, "the updates were not written at all"
    assert marker not in wal, "a state change rewrote the whole record"
    assert spool.job("rec-1").payload == a_record(marker)


def test_a_spool_with_records_inside_the_jobs_keeps_them_all(tmp_path):
    path = tmp_path / "spool.db"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)
        db.executemany(
            "INSERT INTO jobs (record_id, priority, state, nik_masked, payload, pick_counts,"
            " received_at, updated_at, ended_at) VALUES (?, ?, ?, '', ?, ?, 1, 1, ?)",
            [("waiting", 0, "pending", a_record(b"w"), None, None),
             ("urgent", 5, "pending", a_record(b"u"), None, None),
             ("in-printer", 0, "processing", a_record(b"p"), '{"taken": 3, "printed": 2}',
              None),
             ("purged", 0, "completed", None, None, 1.0)])
    db.close()
    spool = Spool(path)
    assert spool.job("waiting").payload == a_record(b"w")
    assert spool.job("in-printer").pick_counts == {"taken": 3, "printed": 2}
    assert spool.job("purged").payload is None
    assert spool.next_pending().record_id == "urgent"
    columns = {row[1] for row in spool._db.execute("PRAGMA table_info(jobs)")}
    assert "payload" not in columns
    spool.close()
    assert Spool(path).job("urgent").payload == a_record(b"u")  # opened again: nothing moves


def test_a_purge_drops_the_records_of_ended_jobs_only(tmp_path):
    clock = iter(range(100, 10_000)).__next__
    spool = Spool(tmp_path / "spool.db", clock=lambda: float(clock()))
    with spool.transaction():
        for rid in ("old", "live"):
            spool.add_job(rid, 0, "", a_record(rid.encode()))
        spool.update_job("old", state="completed")
    outcome = spool.purge_personal_data(older_than=10_000)
    assert outcome.removed == 1
    assert spool.job("old").payload is None
    assert spool.job("live").payload == a_record(b"live")
