"""The register: one SQLite file (WAL, ``synchronous=FULL``) of every blank of the district.

Tables:

- ``blanks``: one row per blank event a station sent (station, boot_id, seq: kept once),
  with the district's two flags: ``foreign`` (its UID is in no manifest the district has
  loaded, while it has loaded any) and ``duplicate`` (why its UID was seen in another use:
  two blanks with one UID, a printed blank printed again, an invalid blank used again).
  The same change of the same blank sent again by a restarted station under a new boot_id
  (same station, UID, record_id, outcome and category) is kept once too.
- ``manifest``: the UIDs of the shipments received (``custody receive``), one row each.
- ``notices``: each ``foreign-blank`` command owed to a station, by request id, until the
  station answers it (sent again on every new connection of the keeper).

Nothing personal is kept: record_id, never a name or a NIK. Use one object per thread; other
processes (``custody receive`` while ``keep`` runs) may write the same file at once.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kiosk.district.custody.blank import Blank

SCHEMA = """
CREATE TABLE IF NOT EXISTS blanks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    station TEXT NOT NULL,
    boot_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at REAL NOT NULL,
    uid TEXT,
    record_id TEXT,
    document TEXT NOT NULL,
    outcome TEXT NOT NULL,
    category TEXT,
    detail TEXT NOT NULL DEFAULT '',
    foreign_uid INTEGER NOT NULL DEFAULT 0,
    duplicate TEXT,
    received_at REAL NOT NULL,
    UNIQUE (station, boot_id, seq)
);
CREATE INDEX IF NOT EXISTS blanks_at ON blanks(at);
CREATE INDEX IF NOT EXISTS blanks_uid ON blanks(uid, at);
CREATE TABLE IF NOT EXISTS manifest (
    uid TEXT PRIMARY KEY,
    shipment TEXT NOT NULL,
    line INTEGER NOT NULL,
    received_on TEXT NOT NULL,
    loaded_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS notices (
    request_id TEXT PRIMARY KEY,
    station TEXT NOT NULL,
    uid TEXT NOT NULL,
    record_id TEXT,
    created_at REAL NOT NULL,
    answered_at REAL,
    reply TEXT
);
CREATE INDEX IF NOT EXISTS notices_uid ON notices(uid, station);
"""


@dataclass(frozen=True)
class Kept:
    """What `Register.add` did with an event: ``new`` (with its flags) or ``again``."""

    status: str
    foreign: bool = False
    duplicate: str | None = None


@dataclass(frozen=True)
class Line:
    """One row of ``blanks`` as the reports read it."""

    id: int
    station: str
    at: float
    uid: str | None
    record_id: str | None
    document: str
    outcome: str
    category: str | None
    detail: str
    foreign: bool
    duplicate: str | None


_LINE = ("SELECT id, station, at, uid, record_id, document, outcome, category, detail,"
         " foreign_uid, duplicate FROM blanks")


class Register:
    """The district's register of blanks in the SQLite file *path*.

        register = Register("/var/lib/kiosk/custody.db")
        with register.transaction():
            kept = register.add("st-1", blank)
    """

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        if str(path) != ":memory:":
            if not create and not Path(path).is_file():
                raise FileNotFoundError(f"no register at {path} (run 'custody keep' first,"
                                        " or pass --db)")
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout=10000")  # receive and keep may write at once
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside is one durable commit (rolled back on an exception)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- the keeper's side -------------------------------------------------------------

    def add(self, station: str, blank: Blank) -> Kept:
        """Keep one blank event once; flag it foreign or duplicate (module docstring)."""
        if self._db.execute("SELECT 1 FROM blanks WHERE station = ? AND boot_id = ? AND seq = ?",
                            (station, blank.boot_id, blank.seq)).fetchone():
            return Kept("again")
        foreign, duplicate = False, None
        if blank.uid is not None:
            earlier = self._db.execute(
                "SELECT station, record_id, outcome, category FROM blanks WHERE uid = ?"
                " ORDER BY at, id", (blank.uid,)).fetchall()
            if (station, blank.record_id, blank.outcome, blank.category) in earlier:
                return Kept("again")  # the same change, sent again under a new boot_id
            duplicate = _duplicate(blank, earlier)
            foreign = self.has_manifest() and not self.in_manifest(blank.uid)
        self._db.execute(
            "INSERT INTO blanks (station, boot_id, seq, at, uid, record_id, document, outcome,"
            " category, detail, foreign_uid, duplicate, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (station, blank.boot_id, blank.seq, blank.at, blank.uid, blank.record_id,
             blank.document, blank.outcome, blank.category, blank.detail, int(foreign),
             duplicate, time.time()))
        return Kept("new", foreign, duplicate)

    def owe_notice(self, station: str, uid: str, record_id: str | None) -> str:
        """A ``foreign-blank`` command owed to *station*; returns its request id."""
        request_id = f"custody-foreign-{uuid.uuid4()}"
        self._db.execute("INSERT INTO notices (request_id, station, uid, record_id, created_at)"
                         " VALUES (?, ?, ?, ?, ?)",
                         (request_id, station, uid, record_id, time.time()))
        return request_id

    def noticed(self, station: str, uid: str) -> bool:
        """Was *station* told (or is it owed) that *uid* is foreign?"""
        return self._db.execute("SELECT 1 FROM notices WHERE station = ? AND uid = ?",
                                (station, uid)).fetchone() is not None

    def unanswered(self) -> list[tuple[str, str, str, str | None]]:
        """(request_id, station, uid, record_id) of every notice no station answered yet."""
        return self._db.execute("SELECT request_id, station, uid, record_id FROM notices"
                                " WHERE answered_at IS NULL ORDER BY created_at").fetchall()

    def answered(self, request_id: str, reply: str) -> bool:
        cursor = self._db.execute(
            "UPDATE notices SET answered_at = ?, reply = ? WHERE request_id = ?"
            " AND answered_at IS NULL", (time.time(), reply[:500], request_id))
        return cursor.rowcount == 1

    # -- manifests ---------------------------------------------------------------------

    def has_manifest(self) -> bool:
        return self._db.execute("SELECT 1 FROM manifest LIMIT 1").fetchone() is not None

    def in_manifest(self, uid: str) -> bool:
        return self._db.execute("SELECT 1 FROM manifest WHERE uid = ?",
                                (uid,)).fetchone() is not None

    def shipment_of(self, uids: Iterable[str]) -> dict[str, str]:
        """For each UID already received: the shipment (manifest file) that brought it."""
        found: dict[str, str] = {}
        for uid in uids:
            row = self._db.execute("SELECT shipment FROM manifest WHERE uid = ?",
                                   (uid,)).fetchone()
            if row:
                found[uid] = row[0]
        return found

    def receive(self, shipment: str, uids: Iterable[tuple[int, str]], received_on: str) -> int:
        """Add a shipment's (line, UID) pairs, all or nothing; returns how many."""
        now = time.time()
        rows = [(uid, shipment, line, received_on, now) for line, uid in uids]
        with self.transaction():
            self._db.executemany("INSERT INTO manifest (uid, shipment, line, received_on,"
                                 " loaded_at) VALUES (?, ?, ?, ?, ?)", rows)
        return len(rows)

    # -- the reports' side -------------------------------------------------------------

    def lines(self, start: float, end: float, *, station: str | None = None,
              outcome: str | None = None) -> list[Line]:
        """Events with start <= at < end, in time order (optionally one station/outcome)."""
        sql, args = _LINE + " WHERE at >= ? AND at < ?", [start, end]
        if station is not None:
            sql, args = sql + " AND station = ?", [*args, station]
        if outcome is not None:
            sql, args = sql + " AND outcome = ?", [*args, outcome]
        return [Line(*row[:9], bool(row[9]), row[10])
                for row in self._db.execute(sql + " ORDER BY at, id", args)]

    def flagged(self, start: float, end: float, limit: int = 200) -> list[Line]:
        """Foreign and duplicate blanks of the period, newest first."""
        rows = self._db.execute(_LINE + " WHERE at >= ? AND at < ? AND (foreign_uid = 1 OR"
                                " duplicate IS NOT NULL) ORDER BY at DESC, id DESC LIMIT ?",
                                (start, end, limit))
        return [Line(*row[:9], bool(row[9]), row[10]) for row in rows]

    def activity(self, start: float, end: float) -> list[tuple[str, str, str | None, int]]:
        """(station, outcome, category, count) of the events in the period."""
        return self._db.execute(
            "SELECT station, outcome, category, COUNT(*) FROM blanks WHERE at >= ? AND at < ?"
            " GROUP BY station, outcome, category", (start, end)).fetchall()

    def received(self, first_day: str | None, last_day: str) -> int:
        """UIDs of shipments received between the two days (ISO dates, inclusive)."""
        return self._db.execute(
            "SELECT COUNT(*) FROM manifest WHERE received_on >= ? AND received_on <= ?",
            (first_day or "", last_day)).fetchone()[0]

    def states_at(self, end: float, last_day: str) -> list[tuple[str, str | None, int]]:
        """(outcome, category, blanks) of the received blanks by their last event before
        *end*; each blank once (a printed card later declared invalid counts invalid)."""
        return self._db.execute(
            "SELECT outcome, category, COUNT(*) FROM ("
            " SELECT b.outcome, b.category, MAX(b.at) FROM blanks b JOIN manifest m"
            " ON m.uid = b.uid WHERE b.at < ? AND m.received_on <= ? GROUP BY b.uid)"
            " GROUP BY outcome, category", (end, last_day)).fetchall()

    def unlisted(self, start: float, end: float) -> tuple[int, int]:
        """(blanks with a UID in no manifest, blanks without a UID) used in the period."""
        foreign = self._db.execute(
            "SELECT COUNT(DISTINCT uid) FROM blanks WHERE at >= ? AND at < ? AND uid IS NOT"
            " NULL AND uid NOT IN (SELECT uid FROM manifest)", (start, end)).fetchone()[0]
        blind = self._db.execute(
            "SELECT COUNT(*) FROM blanks WHERE at >= ? AND at < ? AND uid IS NULL",
            (start, end)).fetchone()[0]
        return foreign, blind

    def count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM blanks").fetchone()[0]


def _duplicate(blank: Blank, earlier: list[tuple]) -> str | None:
    """Why a UID seen before may not have this use too, or None when it may."""
    printed = [row for row in earlier if row[2] == "printed"]
    invalid = [row for row in earlier if row[2] == "invalid"]
    if blank.outcome == "printed" and printed:
        station, record_id = printed[-1][0], printed[-1][1]
        return f"printed again: already printed for {record_id or '-'} at {station}"
    if invalid:
        station, category = invalid[-1][0], invalid[-1][3]
        return f"already invalid ({category}) at {station}"
    if blank.outcome == "invalid" and blank.category in ("gagal-encode", "gagal-cetak") \
            and printed:
        return f"a station failure on a blank already printed at {printed[-1][0]}"
    return None
