"""The personalizers this project ships (chip.md): ``none`` and ``demo``.

``none`` writes nothing: custody by UID only. ``demo`` writes one ISO 7816-4
transparent file, E104, holding ``RECORD_ID|sha256:HEX16`` (HEX16: the first 16 hex
digits of the SHA-256 of the record's canonical JSON without ``sig``), never a name or
a NIK, and reads it back to verify. Anyone can check which record a chip was written
for, and the whole path runs on the project's chip emulator (kiosk/sim/chip.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from kiosk.contract.signing import canonical_json
from kiosk.devices.encoder.personalizer import CardLink, ChipError, Outcome

FILE_ID = b"\xe1\x04"
SW_OK, SW_NOT_FOUND = 0x9000, 0x6A82
CHUNK = 0xF0  # bytes per READ/UPDATE BINARY (short APDUs)


class NonePersonalizer:
    """Writes nothing: every chip stays untouched; the station keeps its UID."""

    def personalize(self, card: CardLink, record: Mapping[str, Any]) -> Outcome:
        return Outcome(True)

    def untouched(self, card: CardLink) -> bool:
        return True


def demo_content(record: Mapping[str, Any]) -> bytes:
    """What the demo personalizer writes for *record*: ``RECORD_ID|sha256:HEX16``."""
    unsigned = {key: value for key, value in record.items() if key != "sig"}
    digest = hashlib.sha256(canonical_json(unsigned)).hexdigest()[:16]
    return f"{record['record_id']}|sha256:{digest}".encode()


class DemoPersonalizer:
    """File E104 holds which record the chip was written for (see the module doc)."""

    def personalize(self, card: CardLink, record: Mapping[str, Any]) -> Outcome:
        content = demo_content(record)
        size = self._select(card)
        if size is None:
            size = len(content)
            self._create(card, size)
        if size < len(content):
            return Outcome(False, f"file E104 has {size} bytes, {len(content)} needed")
        padded = content + bytes(size - len(content))
        for offset in range(0, size, CHUNK):
            _, sw = card.transmit(_apdu(0xD6, offset, padded[offset:offset + CHUNK]))
            if sw != SW_OK:
                return Outcome(False, f"UPDATE BINARY at {offset} answered SW {sw:04X}")
        if self._read(card, size) != padded:
            return Outcome(False, "file E104 read back differs from what was written")
        return Outcome(True)

    def untouched(self, card: CardLink) -> bool:
        size = self._select(card)
        return size is None or not any(self._read(card, size))

    @staticmethod
    def _select(card: CardLink) -> int | None:
        """Select E104; its size, or None when the chip has no such file."""
        data, sw = card.transmit(b"\x00\xa4\x00\x00\x02" + FILE_ID + b"\x00")
        if sw == SW_NOT_FOUND:
            return None
        if sw != SW_OK:
            raise ChipError(f"SELECT E104 answered SW {sw:04X}")
        position = data.find(b"\x80\x02")
        if data[:1] != b"\x62" or position < 0:
            raise ChipError("SELECT E104 gave no file size (FCP tag 80)")
        return int.from_bytes(data[position + 2:position + 4])

    @staticmethod
    def _create(card: CardLink, size: int) -> None:
        fcp = b"\x83\x02" + FILE_ID + b"\x80\x02" + size.to_bytes(2) + b"\x82\x01\x01"
        _, sw = card.transmit(_apdu(0xE0, 0, b"\x62" + bytes([len(fcp)]) + fcp))
        if sw != SW_OK:
            raise ChipError(f"CREATE FILE E104 answered SW {sw:04X}")

    @staticmethod
    def _read(card: CardLink, size: int) -> bytes:
        data = bytearray()
        for offset in range(0, size, CHUNK):
            want = min(CHUNK, size - offset)
            chunk, sw = card.transmit(bytes([0, 0xB0, offset >> 8, offset & 0xFF, want]))
            if sw != SW_OK:
                raise ChipError(f"READ BINARY at {offset} answered SW {sw:04X}")
            data += chunk
        return bytes(data)


def _apdu(ins: int, offset: int, data: bytes) -> bytes:
    return bytes([0, ins, offset >> 8, offset & 0xFF, len(data)]) + data
