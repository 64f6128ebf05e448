"""Validation of incoming print-ready records (kiosk.contract.record) and the sample records."""

from __future__ import annotations

import base64
import copy
import io
import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from kiosk.contract.record import (
    FIELD_MAX_CHARS,
    FIELD_NAMES,
    MAX_FIELD_CHARS,
    PHOTO_MAX_BYTES,
    SIGNATURE_MAX_BYTES,
    Record,
    Rejected,
    mask_nik,
    parse_record,
    record_summary,
)
from kiosk.contract.signing import Verifier
from kiosk.sim import samples

SEEDS = Path(__file__).resolve().parents[2] / "seeds" / "records.jsonl"
TODAY = date(2024, 6, 1)
RID = "demo-3210-000001"


def limit(name: str) -> int:
    return FIELD_MAX_CHARS.get(name, MAX_FIELD_CHARS)


def base() -> dict[str, Any]:
    """A valid record with known personal fields: a man born 1990-03-12."""
    record = samples.make_record(1)
    record["nik"] = "3210071203900001"
    record["fields"].update(tanggal_lahir="1990-03-12", jenis_kelamin="LAKI-LAKI")
    return record


def encode(obj: object) -> bytes:
    return json.dumps(obj).encode("ascii")  # \u escapes can carry lone surrogates


def parse(obj: object, **kwargs: Any) -> Record:
    return parse_record(encode(obj), today=TODAY, **kwargs)


def rejection(obj: object) -> Rejected:
    with pytest.raises(Rejected) as info:
        parse(obj)
    return info.value


def image_b64(fmt: str, size: tuple[int, int], pad: int = 0) -> str:
    out = io.BytesIO()
    Image.new("RGB" if fmt == "JPEG" else "L", size, 128).save(out, fmt)
    return base64.b64encode(out.getvalue() + b"\0" * pad).decode("ascii")


def test_valid_record_round_trips_into_record() -> None:
    obj = base()
    record = parse(obj)
    assert record.record_id == RID
    assert record.nik == "3210071203900001"
    assert dict(record.fields) == obj["fields"]
    assert list(record.fields) == list(FIELD_NAMES)
    assert record.photo_jpeg == base64.b64decode(obj["photo_jpeg"])
    assert record.photo_jpeg.startswith(b"\xff\xd8\xff")
    assert record.signature_png == base64.b64decode(obj["signature_png"])
    assert record.priority == obj["priority"]
    assert record.sig is None


def test_priority_defaults_to_zero_and_sig_is_kept() -> None:
    obj = base()
    del obj["priority"]
    obj["sig"] = {"alg": "ed25519", "key_id": "0123456789abcdef", "value": "AAAA"}
    record = parse(obj)
    assert record.priority == 0
    assert record.sig == obj["sig"]


def test_woman_nik_carries_day_plus_40() -> None:
    obj = base()
    obj["fields"]["jenis_kelamin"] = "PEREMPUAN"
    obj["nik"] = "3210075203900001"
    assert parse(obj).fields["jenis_kelamin"] == "PEREMPUAN"


Mutator = Callable[[dict[str, Any]], object]


def setf(name: str, value: object) -> Mutator:
    return lambda r: r["fields"].__setitem__(name, value)


def settop(name: str, value: object) -> Mutator:
    return lambda r: r.__setitem__(name, value)


def deep(levels: int) -> object:
    value: object = "x"
    for _ in range(levels):
        value = {"a": value}
    return value


