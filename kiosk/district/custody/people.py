"""Names and NIKs for the berita acara, from the district's own export of its records.

``--records FILE``: JSON lines (one record a line, as ``kiosk district send`` reads them:
kiosk/district/recordfile.py) or CSV with at least the columns ``record_id``, ``nik`` and
``nama`` (or ``fields.nama``); other columns are ignored. Read only while a report is
written, kept in memory only, never written to the register. A file that cannot be read, a
line that is not a record, a record_id twice: `PeopleError` naming the file and line.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import NamedTuple

from kiosk.district.recordfile import RecordFileError, read_records


class PeopleError(ValueError):
    """A records file that cannot be used; the message names the file and line."""


class Person(NamedTuple):
    nama: str
    nik: str


def read_people(path: Path) -> dict[str, Person]:
    """record_id → (nama, nik) of every record in *path*."""
    if path.suffix.lower() == ".csv":
        rows = _csv_rows(path)
    else:
        try:
            rows = [(line, record.get("record_id"), record.get("nik"),
                     (record.get("fields") or {}).get("nama")
                     if isinstance(record.get("fields"), dict) else None)
                    for line, record in read_records(path, "jsonl")]
        except RecordFileError as error:
            raise PeopleError(str(error)) from None
    people: dict[str, Person] = {}
    for line, record_id, nik, nama in rows:
        if not isinstance(record_id, str) or not record_id:
            raise PeopleError(f"{path}:{line}: no record_id")
        if not isinstance(nik, str) or not isinstance(nama, str):
            raise PeopleError(f"{path}:{line}: record {record_id} has no nik or nama")
        if record_id in people:
            raise PeopleError(f"{path}:{line}: record_id {record_id} twice in the file")
        people[record_id] = Person(nama, nik)
    return people


def _csv_rows(path: Path) -> list[tuple[int, object, object, object]]:
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            columns = {name.removeprefix("fields."): name for name in reader.fieldnames or ()}
            if missing := [c for c in ("record_id", "nik", "nama") if c not in columns]:
                raise PeopleError(f"{path}: missing column {missing[0]!r}")
            return [(reader.line_num, row[columns["record_id"]], row[columns["nik"]],
                     row[columns["nama"]]) for row in reader]
    except OSError as error:
        raise PeopleError(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise PeopleError(f"{path}: not UTF-8 ({error.reason})") from None
    except csv.Error as error:
        raise PeopleError(f"{path}: not CSV ({error})") from None
