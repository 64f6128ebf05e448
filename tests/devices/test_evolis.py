"""The Evolis wire codec: framing, Dbc compression, the stream parser, error replies."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiosk.devices.printer.evolis import protocol as evolis
from kiosk.devices.printer.evolis.protocol import Command, Geometry, StreamParser

FIXTURES = Path(__file__).parents[1] / "fixtures"
CAPTURE_DBC_LENGTHS = {
    "card-black.prn": 83312,
    "card-white.prn": 42832,
    "evolis-card-text.prn": 83223,
}
CAPTURE_COMMANDS = ["Pr", "Pmi", "Pc", "Pdt", "Mr", "Ppws", "Ss", "Sr", "Dbc", "Se"]
LB = Geometry().line_bytes


def feed_in_chunks(parser: StreamParser, data: bytes, seed: int, largest: int) -> list[Command]:
    rng = random.Random(seed)
    out: list[Command] = []
    pos = 0
    while pos < len(data):
        size = rng.randint(1, largest)
        out += parser.feed(data[pos:pos + size])
        pos += size
    return out


def capture_payload(name: str) -> bytes:
    data = (FIXTURES / name).read_bytes()
    header = re.search(rb"\x1bDbc;k;2;(\d+);", data)
    assert header is not None
    return data[header.end():header.end() + int(header.group(1))]


# -- framing and geometry ---------------------------------------------------------------


def test_command_framing() -> None:
    assert evolis.command("Pem", 2) == b"\x1bPem;2\r"
    assert evolis.command("Ss") == b"\x1bSs\r"
    assert evolis.command("Pr", "ymcko") == b"\x1bPr;ymcko\r"


def test_download_framing() -> None:
    assert evolis.download("k", 2, b"\r\x1b") == b"\x1bDb;k;2;\r\x1b\r"
    assert evolis.download_compressed("o", b"\x00\xff") == b"\x1bDbc;o;2;2;\x00\xff\r"


def test_geometry_sizes() -> None:
    geometry = Geometry()
    assert geometry.line_bytes == 81
    assert geometry.panel_bytes(1) == 82_296
    assert geometry.panel_bytes(5) == 648 * 1016 * 5 // 8
    assert Geometry(656, 1032).line_bytes == 82


@pytest.mark.parametrize(("width", "height"), [(0, 10), (8, 0), (650, 1016)])
def test_geometry_rejects_unusable_sizes(width: int, height: int) -> None:
    with pytest.raises(ValueError):
        Geometry(width, height)


def test_bits_per_pixel_codes() -> None:
    assert [evolis.bits_per_pixel(code) for code in (2, 32, 64, 128)] == [1, 5, 6, 7]
    with pytest.raises(ValueError):
        evolis.bits_per_pixel(16)


# -- Dbc compression ----------------------------------------------------------------------


def test_compress_all_white_and_all_black() -> None:
    white, black = bytes(LB * 1016), b"\xff" * (LB * 1016)
    assert evolis.compress_1bit(white) == b"\x00" * 1016
    assert evolis.compress_1bit(black) == b"\xff" * 1016
    assert evolis.decompress_1bit(b"\x00" * 1016) == white
    assert evolis.decompress_1bit(b"\xff" * 1016) == black


def test_compress_drops_trailing_white_of_a_line() -> None:
    geometry = Geometry(width=32, height=3)
    packed = b"\x80\x00\x01\x00" + b"\xff\xff\xff\xfe" + b"\x00\x00\x00\x00"
    payload = evolis.compress_1bit(packed, geometry)
    assert payload == b"\x03\x80\x00\x01" + b"\x04\xff\xff\xff\xfe" + b"\x00"
    assert evolis.decompress_1bit(payload, geometry) == packed


def test_compress_random_panel_round_trips() -> None:
    packed = random.Random(7).randbytes(LB * 1016)
    assert evolis.decompress_1bit(evolis.compress_1bit(packed)) == packed


def test_compress_rejects_wrong_size() -> None:
    with pytest.raises(ValueError):
        evolis.compress_1bit(bytes(LB * 1016 - 1))


@pytest.mark.parametrize("name", sorted(CAPTURE_DBC_LENGTHS))
def test_compress_matches_evolis_driver_byte_for_byte(name: str) -> None:
    payload = capture_payload(name)
    assert evolis.compress_1bit(evolis.decompress_1bit(payload)) == payload


@st.composite
def panels(draw: st.DrawFn) -> tuple[Geometry, bytes]:
    line_bytes = draw(st.integers(1, 12))
    line = st.one_of(
        st.just(bytes(line_bytes)),
        st.just(b"\xff" * line_bytes),
        st.binary(max_size=line_bytes).map(lambda b: b.ljust(line_bytes, b"\x00")),
        st.binary(min_size=line_bytes, max_size=line_bytes),
    )
    lines = draw(st.lists(line, min_size=1, max_size=24))
    return Geometry(width=8 * line_bytes, height=len(lines)), b"".join(lines)


@given(panels())
def test_compress_round_trip_uses_shortest_records(panel: tuple[Geometry, bytes]) -> None:
    geometry, packed = panel
    payload = evolis.compress_1bit(packed, geometry)
    assert evolis.decompress_1bit(payload, geometry) == packed
    lines = [packed[i:i + geometry.line_bytes] for i in range(0, len(packed), geometry.line_bytes)]
    shortest = sum(1 if set(line) == {0xFF} else 1 + len(line.rstrip(b"\0")) for line in lines)
    assert len(payload) == shortest


@pytest.mark.parametrize(
    "payload",
    [
        b"\x00" * 1015,                        # a line short
        b"\x00" * 1017,                        # a line too many
        b"\x00" * 1015 + b"\x05\x01\x02",      # record overruns the payload
        b"\x52" + b"\x01" * 82 + b"\x00" * 1015,  # 82 bytes in an 81-byte line
        b"",
    ],
)
def test_decompress_rejects_malformed_payload(payload: bytes) -> None:
    with pytest.raises(ValueError):
        evolis.decompress_1bit(payload)


# -- stream parser ------------------------------------------------------------------------


def test_parser_reads_payloads_by_count_in_any_chunks() -> None:
    geometry = Geometry(width=16, height=4)
    raw = bytes([0x0D, 0x1B, 0x3B, 0x00]) * 2  # CR, ESC, ';', NUL: all payload
    compressed = b"\x02\r\x1b\xff\x00\x01\r"
    stream = (b"\x00\x00junk" + evolis.command("Ss") + evolis.download("k", 2, raw)
              + evolis.download_compressed("o", compressed) + evolis.command("Se", 1) + bytes(64))
    expected = [
        Command("Ss", ()),
        Command("Db", ("k", "2"), raw),
        Command("Dbc", ("o", "2", "7"), compressed),
        Command("Se", ("1",)),
    ]
    for seed in range(20):
        assert feed_in_chunks(StreamParser(geometry), stream, seed, largest=9) == expected
    byte_by_byte = StreamParser(geometry)
    assert [c for b in stream for c in byte_by_byte.feed(bytes([b]))] == expected


def test_parser_colour_payload_size_follows_geometry() -> None:
    geometry = Geometry(width=16, height=2)
    data = bytes(range(geometry.panel_bytes(5)))
    parsed = StreamParser(geometry).feed(evolis.download("y", 32, data) + evolis.command("Sr"))
    assert parsed == [Command("Db", ("y", "32"), data), Command("Sr", ())]


@pytest.mark.parametrize(
    "bad",
    [b"\x1bDbc;k;2;12x;", b"\x1bDbc;k;2;-3;", b"\x1bDb;k;9;", b"\x1bDb;k\r"],
)
def test_parser_keeps_going_after_a_malformed_download(bad: bytes) -> None:
    parser = StreamParser()
    parsed = parser.feed(bad + b"\x1bRfv\r")
    assert len(parsed) == 2
    assert parsed[0].name in ("Db", "Dbc") and parsed[0].payload is None
    assert parsed[1] == Command("Rfv", ())


def test_parser_flags_payload_without_cr() -> None:
    geometry = Geometry(width=8, height=1)
    parsed = StreamParser(geometry).feed(b"\x1bDb;k;2;\xaa\x00\x1bRfv\r")
    assert parsed == [Command("Db", ("k", "2")), Command("Rfv", ())]


def test_parser_abandons_header_cut_by_a_new_command() -> None:
    assert StreamParser().feed(b"\x1bPem;\x1bRfv\r") == [Command("Rfv", ())]


def test_parser_answers_a_runaway_header_and_resyncs() -> None:
    parser = StreamParser()
    parsed = parser.feed(b"\x1bX" + b"y" * 1000)
    assert len(parsed) == 1 and parsed[0].name.startswith("Xy")
    assert parser.feed(b"\r\x1bRsn\r") == [Command("Rsn", ())]


def test_parser_runaway_header_keeps_the_command_right_after_it() -> None:
    parser = StreamParser()
    runaway = b"\x1bX" + b"y" * (evolis.MAX_HEADER - 2)
    assert [c.name for c in parser.feed(runaway + b"\x1bRsn")] == ["X" + "y" * 254]
    assert parser.feed(b"\r") == [Command("Rsn", ())]


def test_parser_busy_and_reset() -> None:
    parser = StreamParser()
    assert not parser.busy
    parser.feed(b"\x1bDb;k;2;\x01\x02")
    assert parser.busy
    parser.reset()
    assert not parser.busy
    assert parser.feed(b"\x1bRfv\r") == [Command("Rfv", ())]


@pytest.mark.parametrize("name", sorted(CAPTURE_DBC_LENGTHS))
def test_captures_parse_in_random_chunks(name: str) -> None:
    stream = (FIXTURES / name).read_bytes()
    for seed in range(3):
        parsed = feed_in_chunks(StreamParser(), stream, seed, largest=4096)
        assert [c.name for c in parsed] == CAPTURE_COMMANDS
        dbc = parsed[CAPTURE_COMMANDS.index("Dbc")]
        assert dbc.params == ("k", "2", str(CAPTURE_DBC_LENGTHS[name]))
        assert dbc.payload is not None and len(dbc.payload) == CAPTURE_DBC_LENGTHS[name]
        assert parsed[-1] == Command("Se", ("1",))


# -- replies ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "text"),
    [(b"OK\r", "OK"), (b"\x00OK\x00", "OK"), (b" FEEDER EMPTY \r\n", "FEEDER EMPTY"),
     (b"5.1.2\r", "5.1.2")],
)
def test_decode_reply(raw: bytes, text: str) -> None:
    assert evolis.decode_reply(raw) == text


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("FEEDER EMPTY", "media-empty-error"),
        ("CARD JAM", "media-jam-error"),
        ("ERROR RIBBON", "marker-supply-empty-error"),
        ("COVER OPEN", "cover-open-error"),
        ("HOPPER FULL", "output-area-full-error"),
        ("NEED CLEANING", "cleaner-life-almost-over-warning"),
        ("ERROR HEAD", "other-error"),
        ("ERROR CDE", "other-error"),
        ("ERROR PARAMETRES", "other-error"),
        ("ERROR TIME OUT", "other-error"),
        ("SOMETHING NEW", "other-error"),
        ("OK\r", "none"),
    ],
)
def test_reason_for_reply(reply: str, reason: str) -> None:
    assert evolis.reason_for_reply(reply) == reason