INVALID: list[tuple[str, Mutator, str]] = [
    *[(f"missing {n}", lambda r, n=n: r["fields"].pop(n), f"fields.{n}: missing")
      for n in FIELD_NAMES],
    *[(f"int {n}", setf(n, 5), f"fields.{n}: not a string (int)") for n in FIELD_NAMES],
    *[(f"null {n}", setf(n, None), f"fields.{n}: not a string (NoneType)") for n in FIELD_NAMES],
    *[(f"empty {n}", setf(n, " "), f"fields.{n}: empty") for n in FIELD_NAMES],
    *[(f"long {n}", setf(n, "A" * (limit(n) + 1)),
       f"fields.{n}: {limit(n) + 1} characters, over {limit(n)}") for n in FIELD_NAMES],
    ("control char", setf("nama", "SITI\nAMINAH"), "fields.nama: contains control"),
    ("lone surrogate", setf("alamat", "JL. \ud800"), "fields.alamat: contains control"),
    ("unknown field", setf("hobi", "X"), "fields.'hobi': unknown field"),
    ("fields list", settop("fields", []), "fields: not an object"),
    *[(f"missing {k}", lambda r, k=k: r.pop(k), f"{k}: missing")
      for k in ("record_id", "nik", "fields", "photo_jpeg", "signature_png")],
    ("unknown top key", settop("extra", 1), "'extra': unknown top-level key"),
    ("record_id space", settop("record_id", "a b"), "record_id: not 1-64 of"),
    ("record_id 65", settop("record_id", "a" * 65), "record_id: not 1-64 of"),
    ("record_id empty", settop("record_id", ""), "record_id: not 1-64 of"),
    ("record_id int", settop("record_id", 7), "record_id: not a string (int)"),
    ("nik 15", settop("nik", "321007120390001"), "nik: not 16 digits"),
    ("nik 17", settop("nik", "32100712039000011"), "nik: not 16 digits"),
    ("nik letters", settop("nik", "32100712039000AB"), "nik: not 16 digits"),
    ("nik fullwidth", settop("nik", "３２１００７１２０３９０００１"), "nik: not 16 digits"),
    ("nik newline", settop("nik", "3210071203900001\n"), "nik: not 16 digits"),
    ("nik int", settop("nik", 3210071203900001), "nik: not a string (int)"),
    ("rt_rw short", setf("rt_rw", "01/002"), "fields.rt_rw: not NNN/NNN"),
    ("rt_rw dash", setf("rt_rw", "001-002"), "fields.rt_rw: not NNN/NNN"),
    ("gol_darah", setf("gol_darah", "A+"), "fields.gol_darah: not one of A|B|AB|O|-"),
    ("jenis_kelamin", setf("jenis_kelamin", "L"), "fields.jenis_kelamin: not one of"),
    ("lower sex", setf("jenis_kelamin", "perempuan"), "fields.jenis_kelamin: not one of"),
    ("date format", setf("tanggal_lahir", "12-03-1990"), "fields.tanggal_lahir: not a date"),
    ("date short", setf("tanggal_lahir", "1990-3-12"), "fields.tanggal_lahir: not a date"),
    ("date compact", setf("tanggal_lahir", "19900312"), "fields.tanggal_lahir: not a date"),
    ("feb 30", setf("tanggal_lahir", "1990-02-30"), "fields.tanggal_lahir: not a calendar"),
    ("month 13", setf("tanggal_terbit", "2016-13-01"), "fields.tanggal_terbit: not a calendar"),
    ("future", setf("tanggal_lahir", "2024-06-02"), "fields.tanggal_lahir: in the future"),
    ("too old", setf("tanggal_lahir", "1899-12-31"), "fields.tanggal_lahir: before 1900"),
    ("issued early", setf("tanggal_terbit", "1990-03-11"), "fields.tanggal_terbit: before"),
    ("priority bool", settop("priority", True), "priority: not an integer (bool)"),
    ("priority float", settop("priority", 1.0), "priority: not an integer (float)"),
    ("priority str", settop("priority", "1"), "priority: not an integer (str)"),
    ("priority null", settop("priority", None), "priority: not an integer (NoneType)"),
    ("priority high", settop("priority", 1001), "priority: outside -1000..1000"),
    ("priority low", settop("priority", -1001), "priority: outside -1000..1000"),
    ("photo int", settop("photo_jpeg", 1), "photo_jpeg: not a string (int)"),
    ("sig list", settop("sig", []), "sig: not an object"),
    ("sig alg int", settop("sig", {"alg": 1, "key_id": "k", "value": "v"}), "sig.alg: not a"),
    ("sig missing", settop("sig", {"alg": "ed25519", "key_id": "k"}), "sig.value: missing"),
    ("sig extra", settop("sig", {"alg": "a", "key_id": "k", "value": "v", "x": "y"}),
     "sig.'x': unknown key"),
]


