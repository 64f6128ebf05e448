"""The durable spool: jobs and their IPP states, the blank-card ledger, the outbox.

One SQLite file in WAL mode with ``synchronous=FULL``: a transaction that has
returned is on disk, so the station acknowledges a record to the broker only
after the commit that holds it. Everything the station must not lose across a
power cut lives here; nothing else is kept on disk.

Tables:
- ``jobs``: one row per record_id ever seen (the idempotency key). ``phase``
  tells how far the card got: NULL (no blank touched), ``picking`` (``Ss``
  sent or about to be), ``picked`` (``Ss`` answered OK). A job found in
  ``picking`` or ``picked`` at start-up may have come out of the printer.
- ``records``: the record of each job until its personal data is purged. Kept
  apart from ``jobs`` so that a job's state change rewrites a small row: were
  the record (its photo and signature, tens of KB of overflow pages) in the
  job's row, every change would rewrite and fsync all of it, and the commit
  between two cards would take several times longer.
- ``ledger``: refills, picks, printed and spoiled cards, one row per booking.
- ``outbox``: events and command replies not yet confirmed by the broker.
- ``meta``: small counters (rejected records, calibration).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kiosk.contract.custody import INVALID_CATEGORIES
from kiosk.station.core.store import (
    ACTIVE_STATES,
    FINAL_STATES,
    BlankRow,
    Job,
    Ledger,
    OutboxItem,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id TEXT NOT NULL UNIQUE,
    priority INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    reasons TEXT NOT NULL DEFAULT '[]',
    phase TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    nik_masked TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    pick_counts TEXT,
    chip_uid TEXT,
    received_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    ended_at REAL
);
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs(state, priority DESC, id);
CREATE TABLE IF NOT EXISTS records (
    record_id TEXT PRIMARY KEY,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('refill', 'pick', 'printed', 'spoiled')),
    count INTEGER NOT NULL,
    record_id TEXT,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS blanks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    uid TEXT,
    record_id TEXT,
    document TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('printed', 'invalid')),
    category TEXT CHECK (category IS NULL OR category IN
        ('gagal-encode', 'gagal-cetak', 'rusak', 'perubahan-elemen-data')),
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS blanks_uid ON blanks(uid);
CREATE INDEX IF NOT EXISTS blanks_record ON blanks(record_id);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    response BLOB,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS requests (
    key TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    reply BLOB NOT NULL,
    at REAL NOT NULL
);
"""

CHECKPOINT_WAIT_MS = 200


@dataclass(frozen=True)
class PurgeOutcome:
    """What a purge did: records removed now, and whether no copy is left in the files."""

    removed: int
    clean: bool  # False: a reader held the WAL; old pages stay there until a checkpoint



