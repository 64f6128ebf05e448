"""Fuzzing of everything that reads bytes from outside: the record validator and the two
serial frame parsers (the Evolis host stream and the tray board's NMEA sentences).

Each property runs 10,000 examples, derandomized (the same examples on every run, so CI
is deterministic) and without an example database (nothing is written to the tree).
They carry the ``slow`` marker: .ci/run runs them in its second pytest step.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import random
from datetime import date
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from kiosk.contract.record import FIELD_NAMES, Record, Rejected, parse_record
from kiosk.contract.signing import Verifier, sign_record
from kiosk.devices.printer.evolis import protocol as evolis
from kiosk.devices.printer.evolis.protocol import Command, Geometry, StreamParser
from kiosk.devices.tray import nmea
from kiosk.devices.tray.driver import parse_frame
from kiosk.sim import samples
from kiosk.station.core.events import TrayFrame

pytestmark = pytest.mark.slow

FUZZ = settings(max_examples=10_000, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TODAY = date(2024, 6, 1)
KEY = Ed25519PrivateKey.generate()
VERIFIER = Verifier([KEY.public_key()])
CODES = {"too-large", "not-json", "too-deep", "not-object", "unknown-schema", "invalid-field",
         "nik-mismatch", "bad-image", "unsigned", "bad-signature", "unknown-key"}
BASES = [samples.make_record(index) for index in range(1, 9)]


def outcome(payload: bytes, verifier: Verifier | None = None) -> Record | Rejected:
    """What the validator makes of *payload*: anything but these two is a defect."""
    try:
        record = parse_record(payload, verifier=verifier, today=TODAY)
    except Rejected as rejected:
        assert rejected.code in CODES, rejected.code
        assert rejected.detail
        return rejected
    assert isinstance(record, Record)
    return record


# -- the record validator -----------------------------------------------------------------


def _image(fmt: str, size: tuple[int, int]) -> str:
    out = io.BytesIO()
    Image.new("P" if fmt == "GIF" else "RGB", size).save(out, fmt)
    return base64.b64encode(out.getvalue()).decode("ascii")


# Values that have broken validators before: wrong types, edges of every limit, numbers
# JSON cannot hold exactly, dates that are not dates, foreign or oversized images.
NASTY: list[Any] = [
    None, True, False, 0, -1, 2**53, 2**64, -(2**63), 1.5, 1e308, float("nan"), float("inf"),
    "", " ", "\t", "x" * 201, "x" * 121, "\x00", "\x1b[2J", "\u0085", "\ud800", "\U0001f600",
    "ＡＢＣ", "SEUMUR HIDUP", "1990-02-30", "0000-00-00", "2999-01-01", "1899-12-31",
    "1990-1-1", "001/001", "1/1", "AB", "-", "LAKI-LAKI ", "perempuan", [], {}, [[[[[]]]]],
    {"alg": "ed25519"}, ["a", 1, None], "AAAA", "////", "=", _image("PNG", (1, 1)),
    _image("JPEG", (2500, 1)), _image("GIF", (8, 8)), _image("BMP", (8, 8)),
    _image("PNG", (1, 2001)),
]
NASTY_VALUE = st.sampled_from(NASTY) | st.text(max_size=40) | st.integers()
JSON_DOCS = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=12),
                         lambda inner: st.lists(inner, max_size=3)
                         | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                         max_leaves=5)


@FUZZ
@given(st.one_of(
    st.binary(max_size=2000),
    st.text(max_size=500).map(str.encode),
    JSON_DOCS.map(lambda value: json.dumps(value).encode()),
    st.sampled_from(NASTY).map(lambda value: json.dumps({"schema": value}).encode()),
))
def test_any_bytes_are_a_record_or_rejected(payload: bytes) -> None:
    assert isinstance(outcome(payload), Rejected)  # no random payload is a whole record


MUTATIONS = ("top", "drop-top", "drop-field", "add", "field", "field-text", "nik-digit",
             "image-bytes", "nest", "none")


def mutate(record: dict[str, Any], kind: str, pick: random.Random, value: Any) -> None:
    """One near-miss of *kind*; *pick* chooses where, *value* is what goes there."""
    fields = record.get("fields")
    if not isinstance(fields, dict):
        fields = record["fields"] = {}  # an earlier mutation replaced them
    if kind == "top":
        record[pick.choice(sorted(record))] = value
    elif kind == "drop-top":
        record.pop(pick.choice(sorted(record)))
    elif kind == "drop-field" and fields:
        fields.pop(pick.choice(sorted(fields)))
    elif kind == "add":
        record[str(value)[:12]] = value
    elif kind == "field":
        fields[pick.choice(FIELD_NAMES)] = value
    elif kind == "field-text":
        fields[pick.choice(FIELD_NAMES)] = str(value) * pick.randint(1, 4)
    elif kind == "nik-digit":
        nik = list(str(record.get("nik", "")).ljust(16, "0"))
        nik[pick.randrange(16)] = pick.choice("0123456789x")
        record["nik"] = "".join(nik)
    elif kind == "image-bytes":
        key = pick.choice(("photo_jpeg", "signature_png"))
        record[key] = _damaged(BASES[0][key], pick)
    elif kind == "nest":
        nested = value
        for _ in range(pick.randint(1, 40)):
            nested = [nested]
        record[pick.choice(("fields", "sig", "extra"))] = nested


def _damaged(image_b64: str, pick: random.Random) -> str:
    raw = bytearray(base64.b64decode(image_b64))
    if pick.random() < 0.5:
        del raw[pick.randrange(len(raw)):]
    else:
        for _ in range(pick.randint(1, 8)):
            raw[pick.randrange(len(raw))] = pick.randrange(256)
    return base64.b64encode(raw).decode("ascii")


@FUZZ
@given(base=st.sampled_from(BASES),
       changes=st.lists(st.tuples(st.sampled_from(MUTATIONS), NASTY_VALUE), max_size=3),
       signing=st.sampled_from(["none", "signed", "signed-then-changed"]),
       pick=st.randoms(use_true_random=False), ascii_only=st.booleans())
def test_near_valid_records_are_a_record_or_rejected(
    base: dict, changes: list[tuple[str, Any]], signing: str, pick: random.Random,
    ascii_only: bool,
) -> None:
    record = json.loads(json.dumps(base))
    for kind, value in changes:
        mutate(record, kind, pick, value)
    if signing != "none":
        with contextlib.suppress(TypeError, ValueError, UnicodeEncodeError):  # not signable
            record = sign_record(record, KEY)
        if signing == "signed-then-changed":
            mutate(record, pick.choice(MUTATIONS), pick, pick.choice(NASTY))
    payload = json.dumps(record, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    if pick.random() < 0.1:  # sometimes damage the bytes themselves
        damaged = bytearray(payload)
        damaged[pick.randrange(len(damaged))] = pick.randrange(256)
        payload = bytes(damaged)
    result = outcome(payload, None if signing == "none" else VERIFIER)
    untouched = all(kind == "none" for kind, _ in changes) and signing != "signed-then-changed"
    if untouched and payload == json.dumps(record, ensure_ascii=ascii_only).encode():
        assert isinstance(result, Record), result  # an untouched record stays valid


# -- the Evolis host stream (what the printer, and its simulator, parse) --------------------

SMALL = Geometry(16, 4)  # a Db payload of a few bytes, so random streams complete some
PARAM = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789"), max_size=6)
TRICKY = [b"\x1b", b"\r", b";", b"\x00", b"\x1bDb;k;2;", b"\x1bDb;k;9;", b"\x1bDbc;k;2;3;",
          b"\x1bDbc;k;2;x;", b"\x1bDbc;k;2;99999999;", b"\x1b" + b"A" * 300, b"\x1bSs\r"]


@st.composite
def framed(draw: st.DrawFn) -> tuple[bytes, Command]:
    """One well-formed command and what the parser must make of it."""
    kind = draw(st.sampled_from(["plain", "db", "dbc"]))
    panel = draw(st.sampled_from("ymcko"))
    if kind == "plain":
        name = draw(st.sampled_from(["Pem", "Pr", "Pmi", "Ss", "Sr", "Se", "Rfv", "Sk", "Rlr"]))
        params = tuple(draw(st.lists(PARAM, max_size=3)))
        return evolis.command(name, *params), Command(name, params)
    if kind == "db":
        code = draw(st.sampled_from([2, 32, 64, 128]))
        size = SMALL.panel_bytes(evolis.bits_per_pixel(code))
        payload = draw(st.binary(min_size=size, max_size=size))
        return evolis.download(panel, code, payload), Command("Db", (panel, str(code)), payload)
    payload = draw(st.binary(max_size=60))
    frame = evolis.download_compressed(panel, payload)
    return frame, Command("Dbc", (panel, "2", str(len(payload))), payload)


@FUZZ
@given(items=st.lists(st.tuples(st.binary(max_size=16) | st.sampled_from(TRICKY), framed()),
                      min_size=1, max_size=6),
       clean=st.booleans(), pick=st.randoms(use_true_random=False))
def test_host_stream_parses_alike_in_any_chunks_and_framed_commands_come_out(
    items: list[tuple[bytes, tuple[bytes, Command]]], clean: bool, pick: random.Random
) -> None:
    """Noise then a command, again and again. Whatever the noise, the parser never raises
    and any chunking gives what the whole stream gives; noise without ESC (line noise on
    an idle link) costs no command."""
    noises = [noise.replace(evolis.ESC, b"") if clean else noise for noise, _ in items]
    frames = [frame for _, (frame, _) in items]
    stream = b"".join(noise + frame for noise, frame in zip(noises, frames, strict=True))
    whole = StreamParser(SMALL).feed(stream)
    parser = StreamParser(SMALL)
    pieces: list[Command] = []
    position = 0
    while position < len(stream):
        size = pick.choice((1, 2, 3, 7, 64, 4096))
        pieces += parser.feed(stream[position:position + size])
        position += size
    assert pieces == whole
    assert all(isinstance(cmd, Command) and isinstance(cmd.name, str) for cmd in whole)
    if clean:
        assert whole == [cmd for _, (_, cmd) in items]
        assert not parser.busy


# -- the tray board's sentences -----------------------------------------------------------

FIELD_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E,
                                   exclude_characters="$*,!\\^~"), max_size=9)
FRAME_FIELD = st.one_of(
    st.integers(-(10**8) + 1, 10**8 - 1).map(str),
    st.sampled_from(["0", "1", "-1", "65535", "65536", "-0", "01", "+1", "1e3", " 1", ""]),
    FIELD_TEXT,
)
FRAME_LINE = st.lists(FRAME_FIELD, min_size=4, max_size=7).map(
    lambda fields: nmea.build("PKSKT", *fields))


@FUZZ
@given(st.one_of(
    st.binary(max_size=100),
    st.binary(max_size=90).map(lambda raw: b"$" + raw),
    FRAME_LINE,
    st.tuples(FRAME_LINE, st.integers(0, 80), st.integers(0, 255)).map(
        lambda damage: damage[0][:damage[1]] + bytes([damage[2]]) + damage[0][damage[1] + 1:]),
))
def test_any_tray_line_is_a_frame_or_a_documented_error(line: bytes) -> None:
    """What the tray link does with each line: ``nmea.parse``, then ``parse_frame`` for
    ``$PKSKT``; only NmeaError and ValueError may come out."""
    try:
        head, fields = nmea.parse(line)
    except nmea.NmeaError:
        return
    assert head and all(isinstance(field, str) for field in fields)
    if head != "PKSKT":
        return
    try:
        frame = parse_frame(fields, 0.0)
    except ValueError:
        return
    assert isinstance(frame, TrayFrame) and 0 <= frame.seq < 65536


def test_the_starting_points_are_valid() -> None:
    """The near-miss properties would be vacuous if what they start from were invalid."""
    for base in BASES:
        assert isinstance(outcome(json.dumps(sign_record(base, KEY)).encode(), VERIFIER), Record)
    assert isinstance(parse_frame(nmea.parse(nmea.build("PKSKT", 1, 760, 0, 0, 0, 215))[1],
                                  0.0), TrayFrame)