@pytest.mark.parametrize(("mutate", "detail"), [(m, d) for _, m, d in INVALID],
                         ids=[name for name, _, _ in INVALID])
def test_invalid_field(mutate: Mutator, detail: str) -> None:
    obj = base()
    mutate(obj)
    rejected = rejection(obj)
    assert (rejected.code, rejected.detail[: len(detail)]) == ("invalid-field", detail)


NIK_MISMATCH = [
    ("day", "LAKI-LAKI", "3210071303900001", "birth-day digits (7-8) disagree"),
    ("woman day", "PEREMPUAN", "3210075303900001", "disagree with tanggal_lahir (day + 40"),
    ("month", "LAKI-LAKI", "3210071204900001", "birth-month digits (9-10) disagree"),
    ("year", "LAKI-LAKI", "3210071203910001", "birth-year digits (11-12) disagree"),
    ("century", "LAKI-LAKI", "3210071203190001", "birth-year digits (11-12) disagree"),
    ("man as woman", "LAKI-LAKI", "3210075203900001", "encode PEREMPUAN, jenis_kelamin is LAKI"),
    ("woman as man", "PEREMPUAN", "3210071203900001", "encode LAKI-LAKI, jenis_kelamin is PER"),
]


@pytest.mark.parametrize(("sex", "nik", "detail"), [c[1:] for c in NIK_MISMATCH],
                         ids=[c[0] for c in NIK_MISMATCH])
def test_nik_mismatch(sex: str, nik: str, detail: str) -> None:
    obj = base()
    obj["fields"]["jenis_kelamin"] = sex
    obj["nik"] = nik
    rejected = rejection(obj)
    assert rejected.code == "nik-mismatch"
    assert rejected.detail.startswith("nik: ") and detail in rejected.detail
    assert rejected.record_id == RID


def test_nik_region_is_not_checked() -> None:
    obj = base()
    obj["nik"] = "9999991203900001"
    assert parse(obj).nik == "9999991203900001"


SIG_PNG = samples.make_record(1)["signature_png"]
BAD_IMAGE = [
    ("photo not base64", "photo_jpeg", "!!!!", "photo_jpeg: not base64"),
    ("photo whitespace", "photo_jpeg", "/9j/ 4AAQ", "photo_jpeg: not base64"),
    ("photo non-ascii", "photo_jpeg", "/9j/é", "photo_jpeg: not base64"),
    ("photo padding", "photo_jpeg", "/9j/4A", "photo_jpeg: not base64"),
    ("photo empty", "photo_jpeg", "", "photo_jpeg: not a JPEG (magic bytes)"),
    ("png as photo", "photo_jpeg", SIG_PNG, "photo_jpeg: not a JPEG (magic bytes)"),
    ("jpeg as signature", "signature_png", image_b64("JPEG", (10, 10)),
     "signature_png: not a PNG (magic bytes)"),
    ("photo junk header", "photo_jpeg", base64.b64encode(b"\xff\xd8\xff" + b"junk" * 9).decode(),
     "photo_jpeg: unreadable JPEG header"),
    ("signature junk header", "signature_png",
     base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"junk" * 9).decode(),
     "signature_png: unreadable PNG header"),
    ("photo oversized", "photo_jpeg", image_b64("JPEG", (30, 40), pad=PHOTO_MAX_BYTES),
     "photo_jpeg: "),
    ("signature oversized", "signature_png", image_b64("PNG", (30, 40), pad=SIGNATURE_MAX_BYTES),
     "signature_png: "),
    ("photo too wide", "photo_jpeg", image_b64("JPEG", (2001, 8)),
     "photo_jpeg: 2001x8 px, over 2000 a side"),
    ("signature too tall", "signature_png", image_b64("PNG", (8, 2001)),
     "signature_png: 8x2001 px, over 2000 a side"),
]


