"""Record files for ``kiosk district send``: JSON lines and CSV, read as record dicts.

JSON lines: one record object a line (blank lines skipped). CSV: one record a
row; columns ``record_id``, ``nik``, ``photo_jpeg``, ``signature_png``, the
field names of mqtt.md (``nama`` or ``fields.nama``), optionally ``priority``
and ``schema``. An image cell holds base64, or ``@path``: a file relative to
the CSV, read and encoded here. Problems raise `RecordFileError` naming the
file and line; records are not validated here (kiosk.contract.record does that).

    for line, record in read_records(Path("batch.csv")):
        ...
"""

from __future__ import annotations

import base64
import csv
import json
from collections.abc import Iterator
from pathlib import Path

from kiosk.contract.record import FIELD_NAMES, SCHEMA

RECORD_COLUMNS = ("schema", "record_id", "nik", "photo_jpeg", "signature_png", "priority")


class RecordFileError(ValueError):
    """A record file that cannot be read as records; the message names file and line."""


def read_records(path: Path, fmt: str | None = None) -> Iterator[tuple[int, dict]]:
    """(line number, record dict) for each record; *fmt* "jsonl" or "csv" (default: by suffix)."""
    fmt = fmt or ("csv" if path.suffix.lower() == ".csv" else "jsonl")
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            yield from (_csv_rows(path, handle) if fmt == "csv" else _json_lines(path, handle))
    except OSError as error:
        raise RecordFileError(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise RecordFileError(f"{path}: not UTF-8 ({error.reason})") from None


def _json_lines(path: Path, handle) -> Iterator[tuple[int, dict]]:
    for number, line in enumerate(handle, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            raise RecordFileError(f"{path}:{number}: not JSON ({error})") from None
        if not isinstance(record, dict):
            raise RecordFileError(f"{path}:{number}: not a JSON object")
        yield number, record


def _csv_rows(path: Path, handle) -> Iterator[tuple[int, dict]]:
    reader = csv.DictReader(handle)
    columns = {name: name.removeprefix("fields.") for name in reader.fieldnames or ()}
    known = set(RECORD_COLUMNS) | set(FIELD_NAMES)
    if unknown := sorted(c for c, name in columns.items() if name not in known):
        raise RecordFileError(f"{path}: unknown column {unknown[0]!r}")
    if missing := [c for c in ("record_id", "nik", "photo_jpeg", "signature_png", *FIELD_NAMES)
                   if c not in columns.values()]:
        raise RecordFileError(f"{path}: missing column {missing[0]!r}")
    for row in reader:
        cells = {columns[column]: (value or "") for column, value in row.items() if column}
        yield reader.line_num, _csv_record(path, reader.line_num, cells)


def _csv_record(path: Path, line: int, cells: dict[str, str]) -> dict:
    record = {"schema": cells.get("schema") or SCHEMA, "record_id": cells["record_id"],
              "nik": cells["nik"], "fields": {name: cells[name] for name in FIELD_NAMES}}
    for column in ("photo_jpeg", "signature_png"):
        record[column] = _image(path, line, cells[column])
    if cells.get("priority"):
        try:
            record["priority"] = int(cells["priority"])
        except ValueError:
            raise RecordFileError(f"{path}:{line}: priority is not an integer") from None
    return record


def _image(path: Path, line: int, cell: str) -> str:
    if not cell.startswith("@"):
        return cell
    try:
        return base64.b64encode((path.parent / cell[1:]).read_bytes()).decode("ascii")
    except OSError as error:
        raise RecordFileError(f"{path}:{line}: cannot read {cell[1:]}: {error.strerror}") from None
