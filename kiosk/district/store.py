"""The router's durable memory: one SQLite file (WAL, ``synchronous=FULL``).

One row per record the router ever took from the inbox (record_id is the
idempotency key), with the station it was given to, the stations that released
it, every station it was ever sent to (``sent_to``: only those may speak of it), and its
payload until the record ends. Statuses:

- ``waiting``: no station yet (none could take it, or it was released/refused);
- ``assigned``: a station is chosen and committed, the forward is not confirmed;
- ``forwarded``: the broker confirmed the forward (PUBACK);
- ``queued`` / ``printing``: the station reported it pending / processing;
- ``completed``, ``aborted``, ``canceled``, ``rejected``: ended; payload dropped.

Use it from one thread.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kiosk.district.inputs import Event

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id TEXT NOT NULL UNIQUE,
    priority INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    station TEXT,
    released_by TEXT NOT NULL DEFAULT '[]',
    sent_to TEXT NOT NULL DEFAULT '[]',
    document TEXT NOT NULL DEFAULT 'ektp',
    attempts INTEGER NOT NULL DEFAULT 0,
    payload BLOB,
    detail TEXT NOT NULL DEFAULT '',
    arrived_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS records_status ON records(status, station);
CREATE INDEX IF NOT EXISTS records_waiting ON records(status, priority DESC, id);
"""

FINAL = frozenset({"completed", "aborted", "canceled", "rejected"})
UNCONFIRMED = ("assigned", "forwarded")  # at the station, not yet in its published queue
UNSTARTED = ("assigned", "forwarded", "queued")


@dataclass(frozen=True)
class Routed:
    record_id: str
    status: str
    station: str | None
    released_by: tuple[str, ...]
    attempts: int
    detail: str
    sent_to: tuple[str, ...] = ()
    document: str = "ektp"

    @property
    def final(self) -> bool:
        return self.status in FINAL

    def was_sent_to(self, station: str) -> bool:
        """Whether *station* was ever given this record (a store of an earlier release
        kept no ``sent_to``: the station it is at and those that released it count)."""
        return station in self.sent_to or station == self.station or \
            station in self.released_by


