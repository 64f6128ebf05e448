"""The IPP driver's durable memory of the jobs it may have left at a print server.

card-printer.md, Pacing: a job's job-id is kept durably before its document is
sent, so that after a crash the station knows every job it may have left at the
server and cancels, follows or counts each. This store holds, per record_id, the
job-id and, once the driver has seen it, the job's end (so a card whose job
ended and was purged before the station booked it is still decided by the
server's word). It holds no personal data: a record_id, a number, a word.

One small JSON file, replaced atomically and fsynced (file and directory) before
`put` returns; the newest `KEEP` entries are kept, older ones have long been
booked. `JobStore(None)` keeps them in memory only (tests, `kiosk doctor`).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

log = logging.getLogger(__name__)

KEEP = 16


class JobStore:
    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self.whole = True  # False: the file was unreadable, an absent entry proves nothing
        self._jobs: dict[str, dict] = self._load()

    def _load(self) -> dict[str, dict]:
        if self.path is None or not self.path.exists():
            return {}
        try:
            jobs = json.loads(self.path.read_text())
        except (OSError, ValueError) as error:
            log.error("%s unreadable (%s): jobs left at the print server before this start"
                      " are decided by a person", self.path, error)
            self.whole = False
            return {}
        return {str(k): v for k, v in jobs.items() if isinstance(v, dict)}

    def put(self, record_id: str, job: int) -> None:
        """Keep *job* for *record_id*, durably, before its document is sent."""
        with self._lock:
            self._jobs.pop(record_id, None)
            self._jobs[record_id] = {"job": job}
            while len(self._jobs) > KEEP:
                self._jobs.pop(next(iter(self._jobs)))
            self._write()

    def ended(self, record_id: str, state: str, impressions: int) -> None:
        """The server's word on the job's end, kept before the job is purged there."""
        with self._lock:
            entry = self._jobs.get(record_id)
            if entry is None:
                return
            entry.update(end=state, impressions=impressions)
            self._write()

    def never_sent(self, record_id: str) -> bool:
        """No document of *record_id* can have gone: the store is whole and has no job of
        it (a job-id is kept before its document is sent; the newest KEEP stay)."""
        with self._lock:
            return self.whole and self.path is not None and record_id not in self._jobs

    def get(self, record_id: str) -> dict | None:
        with self._lock:
            entry = self._jobs.get(record_id)
            return dict(entry) if entry else None

    def items(self) -> list[tuple[str, dict]]:
        with self._lock:
            return [(rid, dict(entry)) for rid, entry in self._jobs.items()]

    def _write(self) -> None:
        if self.path is None:
            return
        temporary = self.path.with_name(self.path.name + ".tmp")
        with open(temporary, "w") as handle:
            json.dump(self._jobs, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