@pytest.mark.parametrize(("key", "value", "detail"), [c[1:] for c in BAD_IMAGE],
                         ids=[c[0] for c in BAD_IMAGE])
def test_bad_image(key: str, value: str, detail: str) -> None:
    obj = base()
    obj[key] = value
    rejected = rejection(obj)
    assert (rejected.code, rejected.detail[: len(detail)]) == ("bad-image", detail)
    assert rejected.record_id == RID


def test_oversized_image_detail_gives_sizes() -> None:
    obj = base()
    obj["photo_jpeg"] = image_b64("JPEG", (30, 40), pad=PHOTO_MAX_BYTES)
    assert rejection(obj).detail.endswith(f"bytes, over {PHOTO_MAX_BYTES}")


def test_images_at_the_limits_pass() -> None:
    obj = base()
    obj["photo_jpeg"] = image_b64("JPEG", (2000, 2000))
    obj["signature_png"] = image_b64("PNG", (2000, 1))
    assert parse(obj).photo_jpeg.startswith(b"\xff\xd8")


# -- images that promise more than they hold (decoded in full on arrival) -------------------


def encoded(image: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def noise(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    return Image.effect_noise(size, 40).convert(mode)


def scrawl(size: tuple[int, int] = (400, 120)) -> Image.Image:
    """A signature-like image: dark strokes on white (it compresses as signatures do)."""
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    for step in range(0, size[0], 7):
        draw.line([(step, 10 + step % 90), (step + 30, size[1] - 10 - step % 70)], fill=0, width=2)
    return image


def with_jpeg_size(data: bytes, width: int, height: int) -> bytes:
    """*data* with its frame header (SOF0) saying width x height."""
    sof = data.index(b"\xff\xc0")
    return (data[:sof + 5] + height.to_bytes(2, "big") + width.to_bytes(2, "big")
            + data[sof + 9:])


def cut_png(data: bytes) -> bytes:
    """The PNG cut inside its image data, then closed with IEND as if it were whole."""
    return data[:len(data) // 2] + data[-12:]


def big_jpeg_cut(keep: int) -> bytes:
    """A 2000 x 2000 JPEG of which only the first *keep* bytes arrived."""
    return encoded(noise((2000, 2000)), "JPEG", quality=20)[:keep]


BROKEN_IMAGES = [
    ("jpeg says 2000x2000, holds 64x64", "photo_jpeg",
     lambda: with_jpeg_size(encoded(noise((64, 64)), "JPEG"), 2000, 2000)),
    ("jpeg cut short", "photo_jpeg", lambda: big_jpeg_cut(40_000)),
    ("jpeg cut short, then EOI", "photo_jpeg", lambda: big_jpeg_cut(40_000) + b"\xff\xd9"),
    ("progressive jpeg cut short, then EOI", "photo_jpeg",
     lambda: encoded(noise((400, 500)), "JPEG", progressive=True)[:20_000] + b"\xff\xd9"),
    ("jpeg with its scan overwritten", "photo_jpeg",
     lambda: (lambda d: d[:-3000] + b"\x00" * 2998 + d[-2:])(
         encoded(noise((300, 400)), "JPEG"))),
    ("png cut short", "signature_png",
     lambda: (lambda d: d[:len(d) // 2])(encoded(scrawl(), "PNG"))),
    ("png cut short, then IEND", "signature_png",
     lambda: cut_png(encoded(scrawl(), "PNG"))),
]


@pytest.mark.parametrize(("key", "make"), [c[1:] for c in BROKEN_IMAGES],
                         ids=[c[0] for c in BROKEN_IMAGES])
def test_an_image_that_does_not_decode_in_full_is_bad_image(key: str, make) -> None:
    data = make()
    assert len(data) <= (PHOTO_MAX_BYTES if key == "photo_jpeg" else SIGNATURE_MAX_BYTES)
    with Image.open(io.BytesIO(data)) as header:  # its header alone looks fine
        assert max(header.size) <= 2000
    obj = base()
    obj[key] = base64.b64encode(data).decode("ascii")
    rejected = rejection(obj)
    assert rejected.code == "bad-image"
    assert rejected.detail.startswith(f"{key}: does not decode in full (")
    assert rejected.record_id == RID


def test_a_record_read_again_to_be_drawn_skips_only_the_full_decode() -> None:
    """The renderer reads records that passed in full on arrival: it skips the pixels,
    never the other checks."""
    obj = base()
    obj["photo_jpeg"] = base64.b64encode(big_jpeg_cut(40_000)).decode("ascii")
    payload = encode(obj)
    with pytest.raises(Rejected):
        parse_record(payload, today=TODAY)
    assert parse_record(payload, today=TODAY, decode_images=False).record_id == RID
    obj["photo_jpeg"] = base64.b64encode(b"not a jpeg at all").decode("ascii")
    with pytest.raises(Rejected) as info:
        parse_record(encode(obj), today=TODAY, decode_images=False)
    assert info.value.code == "bad-image"


@pytest.mark.parametrize(("mode", "progressive"), [
    ("RGB", False), ("RGB", True), ("L", False), ("CMYK", False)])
def test_whole_photos_of_every_kind_pass(mode: str, progressive: bool) -> None:
    obj = base()
    obj["photo_jpeg"] = base64.b64encode(
        encoded(noise((300, 400), mode), "JPEG", progressive=progressive)).decode("ascii")
    obj["signature_png"] = base64.b64encode(encoded(scrawl(), "PNG")).decode("ascii")
    assert parse(obj).photo_jpeg.startswith(b"\xff\xd8")


@pytest.mark.parametrize(("payload", "code", "detail"), [
    (b"{", "not-json", "Expecting property name"),
    (b"", "not-json", "Expecting value"),
    (b"\xff\xfe{}", "not-json", "not UTF-8 (byte 0)"),
    (b'{"a": "\xc3"}', "not-json", "not UTF-8 (byte 7)"),
    (b'{"priority": NaN}', "not-json", "NaN is not JSON"),
    (b'{"priority": -Infinity}', "not-json", "-Infinity is not JSON"),
    (b'{"nik": "1", "nik": "2"}', "not-json", "duplicate key 'nik'"),
    (b'{"priority": ' + b"9" * 5000 + b"}", "not-json", "Exceeds the limit"),
    (b"[]", "not-object", "payload is a JSON list, not an object"),
    (b'"x"', "not-object", "payload is a JSON str, not an object"),
    (b"null", "not-object", "payload is a JSON NoneType, not an object"),
    (b"[" * 100_000 + b"]" * 100_000, "too-deep", "JSON nests deeper than 8 levels"),
    (b"{}", "unknown-schema", "schema is not 'ektp.record/1'"),
    (b'{"schema": "ektp.record/2"}', "unknown-schema", "schema is not 'ektp.record/1'"),
    (b'{"schema": 1}', "unknown-schema", "schema is not 'ektp.record/1'"),
])
def test_payload_level_rejections(payload: bytes, code: str, detail: str) -> None:
    with pytest.raises(Rejected) as info:
        parse_record(payload, today=TODAY)
    assert info.value.code == code
    assert detail in info.value.detail
    assert info.value.record_id is None


def test_too_large_is_checked_before_parsing() -> None:
    with pytest.raises(Rejected) as info:
        parse_record(b"{" * (256 * 1024 + 1))
    assert (info.value.code, info.value.detail) == (
        "too-large", "payload is 262145 bytes, over 262144")
    payload = encode(base())
    with pytest.raises(Rejected) as info:
        parse_record(payload, max_bytes=len(payload) - 1)
    assert info.value.code == "too-large"
    assert parse_record(payload, max_bytes=len(payload)).record_id == RID


def test_deep_nesting_is_too_deep_and_keeps_record_id() -> None:
    obj = base()
    obj["extra"] = deep(8)  # the record object + 8 nested objects = 9 levels
    rejected = rejection(obj)
    assert (rejected.code, rejected.record_id) == ("too-deep", RID)
    obj["extra"] = deep(7)  # 8 levels are allowed: now the unknown key is the problem
    assert rejection(obj).code == "invalid-field"


@pytest.mark.parametrize(("record_id", "expected"), [
    (RID, RID), ("a" * 64, "a" * 64), ("A.b_c-9", "A.b_c-9"),
    ("a" * 65, None), ("", None), ("bad id", None), ("ümlaut", None), (42, None),
])
def test_record_id_is_carried_only_when_well_formed(record_id: object, expected: str | None,
                                                    ) -> None:
    obj = base()
    obj["record_id"] = record_id
    obj["nik"] = "123"
    assert rejection(obj).record_id == expected
    obj["schema"] = "other"
    assert rejection(obj).record_id == expected


def test_mask_nik_and_summary() -> None:
    assert mask_nik("3210071203900001") == "************0001"
    assert mask_nik("1234") == "****"
    record = parse(base())
    summary = record_summary(record)
    assert summary == {"record_id": RID, "nik": "************0001"}


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                               max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_give_record_or_rejected(payload: bytes) -> None:
    try:
        assert isinstance(parse_record(payload), Record)
    except Rejected as rejected:
        assert rejected.code and rejected.detail


VALID = base()
PERMISSIVE = Verifier([Ed25519PrivateKey.generate().public_key()], required=False)
TOP_KEYS = [*VALID.keys(), "sig", "extra"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from([*TOP_KEYS, *(f"fields.{n}" for n in FIELD_NAMES)]), value=JSON)
def test_any_value_anywhere_gives_record_or_rejected(key: str, value: object) -> None:
    obj = copy.deepcopy(VALID)
    where, _, name = key.rpartition(".")
    (obj["fields"] if where else obj)[name] = value
    for verifier in (None, PERMISSIVE):
        try:
            parse_record(json.dumps(obj).encode(), today=TODAY, verifier=verifier)
        except Rejected as rejected:
            assert rejected.record_id in (RID, None)


# -- sample records -------------------------------------------------------------------------


def test_two_hundred_samples_validate_within_limits() -> None:
    women = 0
    for obj in samples.iter_records(200):
        record = parse_record(encode(obj))
        assert len(record.photo_jpeg) <= PHOTO_MAX_BYTES
        assert len(record.signature_png) <= SIGNATURE_MAX_BYTES
        assert " CONTOH " in record.fields["nama"]
        assert record.fields["kabupaten"] == "MAJALENGKA"
        women += record.fields["jenis_kelamin"] == "PEREMPUAN"
        assert (int(record.nik[6:8]) > 40) == (record.fields["jenis_kelamin"] == "PEREMPUAN")
    assert 60 < women < 140


def test_samples_are_deterministic_and_seeded() -> None:
    assert samples.make_record(17) == samples.make_record(17)
    assert samples.make_record(17)["record_id"] == "demo-3210-000017"
    other = samples.make_record(17, seed=3, district="3211")
    assert other["record_id"] == "demo-3211-s3-000017"
    assert other["nik"].startswith("3211")
    assert other["fields"] != samples.make_record(17)["fields"]
    with pytest.raises(ValueError, match="4 digits"):
        samples.make_record(1, district="32")


def test_sample_photo_is_head_and_shoulders_size() -> None:
    record = parse(samples.make_record(2))
    with Image.open(io.BytesIO(record.photo_jpeg)) as img:
        assert img.size == samples.PHOTO_SIZE


def test_write_jsonl_and_main(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    assert samples.write_jsonl(path, 3, start=5) == 3
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == list(samples.iter_records(3, start=5))
    assert samples.main(["--count", "3", "--start", "5", "--out", str(tmp_path / "m")]) == 0
    assert (tmp_path / "m").read_text(encoding="utf-8").splitlines() == lines


def test_seed_file_matches_the_generator() -> None:
    lines = SEEDS.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 12
    for index, line in enumerate(lines, start=1):
        record = parse_record(line.encode("utf-8"))
        expected = samples.make_record(index)
        assert "sig" not in json.loads(line)
        assert record.record_id == expected["record_id"]
        assert record.nik == expected["nik"]
        assert dict(record.fields) == expected["fields"]
