"""The custody vocabulary the station and the district share (mqtt.md ``blank`` event,
``invalidate``; chip.md, Custody): a chip's UID as it travels, what a blank became, and
the official categories of an invalid blank."""

from __future__ import annotations

import re

UID = re.compile(r"[0-9A-F]{8}|[0-9A-F]{14}|[0-9A-F]{20}")  # ISO 14443: 4, 7 or 10 bytes
OUTCOMES = ("printed", "invalid")
INVALID_CATEGORIES = ("gagal-encode", "gagal-cetak", "rusak", "perubahan-elemen-data")
DECLARED = ("rusak", "perubahan-elemen-data")  # by a person; the station decides the other two


def is_uid(text: object) -> bool:
    """Upper-case hex of 4, 7 or 10 bytes."""
    return isinstance(text, str) and UID.fullmatch(text) is not None