class Spool:
    """The station's SQLite spool, the core's `Store`; use from one thread (open one per
    thread)."""

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock  # when rows are stamped (tests inject one)
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute("PRAGMA secure_delete=ON")  # freed pages are zeroed: purged data goes
        self._depth = 0
        # Queue counts are read on every step and counting the queue costs O(its length):
        # a burst of records would count 16,851 rows per commit. Kept here, they are
        # counted again only after a job changes state, which is rare beside arrivals.
        self._counts: dict[str, int] | None = None
        # Likewise the ledger's totals: read on every step, summing a ledger that grows by
        # two rows a card would slow the station down year by year.
        self._totals: dict[str, int] | None = None
        # And the register's counts (the state's counters.invalid), for the same reason.
        self._register: dict[str, int] | None = None
        self._db.executescript(SCHEMA)
        self._migrate()

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One durable commit for everything inside; nests (the outer one commits)."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            self._counts = self._totals = self._register = None
            raise
        else:
            self._db.execute("COMMIT")
        finally:
            self._depth = 0

    # -- jobs -------------------------------------------------------------

    def add_job(self, record_id: str, priority: int, nik_masked: str, payload: bytes) -> bool:
        """Spool a new job as pending; False if the record_id was seen before."""
        now = self.clock()
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO jobs (record_id, priority, state, nik_masked,"
            " received_at, updated_at) VALUES (?, ?, 'pending', ?, ?, ?)",
            (record_id, priority, nik_masked, now, now),
        )
        if cursor.rowcount != 1:
            return False
        self._db.execute("INSERT INTO records (record_id, payload) VALUES (?, ?)",
                         (record_id, payload))
        if self._counts is not None:
            self._counts["pending"] += 1
        return True

    def _migrate(self) -> None:
        """Spools written by an earlier version get today's layout, their data kept."""
        have = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        if "pick_counts" not in have:
            self._db.execute("ALTER TABLE jobs ADD COLUMN pick_counts TEXT")
        if "chip_uid" not in have:
            self._db.execute("ALTER TABLE jobs ADD COLUMN chip_uid TEXT")
        if "payload" in have:
            self._move_records_out_of_jobs()

    def _move_records_out_of_jobs(self) -> None:
        """Records kept in the job's own row (before the ``records`` table) move there,
        in one transaction; the emptied column and its index go (SQLite >= 3.35)."""
        with self.transaction():
            self._db.execute("INSERT OR IGNORE INTO records (record_id, payload)"
                             " SELECT record_id, payload FROM jobs WHERE payload IS NOT NULL")
            self._db.execute("UPDATE jobs SET payload = NULL")  # zeroed: secure_delete
            self._db.execute("DROP INDEX IF EXISTS jobs_ended")
            self._db.execute("ALTER TABLE jobs DROP COLUMN payload")

    def job(self, record_id: str) -> Job | None:
        row = self._db.execute(_JOB_SELECT + " WHERE record_id = ?", (record_id,)).fetchone()
        return _job(row) if row else None

    def next_pending(self) -> Job | None:
        """The job to print next: highest priority, then arrival order."""
        row = self._db.execute(
            _JOB_SELECT + " WHERE state = 'pending' ORDER BY priority DESC, id LIMIT 1",
        ).fetchone()
        return _job(row) if row else None

    def jobs(self, *states: str) -> list[Job]:
        marks = ",".join("?" * len(states))
        rows = self._db.execute(
            _JOB_SELECT + f" WHERE state IN ({marks}) ORDER BY priority DESC, id", states
        ).fetchall()
        return [_job(row) for row in rows]

    def update_job(self, record_id: str, **changes: object) -> None:
        """Set columns of a job (state, reasons, phase, attempts, detail, pick_counts)."""
        if changes.get("pick_counts") is not None:
            changes["pick_counts"] = json.dumps(changes["pick_counts"])
        if "reasons" in changes:
            changes["reasons"] = json.dumps(list(changes["reasons"]))  # type: ignore[arg-type]
        if changes.get("state") in FINAL_STATES:
            changes["ended_at"] = self.clock()
        elif "state" in changes:
            changes["ended_at"] = None  # live again (a reprint): its record is needed
        changes["updated_at"] = self.clock()
        if "state" in changes:
            self._counts = None
        columns = ", ".join(f"{name} = ?" for name in changes)
        self._db.execute(
            f"UPDATE jobs SET {columns} WHERE record_id = ?", (*changes.values(), record_id)
        )

    def queue_counts(self) -> dict[str, int]:
        if self._counts is None:
            self._counts = self._count_queue()
        return dict(self._counts)

    def _count_queue(self) -> dict[str, int]:
        rows = self._db.execute(
            "SELECT state, COUNT(*) FROM jobs WHERE state IN (?, ?, ?, ?) GROUP BY state",
            ACTIVE_STATES,
        ).fetchall()
        counts = dict(rows)
        return {
            "pending": counts.get("pending", 0),
            "held": counts.get("pending-held", 0),
            "processing": counts.get("processing", 0) + counts.get("processing-stopped", 0),
        }

    def purge_personal_data(self, older_than: float) -> PurgeOutcome:
        """Drop the record (photo, signature, NIK, fields) of jobs that ended before
        *older_than* (epoch seconds), so that the bytes are gone from the files.

        Only jobs in a final state lose their record: a job that is live again (a
        reprint) keeps it. Its own transaction, then a truncating checkpoint: with
        ``secure_delete`` the freed pages are zeroed, and the WAL that still held the
        old pages is emptied. A reader holding the spool (a backup, ``kiosk status``)
        keeps the checkpoint from finishing: then the outcome is not clean, the debt is
        remembered, and the next call tries the checkpoint again. The record_id stays,
        so a replay of a printed record is still refused.
        """
        marks = ",".join("?" * len(FINAL_STATES))
        with self.transaction():
            # Only the records still kept are looked at: the jobs table grows for years.
            cursor = self._db.execute(
                "DELETE FROM records WHERE record_id IN (SELECT r.record_id FROM records r"
                " JOIN jobs j ON j.record_id = r.record_id WHERE j.ended_at < ?"
                f" AND j.state IN ({marks}))", (older_than, *FINAL_STATES),
            )
            if cursor.rowcount:
                self.set_meta("purge_checkpoint_owed", "1")
        if self.get_meta("purge_checkpoint_owed") != "1":
            return PurgeOutcome(cursor.rowcount, True)
        clean = self._checkpoint()
        if clean:  # what this delete puts in the emptied WAL is the meta page alone
            self._db.execute("DELETE FROM meta WHERE key = 'purge_checkpoint_owed'")
        return PurgeOutcome(cursor.rowcount, clean)

    def _checkpoint(self) -> bool:
        """Copy the WAL into the file and empty it; False if a reader kept it from ending.

        A short wait only: the station's loop must not stall behind a long reader.
        """
        self._db.execute(f"PRAGMA busy_timeout={CHECKPOINT_WAIT_MS}")
        try:
            busy, _, _ = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            self._db.execute("PRAGMA busy_timeout=5000")
        return busy == 0

    def restore_payload(self, record_id: str, payload: bytes) -> bool:
        """Give a held job whose record was missing its record again; False if not such."""
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO records (record_id, payload) SELECT record_id, ? FROM jobs"
            " WHERE record_id = ? AND state = 'pending-held'", (payload, record_id))
        if cursor.rowcount != 1:
            return False
        self._db.execute("UPDATE jobs SET updated_at = ? WHERE record_id = ?",
                         (self.clock(), record_id))
        return True

    # -- requests (district commands carried out once) --------------------------------

    def request_reply(self, key: str) -> bytes | None:
        """The reply already given to request *key*, if it was carried out."""
        row = self._db.execute("SELECT reply FROM requests WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def remember_request(self, key: str, name: str, reply: bytes) -> None:
        self._db.execute("INSERT OR REPLACE INTO requests (key, name, reply, at)"
                         " VALUES (?, ?, ?, ?)", (key, name, reply, self.clock()))

    def forget_requests(self, older_than: float) -> int:
        return self._db.execute("DELETE FROM requests WHERE at < ?", (older_than,)).rowcount

    # -- ledger -----------------------------------------------------------

    def book(
        self, kind: str, count: int = 1, record_id: str | None = None, detail: str = ""
    ) -> None:
        self._db.execute(
            "INSERT INTO ledger (at, kind, count, record_id, detail) VALUES (?, ?, ?, ?, ?)",
            (self.clock(), kind, count, record_id, detail),
        )
        if self._totals is not None:
            self._totals[kind] += count
            self._totals["refill-rows"] += kind == "refill"

    def ledger(self) -> Ledger:
        if self._totals is None:
            self._totals = self._sum_ledger()
        totals = self._totals
        return Ledger(refills=totals["refill"], picks=totals["pick"],
                      printed=totals["printed"], spoiled=totals["spoiled"],
                      booked=totals["refill-rows"] > 0)

    def _sum_ledger(self) -> dict[str, int]:
        totals = dict.fromkeys(("refill", "pick", "printed", "spoiled", "refill-rows"), 0)
        rows = self._db.execute("SELECT kind, SUM(count), COUNT(*) FROM ledger GROUP BY kind")
        for kind, total, count in rows:
            totals[kind] = total or 0
            if kind == "refill":
                totals["refill-rows"] = count
        return totals

    # -- the register of blanks ---------------------------------------------

    def register_blank(self, uid: str | None, record_id: str | None, document: str,
                       outcome: str, category: str | None, detail: str) -> BlankRow:
        at = self.clock()
        cursor = self._db.execute(
            "INSERT INTO blanks (at, uid, record_id, document, outcome, category, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)", (at, uid, record_id, document, outcome, category,
                                              detail))
        self._count_blank(outcome, category, 1)
        return BlankRow(int(cursor.lastrowid or 0), at, uid, record_id, document, outcome,
                        category, detail)

    def declare_invalid(self, row_id: int, category: str, detail: str) -> BlankRow:
        before = self._db.execute("SELECT outcome, category FROM blanks WHERE id = ?",
                                  (row_id,)).fetchone()
        if before is not None:
            self._count_blank(before[0], before[1], -1)
            self._count_blank("invalid", category, 1)
        self._db.execute("UPDATE blanks SET outcome = 'invalid', category = ?, detail = ?,"
                         " at = ? WHERE id = ?", (category, detail, self.clock(), row_id))
        return BlankRow(*self._db.execute(_BLANK_SELECT + " WHERE id = ?", (row_id,)).fetchone())

    def blanks(self, *, uid: str | None = None, record_id: str | None = None,
               limit: int = -1) -> list[BlankRow]:
        where, args = "", ()
        if uid is not None:
            where, args = " WHERE uid = ?", (uid,)
        elif record_id is not None:
            where, args = " WHERE record_id = ?", (record_id,)
        rows = self._db.execute(_BLANK_SELECT + where + " ORDER BY id DESC LIMIT ?",
                                (*args, limit))
        return [BlankRow(*row) for row in rows]

    def register_counts(self) -> dict[str, int]:
        if self._register is None:
            self._register = self._count_register()
        return dict(self._register)

    def _count_blank(self, outcome: str, category: str | None, by: int) -> None:
        if self._register is not None:
            self._register[category if outcome == "invalid" and category else "printed"] += by

    def _count_register(self) -> dict[str, int]:
        counts = dict.fromkeys(("printed", *INVALID_CATEGORIES), 0)
        rows = self._db.execute("SELECT outcome, category, COUNT(*) FROM blanks"
                                " GROUP BY outcome, category")
        for outcome, category, count in rows:
            counts[category if outcome == "invalid" else "printed"] += count
        return counts

    # -- outbox -----------------------------------------------------------

    def enqueue(self, topic: str, payload: bytes, response: bytes | None = None) -> OutboxItem:
        cursor = self._db.execute(
            "INSERT INTO outbox (topic, payload, response, created_at) VALUES (?, ?, ?, ?)",
            (topic, payload, response, self.clock()),
        )
        return OutboxItem(int(cursor.lastrowid or 0), topic, payload, response)

    def outbox(self, after: int = 0, limit: int = -1) -> list[OutboxItem]:
        """Unconfirmed items in order: those after id *after*, at most *limit* of them."""
        rows = self._db.execute("SELECT id, topic, payload, response FROM outbox WHERE id > ?"
                                " ORDER BY id LIMIT ?", (after, limit))
        return [OutboxItem(*row) for row in rows]

    def confirm(self, item_id: int) -> None:
        self._db.execute("DELETE FROM outbox WHERE id = ?", (item_id,))

    # -- meta -------------------------------------------------------------

    def get_meta(self, key: str, default: str = "") -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def bump(self, key: str, by: int = 1) -> int:
        value = int(self.get_meta(key, "0")) + by
        self.set_meta(key, str(value))
        return value


_JOB_SELECT = (
    "SELECT record_id, priority, state, reasons, phase, attempts, nik_masked, payload, detail,"
    " pick_counts, chip_uid FROM jobs LEFT JOIN records USING (record_id)"
)
_BLANK_SELECT = "SELECT id, at, uid, record_id, document, outcome, category, detail FROM blanks"


def _job(row: tuple) -> Job:
    (record_id, priority, state, reasons, phase, attempts, nik, payload, detail, counts,
     chip_uid) = row
    return Job(
        record_id, priority, state, tuple(json.loads(reasons)), phase, attempts, nik, payload,
        detail, json.loads(counts) if counts else None, chip_uid,
    )
