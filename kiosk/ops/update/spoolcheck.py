"""What the updater reads of the spool, read-only: its schema version and a card in the printer.

The spool (kiosk/station/spool.py) keeps its schema version in SQLite's ``user_version``
(0 until its first migration). A bundle's manifest says which versions its release opens
(``spool.opens``) and which it leaves after its migration (``spool.writes``); the update
is refused unless the new release opens the spool as it is and the running release could
still open it after the migration (the rollback must find a spool it can read).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

# A job's phase while a blank may be between the feeder and the output tray.
CARD_PHASES = ("picking", "picked")


class SpoolRefused(Exception):
    """The update would leave a spool one of the two releases cannot open."""


def _connect(spool: Path) -> sqlite3.Connection | None:
    if not spool.exists():
        return None
    return sqlite3.connect(f"file:{spool}?mode=ro", uri=True, timeout=5)


def schema_version(spool: Path) -> int:
    """The spool's ``user_version`` (0 for a spool not made yet)."""
    db = _connect(spool)
    if db is None:
        return 0
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


def card_in_printer(spool: Path) -> bool:
    """True while a job's card may be in the printer (its phase is picking or picked)."""
    db = _connect(spool)
    if db is None:
        return False
    try:
        marks = ",".join("?" * len(CARD_PHASES))
        row = db.execute(f"SELECT count(*) FROM jobs WHERE phase IN ({marks})",
                         CARD_PHASES).fetchone()
    except sqlite3.OperationalError:  # no jobs table yet: a spool never used
        return False
    finally:
        db.close()
    return bool(row[0])


def check_migration(on_disk: int, new_opens: tuple[int, int], new_writes: int,
                    old_opens: tuple[int, int] | None) -> None:
    """Raise SpoolRefused unless both releases can open the spool after the update.

    *old_opens* is None when the running release came without a manifest (installed
    by hand): then only an update that leaves the schema as it is goes ahead.
    """
    low, high = new_opens
    if not low <= on_disk <= high:
        raise SpoolRefused(f"the spool is at schema {on_disk}; the new release opens"
                           f" {low}..{high}")
    if old_opens is None:
        if new_writes != on_disk:
            raise SpoolRefused(f"the new release migrates the spool to schema {new_writes},"
                               " and the running release's schema range is unknown")
        return
    if not old_opens[0] <= new_writes <= old_opens[1]:
        raise SpoolRefused(f"the new release migrates the spool to schema {new_writes},"
                           f" which the running release ({old_opens[0]}..{old_opens[1]})"
                           " could not open after a rollback")
