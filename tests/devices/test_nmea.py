"""NMEA sentence codec: the spec's example, round trips and every refusal reason."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiosk.devices.tray.nmea import MAX_LENGTH, NmeaError, build, checksum, parse

SPEC_EXAMPLE = b"$PKSKT,12,114000,0,0,0,312*50\r\n"


def test_spec_example_checksum_is_50() -> None:
    assert checksum("PKSKT,12,114000,0,0,0,312") == "50"


def test_build_reproduces_the_spec_example() -> None:
    assert build("PKSKT", 12, 114000, 0, 0, 0, 312) == SPEC_EXAMPLE


def test_parse_the_spec_example() -> None:
    assert parse(SPEC_EXAMPLE) == ("PKSKT", ["12", "114000", "0", "0", "0", "312"])


def test_checksum_is_two_upper_case_digits() -> None:
    assert checksum("") == "00"
    assert checksum("PKSKA,PING") == "7E"
    assert checksum("PKSKC,PING") == f"{_xor(b'PKSKC,PING'):02X}"
    assert checksum("\x0a") == "0A"


def _xor(data: bytes) -> int:
    value = 0
    for byte in data:
        value ^= byte
    return value


def test_build_writes_booleans_as_digits_and_a_bare_sentence() -> None:
    assert build("PKSKT", True, False).startswith(b"$PKSKT,1,0*")
    assert build("PKSKA", "PING") == b"$PKSKA,PING*" + checksum("PKSKA,PING").encode() + b"\r\n"


@pytest.mark.parametrize("line_end", [b"\r\n", b"\n", b""])
def test_parse_accepts_any_line_end(line_end: bytes) -> None:
    assert parse(SPEC_EXAMPLE[:-2] + line_end)[0] == "PKSKT"


def test_empty_fields_survive() -> None:
    assert parse(build("PKSKN", "CAL", "")) == ("PKSKN", ["CAL", ""])


def test_build_enforces_the_82_character_limit() -> None:
    head = "PKSKX"
    room = MAX_LENGTH - len(f"${head},*00\r\n")
    assert len(build(head, "A" * room)) == MAX_LENGTH
    with pytest.raises(NmeaError, match="too long: 83 > 82"):
        build(head, "A" * (room + 1))


@pytest.mark.parametrize("bad", ["a,b", "a*b", "$", "\r", "é", "\x00"])
def test_build_refuses_reserved_or_non_printable_characters(bad: str) -> None:
    with pytest.raises(NmeaError, match="reserves or forbids"):
        build("PKSKC", bad)


def test_build_refuses_an_empty_sentence_type() -> None:
    with pytest.raises(NmeaError, match="empty talker"):
        build("")


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"PKSKT,12,114000,0,0,0,312*50\r\n", "no leading '\\$'"),
        (b"$PKSKT,12,114000,0,0,0,312\r\n", "missing checksum"),
        (b"$PKSKT,12,114000,0,0,0,312*5\r\n", "bad checksum field '5'"),
        (b"$PKSKT,12,114000,0,0,0,312*5G\r\n", "bad checksum field '5G'"),
        (b"$PKSKA,PING*7e\r\n", "bad checksum field '7e'"),
        (b"$PKSKT,12,114000,0,0,0,312*51\r\n", "sentence says 51, content gives 50"),
        (b"$PKSKT,13,114000,0,0,0,312*50\r\n", "checksum mismatch"),
        (b"$PK$KT*" + checksum("PK$KT").encode(), "reserved character"),
        (b"$*00", "empty talker"),
        (b"$PKSKT,\xe9*00\r\n", "non-ASCII byte 0xE9 at position 7"),
        (b"$PKSKT,\x01*00\r\n", "control byte 0x01 at position 7"),
        (b"$PKSKT,12\r,0*00\r\n", "control byte 0x0D"),
        (b"$" + b"A" * 80 + b"*00\r\n", "too long: 86 > 82"),
    ],
)
def test_parse_says_precisely_what_is_wrong(line: bytes, reason: str) -> None:
    with pytest.raises(NmeaError, match=reason):
        parse(line)


def test_nmea_error_is_a_value_error() -> None:
    assert issubclass(NmeaError, ValueError)


_FIELD_CHARS = st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="$*,!\\^~")
_HEAD = st.text(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"), min_size=1, max_size=6)


@given(_HEAD, st.lists(st.text(_FIELD_CHARS, max_size=12), max_size=5))
def test_build_then_parse_gives_back_the_fields(head: str, fields: list[str]) -> None:
    sentence = build(head, *fields)
    assert parse(sentence) == (head, fields)
    assert sentence.endswith(b"\r\n") and len(sentence) <= MAX_LENGTH


@given(st.binary(max_size=120))
def test_random_bytes_raise_nothing_but_nmea_error(line: bytes) -> None:
    try:
        head, fields = parse(line)
    except NmeaError:
        return
    assert head and isinstance(fields, list)


@given(st.binary(max_size=90).map(lambda b: b"$" + b))
def test_random_sentences_raise_nothing_but_nmea_error(line: bytes) -> None:
    with contextlib.suppress(NmeaError):
        parse(line)


@given(st.data())
def test_any_single_byte_change_is_detected(data: st.DataObject) -> None:
    sentence = bytearray(SPEC_EXAMPLE)
    position = data.draw(st.integers(0, len(sentence) - 1))
    replacement = data.draw(st.integers(0, 255).filter(lambda b: b != sentence[position]))
    sentence[position] = replacement
    with pytest.raises(NmeaError):
        parse(bytes(sentence))
