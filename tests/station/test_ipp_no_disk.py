"""No personal data on the station's disk (card-printer.md): the card's document is
streamed to the print server from memory. While a card prints, no file under the
station's writable directory (beside its spool, which keeps the record by design until
it is purged) or the temporary directory holds the record's name or photo, and the
station's process opened no file for writing but the spool's and the driver's job-ids."""

from __future__ import annotations

import base64
import io
import os
import secrets
import sys
import tempfile
import threading
import time
from pathlib import Path

from PIL import Image

from kiosk.contract.signing import sign_record
from kiosk.sim.samples import make_record
from tests.conftest import STATION, StationThread, wait_until

_watch = threading.Event()
_written: list[str] = []
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | getattr(os, "O_TMPFILE", 0)


def _audit(event: str, args: tuple) -> None:
    """Every file this process opens for writing while `_watch` is set (a Python audit
    hook: open(), os.open(), tempfile and the like all raise the "open" event)."""
    if event != "open" or not _watch.is_set():
        return
    path, mode, flags = args
    writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
        isinstance(flags, int) and flags & WRITE_FLAGS)
    if writing and path is not None:
        _written.append(os.fsdecode(path) if not isinstance(path, int) else f"fd {path}")


sys.addaudithook(_audit)  # cannot be removed: it does nothing until a test sets _watch


def unique_photo(sample_b64: str) -> str:
    """The sample photo with noise of its own: bytes no other file on this machine has."""
    picture = Image.open(io.BytesIO(base64.b64decode(sample_b64))).convert("RGB")
    noise = Image.frombytes("RGB", picture.size, secrets.token_bytes(3 * picture.width
                                                                      * picture.height))
    out = io.BytesIO()
    Image.blend(picture, noise, 0.2).save(out, "JPEG", quality=90)
    return base64.b64encode(out.getvalue()).decode()


def files_holding(roots: list[Path], needles: list[bytes], skip: list[Path],
                  since: float) -> list[str]:
    """Files changed since *since* (none older can hold this record) holding a needle."""
    found = []
    for root in roots:
        for directory, _, names in os.walk(root):
            here = Path(directory)
            if any(here == s or s in here.parents for s in skip):
                continue
            for name in names:
                path = here / name
                if str(path).startswith(tuple(str(s) for s in skip)):
                    continue
                try:
                    status = path.lstat()
                    if (path.is_symlink() or status.st_size > 64 << 20
                            or status.st_mtime < since):
                        continue
                    data = path.read_bytes()
                except OSError:
                    continue
                found += [f"{path} holds {needle[:12]!r}…" for needle in needles if needle in data]
    return found


def test_nothing_of_a_record_is_on_the_station_disk_while_its_card_prints(
        station_settings, district, district_key, cups_server, tmp_path):
    home = tmp_path / "station"
    home.mkdir()
    spool = home / "spool.db"
    station_settings["station"]["spool"] = str(spool)
    station_settings["printer"] = {"driver": "ipp", "uri": cups_server.uri, "poll_s": 0.05,
                                   "job_timeout_s": 20.0}
    cups_server.printer._control(card_seconds=1.5)
    body = make_record(1, seed=secrets.randbelow(1 << 30))
    unique = "".join(secrets.choice("ABCDEFGHIJKLMNOPRSTUWYZ") for _ in range(12))
    body["fields"]["nama"] = f"SITI {unique}"  # found nowhere else on this machine
    body["photo_jpeg"] = unique_photo(body["photo_jpeg"])
    photo = base64.b64decode(body["photo_jpeg"])
    middle = len(photo) // 2
    needles = [unique.encode(), photo[middle:middle + 256],
               body["photo_jpeg"][2 * middle:2 * middle + 256].encode()]
    record = sign_record(body, district_key[0])
    allowed = {str(spool), *(f"{spool}{end}" for end in ("-wal", "-shm", "-journal")),
               f"{spool}.ipp-jobs.json", f"{spool}.ipp-jobs.json.tmp"}
    since = time.time() - 1  # a file holding the record was written after it was made
    with StationThread(station_settings, district):
        _written.clear()
        _watch.set()
        try:
            district.publish_record(STATION, record)
            assert wait_until(lambda: cups_server.printer.counters["taken"] == 1, 20)
            assert cups_server.printer.printed == 0  # the card is printing now
            found = files_holding([home, Path(tempfile.gettempdir())], needles,
                                  skip=[cups_server.root, tmp_path / "printer",
                                        tmp_path / "tray", spool],  # the spool: by design
                                  since=since)
            assert district.wait_for(
                lambda: district.final_state(record["record_id"]) == "completed", 20)
        finally:
            _watch.clear()
    assert found == []
    assert [p for p in _written if p not in allowed and not p.startswith(("fd ", "/dev/"))] == []
    # What the test watched was real: the record reached the printer.
    [document] = cups_server.printer.documents()
    assert document.name.endswith(record["record_id"])
