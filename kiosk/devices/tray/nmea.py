"""NMEA 0183 sentence codec: checksum, build and parse of single sentences.

Owns the framing rules of tray-sensor.md (``$`` + fields + ``*HH`` + CRLF, at most
82 characters including ``$`` and CRLF); knows nothing about what the fields mean.
"""

from __future__ import annotations

MAX_LENGTH = 82
"""Longest sentence in characters, counting ``$`` and the closing CRLF (NMEA 0183)."""

_RESERVED = frozenset("$*,!\\^~")
_HEX_UPPER = frozenset("0123456789ABCDEF")


class NmeaError(ValueError):
    """A line that is not a well-formed NMEA sentence; the message says why."""


def checksum(body: str) -> str:
    """XOR of every character between ``$`` and ``*``, as two upper-case hex digits."""
    value = 0
    for byte in body.encode("ascii"):
        value ^= byte
    return f"{value:02X}"


def _field_text(field: object) -> str:
    if isinstance(field, bool):  # a bool is an int: str(True) would say "True"
        return "1" if field else "0"
    text = str(field)
    for char in text:
        if not " " <= char <= "~" or char in _RESERVED:
            raise NmeaError(f"field {text!r} holds a character NMEA reserves or forbids: {char!r}")
    return text


def build(talker_and_type: str, *fields: object) -> bytes:
    """One sentence with its checksum and CRLF, e.g. ``build("PKSKC", "PING")``.

    Fields are written with ``str()`` (booleans as ``1``/``0``). Raises NmeaError
    for reserved characters or a sentence longer than MAX_LENGTH.
    """
    if not talker_and_type:
        raise NmeaError("empty talker and sentence type")
    body = ",".join(_field_text(part) for part in (talker_and_type, *fields))
    sentence = f"${body}*{checksum(body)}\r\n"
    if len(sentence) > MAX_LENGTH:
        raise NmeaError(f"sentence too long: {len(sentence)} > {MAX_LENGTH} characters")
    return sentence.encode("ascii")


def _strip_line_end(line: bytes) -> bytes:
    if line.endswith(b"\r\n"):
        return line[:-2]
    if line.endswith(b"\n"):
        return line[:-1]
    return line


def _check_bytes(text: bytes) -> None:
    for position, byte in enumerate(text):
        if byte > 0x7E:
            raise NmeaError(f"non-ASCII byte 0x{byte:02X} at position {position}")
        if byte < 0x20:
            raise NmeaError(f"control byte 0x{byte:02X} at position {position}")


def parse(line: bytes) -> tuple[str, list[str]]:
    """Split one sentence into its talker+type and fields, checking every framing rule.

    The line may end in CRLF, LF or nothing. Lower-case checksum digits are
    refused: our board always writes upper case, so anything else is damage.
    """
    text = _strip_line_end(line)
    if len(text) + 2 > MAX_LENGTH:
        raise NmeaError(f"sentence too long: {len(text) + 2} > {MAX_LENGTH} characters")
    _check_bytes(text)
    if not text.startswith(b"$"):
        raise NmeaError("no leading '$'")
    sentence = text.decode("ascii")
    star = sentence.rfind("*")
    if star < 0:
        raise NmeaError("missing checksum: no '*'")
    body, given = sentence[1:star], sentence[star + 1 :]
    if len(given) != 2 or not set(given) <= _HEX_UPPER:
        raise NmeaError(f"bad checksum field {given!r}: want two upper-case hex digits")
    if "$" in body or "*" in body:
        raise NmeaError("reserved character '$' or '*' inside the sentence")
    expected = checksum(body)
    if given != expected:
        raise NmeaError(f"checksum mismatch: sentence says {given}, content gives {expected}")
    head, *fields = body.split(",")
    if not head:
        raise NmeaError("empty talker and sentence type")
    return head, fields