class RouteStore:
    """Records the router took, where they went, and how they ended.

        store = RouteStore("/var/lib/kiosk/router.db")
        with store.transaction():
            store.add("rec-1", 0, payload)
            store.assign("rec-1", "st-2")
    """

    def __init__(self, path: str | Path) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(records)")}
        if "sent_to" not in columns:  # a store of an earlier release
            self._db.execute("ALTER TABLE records ADD COLUMN sent_to TEXT NOT NULL"
                             " DEFAULT '[]'")
        if "document" not in columns:  # before the KIA: every record was an E-KTP
            self._db.execute("ALTER TABLE records ADD COLUMN document TEXT NOT NULL"
                             " DEFAULT 'ektp'")

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

    def add(self, record_id: str, priority: int, payload: bytes,
            document: str = "ektp") -> bool:
        """A new record, waiting; False (nothing changed) if record_id was seen before."""
        now = time.time()
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO records (record_id, priority, status, payload, document,"
            " arrived_at, updated_at) VALUES (?, ?, 'waiting', ?, ?, ?, ?)",
            (record_id, priority, payload, document, now, now))
        return cursor.rowcount == 1

    def get(self, record_id: str) -> Routed | None:
        row = self._db.execute(_SELECT + " WHERE record_id = ?", (record_id,)).fetchone()
        return _routed(row) if row else None

    def payload(self, record_id: str) -> bytes:
        row = self._db.execute("SELECT payload FROM records WHERE record_id = ?",
                               (record_id,)).fetchone()
        if row is None or row[0] is None:
            raise KeyError(f"no payload kept for {record_id}")
        return bytes(row[0])

    def waiting(self) -> list[Routed]:
        """Records without a station: highest priority first, then arrival order."""
        return list(self.iter_waiting())

    def iter_waiting(self, page: int = 100) -> Iterator[Routed]:
        """`waiting` read *page* rows at a time, so that a reader stopping early does not
        read a long backlog; no cursor stays open between pages (the caller may write)."""
        after = (1 << 62, 0)  # (priority, id) of the last row read
        while True:
            rows = self._db.execute(
                "SELECT id, priority, record_id, status, station, released_by, attempts,"
                " detail, sent_to, document FROM records WHERE status = 'waiting'"
                " AND (priority < ? OR (priority = ? AND id > ?))"
                " ORDER BY priority DESC, id LIMIT ?", (after[0], after[0], after[1], page)
            ).fetchall()
            for row in rows:
                yield _routed(row[2:])
            if len(rows) < page:
                return
            after = (rows[-1][1], rows[-1][0])

    def assigned(self) -> list[tuple[str, str]]:
        """(record_id, station) of forwards not yet confirmed, in arrival order."""
        return self._db.execute("SELECT record_id, station FROM records"
                                " WHERE status = 'assigned' ORDER BY id").fetchall()

    def unconfirmed(self) -> dict[str, int]:
        """Per station: records sent there that its state may not count yet."""
        return dict(self._db.execute(
            "SELECT station, COUNT(*) FROM records WHERE status IN (?, ?) GROUP BY station",
            UNCONFIRMED))

    def holding(self) -> dict[str, int]:
        """Per station: records of ours there that have not ended (sent, queued, printing)."""
        return dict(self._db.execute(
            "SELECT station, COUNT(*) FROM records WHERE status IN (?, ?, ?, ?)"
            " GROUP BY station", (*UNSTARTED, "printing")))

    def unstarted_at(self, station: str) -> int:
        marks = ",".join("?" * len(UNSTARTED))
        row = self._db.execute(
            f"SELECT COUNT(*) FROM records WHERE station = ? AND status IN ({marks})",
            (station, *UNSTARTED)).fetchone()
        return int(row[0])

    def at_stations(self) -> dict[str, int]:
        """Per station: records given to it that have not ended (sent, queued, printing)."""
        return dict(self._db.execute(
            "SELECT station, COUNT(*) FROM records WHERE station IS NOT NULL"
            " AND status NOT IN ('waiting', 'completed', 'aborted', 'canceled', 'rejected')"
            " GROUP BY station ORDER BY station"))

    def counts(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT status, COUNT(*) FROM records GROUP BY status"))

    def waiting_by_document(self) -> dict[str, int]:
        """Records without a station, per document ("ektp", "kia")."""
        return dict(self._db.execute("SELECT document, COUNT(*) FROM records"
                                     " WHERE status = 'waiting' GROUP BY document"))

    def assign(self, record_id: str, station: str) -> None:
        self._db.execute(
            "UPDATE records SET status = 'assigned', station = ?, attempts = attempts + 1,"
            " sent_to = CASE WHEN EXISTS (SELECT 1 FROM json_each(sent_to) WHERE value = ?1)"
            " THEN sent_to ELSE json_insert(sent_to, '$[#]', ?1) END,"
            " updated_at = ?2 WHERE record_id = ?3", (station, time.time(), record_id))

    def update(self, record_id: str, *, status: str, detail: str = "") -> None:
        self._db.execute("UPDATE records SET status = ?, detail = ?, updated_at = ?"
                         " WHERE record_id = ?", (status, detail, time.time(), record_id))

    def finish(self, record_id: str, status: str, detail: str) -> None:
        """The record ended: keep how, drop its personal data."""
        assert status in FINAL, status
        self._db.execute("UPDATE records SET status = ?, detail = ?, payload = NULL,"
                         " updated_at = ? WHERE record_id = ?",
                         (status, detail, time.time(), record_id))

    def station_event(self, station: str, event: Event) -> str | None:
        """Apply what a station said about one of our records (an mqtt.md event, checked by
        `kiosk.district.inputs.event`).

        A station speaks only of its own records: of one it was never sent, whatever it
        says changes nothing and the answer is ``"lied"``. ``completed`` is taken from any
        station the record was sent to (``"completed"``); everything else only from the
        station it is at now (an event from one it has since left changes nothing).
        Returns ``"refused"`` when the station did not accept it (``not-accepting``) and
        ``"released"`` when it handed it back: either way it waits again for a station.
        Events about records we do not hold (sent to a station directly) change nothing.
        """
        rid = event.record_id
        record = self.get(rid) if rid is not None else None
        if record is None or event.type not in ("job", "rejected"):
            return None
        if not record.was_sent_to(station):
            return "lied"
        if record.final:
            return None
        state = event.job_state
        if event.type == "job" and state == "completed":
            self.finish(rid, "completed", f"printed at {station}")
            return "completed"
        if record.station != station:
            return None
        if event.type == "rejected" and event.error == "not-accepting":
            self.requeue(rid, f"{station} is not accepting jobs")
            return "refused"
        if event.type == "rejected" and event.error == "wrong-document":
            # Its state said otherwise, or changed since: never to that station again.
            self.requeue(rid, f"{station} does not print {record.document}",
                         released_by=station)
            return "misrouted"
        if event.type == "rejected":
            self.finish(rid, "rejected", f"{station}: {event.error}")
        elif event.released:
            self.requeue(rid, f"released by {station}", released_by=station)
            return "released"
        elif state in ("canceled", "aborted"):
            self.finish(rid, state, f"{station}: {event.detail}")
        elif state in ("pending", "pending-held", "processing", "processing-stopped"):
            self.update(rid, status="queued" if state.startswith("pending") else "printing")
        return None

    def requeue(self, record_id: str, detail: str, *, released_by: str | None = None) -> None:
        """Back to waiting; a station that released it never gets it again."""
        record = self.get(record_id)
        if record is None:
            return
        released = list(record.released_by)
        if released_by and released_by not in released:
            released.append(released_by)
        self._db.execute(
            "UPDATE records SET status = 'waiting', station = NULL, released_by = ?,"
            " detail = ?, updated_at = ? WHERE record_id = ?",
            (json.dumps(released), detail, time.time(), record_id))


_SELECT = ("SELECT record_id, status, station, released_by, attempts, detail, sent_to,"
           " document FROM records")


def _routed(row: tuple) -> Routed:
    record_id, status, station, released_by, attempts, detail, sent_to, document = row
    return Routed(record_id, status, station, tuple(json.loads(released_by)), attempts, detail,
                  tuple(json.loads(sent_to)), document)
