"""Shipment manifests for ``kiosk district custody receive``: the UIDs of blanks received.

A manifest is a text file with one UID a line, or a CSV whose header has a ``uid`` column
(other columns are ignored; a UID may be written in lower case or with spaces or colons
between its bytes, and is kept as upper-case hex). Blank lines and ``#`` comments are
skipped. Any line that is not a UID of 4, 7 or 10 bytes, a UID twice in the file, a UID
the district has already received, or a file with no UID at all stops the command with
`ManifestError` naming the file and line, and nothing is loaded.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from kiosk.contract.custody import is_uid

_SEPARATORS = re.compile(r"[\s:-]")


class ManifestError(ValueError):
    """A manifest that cannot be loaded as it is; the message names the file and line."""


def normalise_uid(text: str) -> str:
    """``04:a1:...`` or ``04 A1 ...`` as ``04A1...`` (not checked here)."""
    return _SEPARATORS.sub("", text).upper()


def read_manifest(path: Path) -> list[tuple[int, str]]:
    """(line number, UID) for every UID of the manifest, checked (module docstring)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise ManifestError(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise ManifestError(f"{path}: not UTF-8 ({error.reason})") from None
    cells = _csv_cells(path, text) if _has_uid_header(text) else _plain_cells(text)
    uids: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for number, cell in cells:
        uid = normalise_uid(cell)
        if not is_uid(uid):
            raise ManifestError(f"{path}:{number}: {cell.strip()[:40]!r} is not a chip UID"
                                " (hex of 4, 7 or 10 bytes)")
        if uid in seen:
            raise ManifestError(f"{path}:{number}: UID {uid} is already on line {seen[uid]}")
        seen[uid] = number
        uids.append((number, uid))
    if not uids:
        raise ManifestError(f"{path}: no UID in the file (an empty manifest)")
    return uids


def _has_uid_header(text: str) -> bool:
    first = next((line for line in text.splitlines() if line.strip()), "")
    return "uid" in [cell.strip().lower() for cell in next(csv.reader([first]), [])]


def _plain_cells(text: str) -> list[tuple[int, str]]:
    return [(number, line) for number, line in enumerate(text.splitlines(), 1)
            if line.strip() and not line.lstrip().startswith("#")]


def _csv_cells(path: Path, text: str) -> list[tuple[int, str]]:
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    cells: list[tuple[int, str]] = []
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = [cell.strip().lower() for cell in row]
            continue
        column = header.index("uid")
        if len(row) <= column:
            raise ManifestError(f"{path}:{reader.line_num}: no uid cell on this line")
        cells.append((reader.line_num, row[column]))
    return cells
