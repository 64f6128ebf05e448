"""The Evolis command language on the wire (card-printer.md): framing, panel geometry,
the `Dbc` 1-bit line compression, an incremental host-to-printer stream parser and the
mapping of printer error replies to IPP printer-state-reasons.

Shared by the station's printer driver (which builds commands) and the printer simulator
(which parses them), so both sides agree byte for byte. Pure functions and one parser
class; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

ESC = b"\x1b"
CR = b"\r"

COLOUR_BITS = {32: 5, 64: 6, 128: 7}
MONO_CODE = 2
_CODE_BITS = {MONO_CODE: 1, **COLOUR_BITS}

WHITE_LINE = 0x00
BLACK_LINE = 0xFF

ERROR_REASONS: dict[str, str] = {
    "FEEDER EMPTY": "media-empty-error",
    "CARD JAM": "media-jam-error",
    "ERROR RIBBON": "marker-supply-empty-error",
    "COVER OPEN": "cover-open-error",
    "HOPPER FULL": "output-area-full-error",
    "NEED CLEANING": "cleaner-life-almost-over-warning",
    "ERROR HEAD": "other-error",
    # Our choice: these three say the exchange itself went wrong (a driver bug, or the
    # host stalled mid-download), not that the device needs attention. The link still
    # answers, so they are not `timed-out-error` (which the station keeps for silence).
    "ERROR CDE": "other-error",
    "ERROR PARAMETRES": "other-error",
    "ERROR TIME OUT": "other-error",
}

OK = "OK"


@dataclass(frozen=True)
class Geometry:
    """Panel geometry as sent on the wire: `height` lines of `width` pixels.

    The width must be a whole number of bytes so every line starts on a byte boundary
    for any bit depth (both known geometries, 648 x 1016 and 656 x 1032, are).
    """

    width: int = 648
    height: int = 1016

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0 or self.width % 8:
            raise ValueError(f"bad panel geometry {self.width}x{self.height}")

    @property
    def line_bytes(self) -> int:
        """Bytes of one 1-bit line."""
        return -(-self.width // 8)

    def panel_bytes(self, bits_per_pixel: int) -> int:
        """Bytes of one panel at *bits_per_pixel*, packed MSB first, line after line."""
        return self.width * self.height * bits_per_pixel // 8


def bits_per_pixel(code: int) -> int:
    """Bits per pixel of a `Db` bits code (2 → 1, 32 → 5, 64 → 6, 128 → 7)."""
    try:
        return _CODE_BITS[code]
    except KeyError:
        raise ValueError(f"unknown bits code {code!r}") from None


def command(name: str, *params: str | int) -> bytes:
    """One framed command: ESC name;param;... CR."""
    return ESC + ";".join([name, *map(str, params)]).encode("ascii") + CR


def download(panel: str, code: int, data: bytes) -> bytes:
    """`Db;<panel>;<code>;<data>` with the raw packed panel."""
    return ESC + f"Db;{panel};{code};".encode("ascii") + data + CR


def download_compressed(panel: str, payload: bytes) -> bytes:
    """`Dbc;<panel>;2;<len>;<payload>` with a payload from `compress_1bit`."""
    return ESC + f"Dbc;{panel};{MONO_CODE};{len(payload)};".encode("ascii") + payload + CR


def compress_1bit(packed: bytes, geometry: Geometry = Geometry()) -> bytes:
    """`Dbc` line records for a packed 1-bit panel, the shortest record for each line."""
    width = geometry.line_bytes
    if width >= BLACK_LINE:
        raise ValueError("lines too wide for Dbc records")
    if len(packed) != width * geometry.height:
        raise ValueError(f"1-bit panel is {len(packed)} bytes, expected {width * geometry.height}")
    black = b"\xff" * width
    out = bytearray()
    for start in range(0, len(packed), width):
        line = packed[start:start + width]
        if line == black:
            out.append(BLACK_LINE)
            continue
        line = line.rstrip(b"\x00")  # an empty line gives the WHITE_LINE record
        out.append(len(line))
        out += line
    return bytes(out)


def decompress_1bit(payload: bytes, geometry: Geometry = Geometry()) -> bytes:
    """The packed 1-bit panel from `Dbc` line records; ValueError if malformed."""
    width = geometry.line_bytes
    black = b"\xff" * width
    out = bytearray()
    pos = 0
    for line in range(geometry.height):
        if pos >= len(payload):
            raise ValueError(f"Dbc payload ends after {line} of {geometry.height} lines")
        count = payload[pos]
        pos += 1
        if count == BLACK_LINE:
            out += black
            continue
        if count > width or pos + count > len(payload):
            raise ValueError(f"Dbc record {count} overruns line {line}")
        out += payload[pos:pos + count]
        out += bytes(width - count)
        pos += count
    if pos != len(payload):
        raise ValueError(f"{len(payload) - pos} bytes after the last Dbc line")
    return bytes(out)


def decode_reply(raw: bytes) -> str:
    """A printer reply as text, without its CR/NUL terminator and surrounding blanks."""
    return raw.decode("ascii", errors="replace").strip("\r\x00 \t\n")


def reason_for_reply(reply: str) -> str:
    """The IPP printer-state-reason for a reply: `none` for OK, `other-error` if unknown."""
    reply = reply.strip("\r\x00 \t\n")
    if reply == OK:
        return "none"
    return ERROR_REASONS.get(reply, "other-error")


@dataclass(frozen=True)
class Command:
    """One parsed host command. `Db`/`Dbc` carry their payload; without one they are
    malformed (bad header, or no CR after the payload) and get ERROR PARAMETRES."""

    name: str
    params: tuple[str, ...]
    payload: bytes | None = None


_HEADER_FIELDS = {b"Db": 3, b"Dbc": 4}  # fields before the payload, name included
MAX_HEADER = 256  # an ESC with no CR this far on is garbage, not a command


class StreamParser:
    """Splits the host-to-printer byte stream into `Command`s, in arbitrary chunks.

    Usage::

        parser = StreamParser(geometry)
        for cmd in parser.feed(port.read(65536)):
            ...

    Bytes before an ESC (NUL padding, line noise) are skipped. An ESC inside an
    unfinished header abandons that header: the new command wins. Payloads of `Db`
    (sized by the geometry and bits code) and `Dbc` (sized by its length field) are
    read by count, so CR and ESC inside them are data.
    """

    def __init__(self, geometry: Geometry = Geometry()) -> None:
        self.geometry = geometry
        self._buf = bytearray()
        self._pending: Command | None = None  # header read, payload still coming
        self._need = 0
        self._payload = bytearray()

    @property
    def busy(self) -> bool:
        """True while a command has been partly received."""
        return self._pending is not None or bool(self._buf)

    def reset(self) -> None:
        """Forget any partial command (the link was lost)."""
        self._buf.clear()
        self._pending = None
        self._payload = bytearray()

    def feed(self, data: bytes) -> list[Command]:
        self._buf += data
        out: list[Command] = []
        step = self._read_payload if self._pending else self._read_header
        while step(out):
            step = self._read_payload if self._pending else self._read_header
        return out

    def _read_payload(self, out: list[Command]) -> bool:
        assert self._pending is not None
        take = min(self._need - len(self._payload), len(self._buf))
        self._payload += self._buf[:take]
        del self._buf[:take]
        if len(self._payload) < self._need or not self._buf:
            return False
        pending, payload = self._pending, bytes(self._payload)
        self._pending, self._payload = None, bytearray()
        if self._buf[0] == CR[0]:
            del self._buf[:1]
            out.append(Command(pending.name, pending.params, payload))
        else:
            out.append(pending)  # no CR where it must be: malformed
        return True

    def _read_header(self, out: list[Command]) -> bool:
        buf = self._buf
        start = buf.find(ESC)
        if start < 0:
            buf.clear()
            return False
        del buf[:start]
        end = buf.find(CR)
        limit = end if end >= 0 else len(buf)
        payload_at = self._payload_start(limit)
        stop = payload_at if payload_at >= 0 else end
        # A header is judged on its first MAX_HEADER bytes only, whether or not more has
        # arrived yet, so the outcome never depends on how the stream was chunked.
        restart = buf.find(ESC, 1, min(stop, MAX_HEADER) if stop >= 0 else MAX_HEADER)
        if restart >= 0:
            del buf[:restart]
            return True
        if 0 <= stop <= MAX_HEADER:
            cmd = _split(bytes(buf[1:stop]))
            del buf[:stop + 1]
        elif len(buf) > MAX_HEADER:  # runaway header: answer what we have, skip the rest
            cmd = _split(bytes(buf[1:MAX_HEADER]))
            del buf[:MAX_HEADER]
        else:
            return False
        size = self._payload_size(cmd) if payload_at >= 0 else None
        if size is None:
            out.append(cmd)  # for a download header: malformed, resync on the next ESC
        else:
            self._pending, self._need = cmd, size
        return True

    def _payload_start(self, limit: int) -> int:
        """Index of the `;` ending a download header before *limit*, else -1."""
        name_end = self._buf.find(b";", 1, limit)
        fields = _HEADER_FIELDS.get(bytes(self._buf[1:name_end]), 0) if name_end > 0 else 0
        pos = name_end
        for _ in range(fields - 1):
            pos = self._buf.find(b";", pos + 1, limit)
            if pos < 0:
                return -1
        return pos if fields else -1

    def _payload_size(self, cmd: Command) -> int | None:
        number = cmd.params[1 if cmd.name == "Db" else 2]
        if not (number.isascii() and number.isdigit()):
            return None
        if cmd.name == "Dbc":
            return int(number)
        try:
            return self.geometry.panel_bytes(bits_per_pixel(int(number)))
        except ValueError:
            return None


def _split(header: bytes) -> Command:
    name, *params = header.decode("latin-1").split(";")
    return Command(name, tuple(params))
