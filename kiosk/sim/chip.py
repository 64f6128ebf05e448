"""The project's contactless chip emulator, on a virtual PC/SC reader (chip.md, "Testing
chips without hardware").

`Chip` is the card's content and behaviour, without I/O: an ATR, the UID answered to
PC/SC part 3's GET DATA (``FF CA 00 00 00``; 4, 7 or 10 bytes), and ISO 7816-4 transparent
files: SELECT by file ID, CREATE FILE, WRITE and UPDATE BINARY (both overwrite: the
simulation does not model WRITE BINARY's bit-wise OR), READ BINARY. Faults on demand
(`FAULTS`) make it answer garbage, give an impossible UID, fail or vanish mid-write.

`VirtualCard` lays a chip on a vpcd slot: it connects to the slot's TCP port (inserting
the card) and serves vpcd's messages (a 2-byte big-endian length, then the payload; a
1-byte payload is a control code: 0 power off, 1 power on, 2 reset, 4 send the ATR;
anything longer is a command APDU answered with data + SW1 SW2). Closing is removing.
While inserted it reconnects when the reader goes away and comes back (a card lying on a
reader that was unplugged and plugged in again).
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ATR = bytes.fromhex("3B8880014B494F534B53494D0B")  # ISO 14443-4 card, history "KIOSKSIM"
MEMORY = 8192  # bytes for files, about an E-KTP chip
FAULTS = frozenset({
    "garbage",           # every APDU is answered with one byte: no status word at all
    "bad-uid",           # GET DATA answers a 5-byte UID (ISO 14443 has 4, 7 or 10)
    "write-fails",       # the first write stores half its bytes, then answers 65 81
    "removed-mid-write",  # the first write stores half its bytes, then the card is gone
    "corrupt",           # writes answer 90 00 but store other bytes (a verify must fail)
})
SW_OK = b"\x90\x00"
MANUFACTURER = 0x04  # a 7-byte UID's first byte names its maker (ISO 14443-3)
CONNECT_RETRY = 0.05


def seeded_uids(seed: int, count: int, length: int = 7) -> list[bytes]:
    """*count* distinct UIDs of *length* bytes, the same for the same seed."""
    rng = random.Random(seed)
    uids: list[bytes] = []
    while len(uids) < count:
        body = bytes(rng.randrange(256) for _ in range(length - 1))
        uid = bytes([MANUFACTURER]) + body if length > 4 else bytes([0x08]) + body
        if uid not in uids:
            uids.append(uid)
    return uids


def uids_from_file(path: str | Path) -> list[bytes]:
    """One UID per line in hex (blank lines and ``#`` comments ignored)."""
    uids = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        text = line.split("#", 1)[0].strip().replace(":", "").replace(" ", "")
        if not text:
            continue
        try:
            uid = bytes.fromhex(text)
        except ValueError:
            raise ValueError(f"{path}:{number}: not a hex UID: {line.strip()!r}") from None
        if len(uid) not in (4, 7, 10):
            raise ValueError(f"{path}:{number}: a UID has 4, 7 or 10 bytes, got {len(uid)}")
        uids.append(uid)
    return uids


@dataclass
class Chip:
    """A contactless chip: UID, files, and an optional fault (one of `FAULTS`)."""

    uid: bytes
    fault: str | None = None
    memory: int = MEMORY
    files: dict[int, bytearray] = field(default_factory=dict)
    selected: int | None = None
    writes: int = 0  # write commands received (a test checks nothing was written)
    gone: bool = False  # the card left the field in the middle of a command
    # Called with each command APDU as it arrives, before the chip acts on it (a test may
    # kill the host at a chosen step of the personalizer).
    on_apdu: Callable[[bytes], None] | None = None

    def __post_init__(self) -> None:
        if self.fault is not None and self.fault not in FAULTS:
            raise ValueError(f"unknown chip fault {self.fault!r}; known: {sorted(FAULTS)}")

    @property
    def uid_hex(self) -> str:
        return self.uid.hex().upper()

    def content(self, file_id: int = 0xE104) -> bytes | None:
        """A file's bytes, for tests (None when the chip has no such file)."""
        data = self.files.get(file_id)
        return None if data is None else bytes(data)

    def reset(self) -> None:
        self.selected = None

    def answer(self, apdu: bytes) -> bytes | None:
        """The response APDU to *apdu*; None when the card has just left the field."""
        if self.on_apdu is not None:
            self.on_apdu(apdu)
        if self.fault == "garbage":
            return b"\x3f"
        if len(apdu) < 4:
            return b"\x67\x00"
        cla, ins, p1, p2 = apdu[:4]
        body, le = _split(apdu[4:])
        if body is None:
            return b"\x67\x00"
        if cla == 0xFF and ins == 0xCA:
            return self._get_data(p1, p2)
        if cla != 0x00:
            return b"\x6e\x00"
        handler = {0xA4: self._select, 0xE0: self._create, 0xD0: self._write,
                   0xD6: self._write, 0xB0: self._read}.get(ins)
        if handler is None:
            return b"\x6d\x00"
        return handler(p1, p2, body, le)

    def _get_data(self, p1: int, p2: int) -> bytes:
        if (p1, p2) != (0, 0):
            return b"\x6a\x81"
        uid = self.uid + b"\x5a" if self.fault == "bad-uid" else self.uid
        return uid + SW_OK

    def _select(self, p1: int, p2: int, body: bytes, le: int | None) -> bytes:
        if p1 not in (0x00, 0x02) or len(body) != 2:
            return b"\x6a\x86"
        file_id = int.from_bytes(body)
        if file_id == 0x3F00:
            self.selected = None
            return SW_OK
        if file_id not in self.files:
            return b"\x6a\x82"
        self.selected = file_id
        if p2 & 0x0C == 0x0C:
            return SW_OK
        size = len(self.files[file_id])
        fcp = b"\x80\x02" + size.to_bytes(2) + b"\x82\x01\x01\x83\x02" + body
        return b"\x62" + bytes([len(fcp)]) + fcp + SW_OK

    def _create(self, p1: int, p2: int, body: bytes, le: int | None) -> bytes:
        fcp = _tlv(body[2:]) if body[:1] == b"\x62" else None
        if fcp is None or b"\x83" not in fcp or len(fcp[b"\x83"]) != 2:
            return b"\x6a\x80"
        file_id = int.from_bytes(fcp[b"\x83"])
        size = int.from_bytes(fcp.get(b"\x80") or fcp.get(b"\x81") or b"\x00")
        if file_id in self.files or file_id == 0x3F00:
            return b"\x6a\x89"
        if not 0 < size <= self.memory - sum(len(f) for f in self.files.values()):
            return b"\x6a\x84"
        self.files[file_id] = bytearray(size)
        self.selected = file_id
        return SW_OK

    def _write(self, p1: int, p2: int, body: bytes, le: int | None) -> bytes | None:
        self.writes += 1
        target = self._current()
        if target is None:
            return b"\x69\x86"
        offset = (p1 << 8) | p2
        if p1 & 0x80 or offset > len(target):
            return b"\x6b\x00"
        if offset + len(body) > len(target):
            return b"\x6a\x84"
        if self.fault in ("write-fails", "removed-mid-write"):
            half = body[:len(body) // 2]
            target[offset:offset + len(half)] = half
            fault, self.fault = self.fault, None  # only the first write fails
            if fault == "removed-mid-write":
                self.gone = True
                return None
            return b"\x65\x81"
        data = bytes(b ^ 0x20 for b in body) if self.fault == "corrupt" else body
        target[offset:offset + len(data)] = data
        return SW_OK

    def _read(self, p1: int, p2: int, body: bytes, le: int | None) -> bytes:
        target = self._current()
        if target is None:
            return b"\x69\x86"
        offset = (p1 << 8) | p2
        if p1 & 0x80 or offset > len(target):
            return b"\x6b\x00"
        wanted = le or 256  # Le 00: 256 bytes
        data = bytes(target[offset:offset + wanted])
        return data + (SW_OK if len(data) == wanted else b"\x62\x82")

    def _current(self) -> bytearray | None:
        return None if self.selected is None else self.files.get(self.selected)


def _split(rest: bytes) -> tuple[bytes | None, int | None]:
    """Short APDU cases 1-4: (command data, Le); data None when the lengths do not add up."""
    if not rest:
        return b"", None
    if len(rest) == 1:
        return b"", rest[0]
    lc = rest[0]
    if len(rest) == 1 + lc:
        return rest[1:], None
    if len(rest) == 2 + lc:
        return rest[1:1 + lc], rest[-1]
    return None, None


def _tlv(data: bytes) -> dict[bytes, bytes] | None:
    """Simple one-byte-tag, one-byte-length TLVs; None when malformed."""
    out, position = {}, 0
    while position < len(data):
        if position + 2 > len(data):
            return None
        tag, length = data[position:position + 1], data[position + 1]
        value = data[position + 2:position + 2 + length]
        if len(value) != length:
            return None
        out[tag] = value
        position += 2 + length
    return out


class VirtualCard:
    """*chip* laid on the vpcd slot listening at *port* (inserted until `remove`)."""

    def __init__(self, chip: Chip, port: int, host: str = "127.0.0.1") -> None:
        self.chip, self.port, self.host = chip, port, host
        self.connected = threading.Event()  # vpcd holds our link (it may not have polled yet)
        self._inserted = threading.Event()
        self._removed = threading.Event()
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def inserted(self) -> bool:
        return self._inserted.is_set()

    def insert(self) -> VirtualCard:
        if self._thread is None:
            self._inserted.set()
            self._removed.clear()
            self._thread = threading.Thread(target=self._run, name="virtual-card", daemon=True)
            self._thread.start()
        return self

    def remove(self) -> None:
        """Take the card away from the reader (its link closes; it does not come back)."""
        self._inserted.clear()
        self._removed.set()
        self._drop()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._thread = None

    def __enter__(self) -> VirtualCard:
        return self.insert()

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def _drop(self) -> None:
        with self._lock:
            link, self._socket = self._socket, None
        self.connected.clear()
        if link is not None:
            with contextlib.suppress(OSError):
                link.shutdown(socket.SHUT_RDWR)
            link.close()

    def _run(self) -> None:
        while self._inserted.is_set() and not self.chip.gone:
            try:
                link = socket.create_connection((self.host, self.port), timeout=1)
            except OSError:
                self._removed.wait(CONNECT_RETRY)  # the reader is away: try again soon
                continue
            link.settimeout(None)
            with self._lock:
                if not self._inserted.is_set():
                    link.close()
                    return
                self._socket = link
            self.connected.set()
            with contextlib.suppress(OSError):
                self._serve(link)
            self._drop()
        if self.chip.gone:
            self._inserted.clear()

    def _serve(self, link: socket.socket) -> None:
        while True:
            header = _receive(link, 2)
            if header is None:
                return
            payload = _receive(link, struct.unpack(">H", header)[0])
            if payload is None:
                return
            if len(payload) == 1:
                reply = self._control(payload[0])
            else:
                reply = self.chip.answer(payload)
                if reply is None:  # left the field mid-command: the reader sees it gone
                    return
            if reply is not None:
                link.sendall(struct.pack(">H", len(reply)) + reply)

    def _control(self, code: int) -> bytes | None:
        if code == 4:
            return ATR
        if code in (0, 2):
            self.chip.reset()
        return None


def _receive(link: socket.socket, count: int) -> bytes | None:
    data = bytearray()
    while len(data) < count:
        chunk = link.recv(count - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)
