"""The KIA record (kiosk.contract.kia, mqtt.md "The KIA record") and the one entry point
for a job of any document (kiosk.contract.documents.parse_job)."""

from __future__ import annotations

import base64
import copy
import io
import json
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image

from kiosk.contract import kia
from kiosk.contract.documents import (
    DOCUMENTS,
    check_documents,
    document_of,
    parse_job,
)
from kiosk.contract.kia import FIELD_MAX_CHARS, FIELD_NAMES, KiaRecord, birthday, valid_until
from kiosk.contract.record import Record, Rejected
from kiosk.contract.signing import Verifier, sign_record
from kiosk.sim import samples

SEEDS = Path(__file__).resolve().parents[2] / "seeds" / "kia-records.jsonl"
TODAY = date(2024, 6, 1)
ISSUED = date(2024, 3, 12)
KEY = Ed25519PrivateKey.generate()


def kia_record(born: date = date(2015, 8, 17), sex: str = "PEREMPUAN",
               issued: date = ISSUED) -> dict[str, Any]:
    """A valid KIA record of a child born on `born`, issued on `issued`."""
    record = samples.make_kia_record(1)
    day = born.day + (40 if sex == "PEREMPUAN" else 0)
    record["nik"] = f"321007{day:02d}{born.month:02d}{born.year % 100:02d}0001"
    record["fields"].update(tanggal_lahir=born.isoformat(), jenis_kelamin=sex,
                            tanggal_terbit=issued.isoformat(),
                            berlaku_hingga=valid_until(born).isoformat())
    record.pop("photo_jpeg", None)
    if kia.needs_photo(born, issued):
        record["photo_jpeg"] = samples.make_record(1)["photo_jpeg"]
    return record


def encode(obj: object) -> bytes:
    return json.dumps(obj).encode("ascii")


def parse(obj: object, documents: tuple[str, ...] = ("kia",), **kwargs: Any) -> Any:
    return parse_job(encode(obj), documents=documents, today=TODAY, **kwargs)


def rejection(obj: object, **kwargs: Any) -> Rejected:
    with pytest.raises(Rejected) as info:
        parse(obj, **kwargs)
    return info.value


def png_b64(size: tuple[int, int] = (200, 80), pad: int = 0) -> str:
    out = io.BytesIO()
    Image.new("L", size, 255).save(out, "PNG")
    return base64.b64encode(out.getvalue() + b"\0" * pad).decode("ascii")


# -- a valid record -----------------------------------------------------------------------


def test_valid_record_with_photo_round_trips() -> None:
    obj = kia_record()
    record = parse(obj)
    assert isinstance(record, KiaRecord) and record.document == "kia"
    assert record.record_id == obj["record_id"] and record.nik == obj["nik"]
    assert dict(record.fields) == obj["fields"] and list(record.fields) == list(FIELD_NAMES)
    assert record.photo_jpeg == base64.b64decode(obj["photo_jpeg"])
    assert record.pejabat.nama == obj["pejabat"]["nama"]
    assert record.pejabat.nip == obj["pejabat"]["nip"]
    assert record.pejabat.signature_png == base64.b64decode(obj["pejabat"]["signature_png"])
    assert (record.priority, record.sig) == (0, None)


def test_a_child_under_five_has_no_photo() -> None:
    record = parse(kia_record(born=date(2021, 1, 5)))
    assert record.photo_jpeg is None


# -- the entry point: schema and document -------------------------------------------------


def test_each_station_takes_its_own_documents_and_refuses_the_other() -> None:
    ektp, kia_obj = samples.make_record(1), kia_record()
    assert isinstance(parse(ektp, ("ektp",)), Record)
    assert isinstance(parse(kia_obj, ("kia",)), KiaRecord)
    for obj, documents in ((kia_obj, ("ektp",)), (ektp, ("kia",))):
        rejected = rejection(obj, documents=documents)
        assert rejected.code == "wrong-document"
        assert rejected.record_id == obj["record_id"]
        assert f"this station prints {documents[0]}" in rejected.detail
    both = ("ektp", "kia")
    assert isinstance(parse(ektp, both), Record) and isinstance(parse(kia_obj, both), KiaRecord)


def test_the_default_station_prints_the_ektp_only() -> None:
    with pytest.raises(Rejected, match="wrong-document"):
        parse_job(encode(kia_record()), today=TODAY)
    assert isinstance(parse_job(encode(samples.make_record(1)), today=TODAY), Record)


def test_wrong_document_comes_before_the_signature_and_the_fields() -> None:
    """The district re-routes a wrong-document record: it is not reported as unsigned or
    invalid by a station that cannot print it anyway."""
    obj = kia_record()
    obj["fields"]["no_kk"] = "x"
    verifier = Verifier([KEY.public_key()], required=True)
    assert rejection(obj, documents=("ektp",), verifier=verifier).code == "wrong-document"


def test_unknown_schema_names_the_known_ones() -> None:
    obj = kia_record()
    obj["schema"] = "kia.record/2"
    rejected = rejection(obj, documents=DOCUMENTS)
    assert rejected.code == "unknown-schema"
    assert "'ektp.record/1' or 'kia.record/1'" in rejected.detail
    assert rejected.record_id == obj["record_id"]


def test_payload_level_rejections_hold_for_the_kia() -> None:
    obj = kia_record()
    obj["pad"] = "x" * (256 * 1024)
    assert rejection(obj).code == "too-large"
    with pytest.raises(Rejected, match="not-json"):
        parse_job(b"{", documents=("kia",))


@pytest.mark.parametrize(("documents", "problem"), [
    ("ektp", "must be a list"), ((), "is empty"), (("ektp", "sim"), "unknown document 'sim'"),
    (("kia", "kia"), "twice")])
def test_a_bad_documents_setting_is_a_clear_error(documents: Any, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        check_documents(documents)
    with pytest.raises(ValueError, match=problem):
        parse_job(encode(kia_record()), documents=documents)


def test_document_of_reads_the_schema_alone() -> None:
    assert document_of(kia_record()) == "kia"
    assert document_of(samples.make_record(1)) == "ektp"
    assert document_of({"schema": 3}) is None and document_of([]) is None


# -- signatures: exactly as for the E-KTP -------------------------------------------------


def test_signatures_are_checked_as_for_the_ektp() -> None:
    verifier = Verifier([KEY.public_key()], required=True)
    signed = sign_record(kia_record(), KEY)
    assert isinstance(parse(signed, verifier=verifier), KiaRecord)
    changed = copy.deepcopy(signed)
    changed["pejabat"]["nip"] = "197203151998031006"
    assert rejection(changed, verifier=verifier).code == "bad-signature"
    assert rejection(kia_record(), verifier=verifier).code == "unsigned"
    other = sign_record(kia_record(), Ed25519PrivateKey.generate())
    assert rejection(other, verifier=verifier).code == "unknown-key"


# -- field by field -----------------------------------------------------------------------

Mutator = Callable[[dict[str, Any]], object]


def setf(name: str, value: object) -> Mutator:
    return lambda r: r["fields"].__setitem__(name, value)


def setp(name: str, value: object) -> Mutator:
    return lambda r: r["pejabat"].__setitem__(name, value)


def limit(name: str) -> int:
    return FIELD_MAX_CHARS.get(name, 200)


TEXT_LIMITED = [n for n in FIELD_NAMES if n in FIELD_MAX_CHARS and n not in (
    "jenis_kelamin", "gol_darah")]
INVALID: list[tuple[str, Mutator, str]] = [
    *[(f"missing {n}", lambda r, n=n: r["fields"].pop(n), f"fields.{n}: missing")
      for n in FIELD_NAMES],
    *[(f"int {n}", setf(n, 5), f"fields.{n}: not a string (int)") for n in FIELD_NAMES],
    *[(f"empty {n}", setf(n, " "), f"fields.{n}: empty") for n in FIELD_NAMES],
    *[(f"long {n}", setf(n, "A" * (limit(n) + 1)),
       f"fields.{n}: {limit(n) + 1} characters, over {limit(n)}") for n in TEXT_LIMITED],
    ("control char", setf("nama", "SITI\nAMINAH"), "fields.nama: contains control"),
    ("unknown field", setf("pekerjaan", "PELAJAR"), "fields.'pekerjaan': unknown field"),
    ("fields list", lambda r: r.__setitem__("fields", []), "fields: not an object"),
    ("jenis_kelamin", setf("jenis_kelamin", "P"), "fields.jenis_kelamin: not one of"),
    ("gol_darah", setf("gol_darah", "0"), "fields.gol_darah: not one of"),
    ("rt_rw", setf("rt_rw", "2/5"), "fields.rt_rw: not NNN/NNN"),
    ("no_kk 15", setf("no_kk", "321007010115000"), "fields.no_kk: not 16 digits"),
    ("no_kk 17", setf("no_kk", "32100701011500011"), "fields.no_kk: not 16 digits"),
    ("no_kk letters", setf("no_kk", "32100701011500O1"), "fields.no_kk: not 16 digits"),
    ("tanggal_lahir", setf("tanggal_lahir", "17-08-2015"), "fields.tanggal_lahir: not a date"),
    ("tanggal_terbit", setf("tanggal_terbit", "2024-02-30"),
     "fields.tanggal_terbit: not a calendar date"),
    ("berlaku not a date", setf("berlaku_hingga", "SEUMUR HIDUP"),
     "fields.berlaku_hingga: not a date"),
    ("berlaku the birthday", setf("berlaku_hingga", "2032-08-17"),
     "fields.berlaku_hingga: not the day before the 17th birthday"),
    ("berlaku a day early", setf("berlaku_hingga", "2032-08-15"),
     "fields.berlaku_hingga: not the day before the 17th birthday"),
    ("issued before birth", setf("tanggal_terbit", "2015-08-16"),
     "fields.tanggal_terbit: before tanggal_lahir"),
    ("unknown top key", lambda r: r.__setitem__("signature_png", png_b64()),
     "'signature_png': unknown top-level key"),
    ("nik 15", lambda r: r.__setitem__("nik", "321007570815001"), "nik: not 16 digits"),
    ("record_id", lambda r: r.__setitem__("record_id", "a b"), "record_id: not 1-64 of"),
    ("priority", lambda r: r.__setitem__("priority", True), "priority: not an integer"),
    ("photo missing at 8", lambda r: r.pop("photo_jpeg"),
     "photo_jpeg: missing: the child is 5 or older"),
    ("pejabat missing", lambda r: r.pop("pejabat"), "pejabat: missing"),
    ("pejabat a string", lambda r: r.__setitem__("pejabat", "X"), "pejabat: not an object"),
    ("pejabat unknown key", setp("jabatan", "KEPALA"), "pejabat.'jabatan': unknown key"),
    *[(f"pejabat missing {k}", lambda r, k=k: r["pejabat"].pop(k), f"pejabat.{k}: missing")
      for k in ("nama", "nip", "signature_png")],
    ("pejabat.nama empty", setp("nama", " "), "pejabat.nama: empty"),
    ("pejabat.nama long", setp("nama", "A" * 51), "pejabat.nama: 51 characters, over 50"),
    ("pejabat.nama control", setp("nama", "A\tB"), "pejabat.nama: contains control"),
    ("pejabat.nip 17", setp("nip", "19720315199803100"), "pejabat.nip: not 18 digits"),
    ("pejabat.nip 19", setp("nip", "1972031519980310051"), "pejabat.nip: not 18 digits"),
    ("pejabat.nip spaces", setp("nip", "19720315 199803 1 005"), "pejabat.nip: not 18 digits"),
    ("pejabat.nip int", setp("nip", 197203151998031005), "pejabat.nip: not a string (int)"),
]


@pytest.mark.parametrize(("mutate", "detail"), [(m, d) for _, m, d in INVALID],
                         ids=[name for name, _, _ in INVALID])
def test_invalid_field(mutate: Mutator, detail: str) -> None:
    obj = kia_record()
    mutate(obj)
    rejected = rejection(obj)
    assert (rejected.code, rejected.detail[: len(detail)]) == ("invalid-field", detail)
    assert rejected.record_id == (obj["record_id"] if obj["record_id"] != "a b" else None)


def test_every_text_field_at_its_limit_passes() -> None:
    obj = kia_record()
    for name in TEXT_LIMITED:
        obj["fields"][name] = "A" * limit(name)
    obj["pejabat"]["nama"] = "A" * kia.PEJABAT_NAMA_MAX_CHARS
    assert isinstance(parse(obj), KiaRecord)


@pytest.mark.parametrize(("sex", "nik", "detail"), [
    ("PEREMPUAN", "3210071708150001", "encode LAKI-LAKI, jenis_kelamin is PEREMPUAN"),
    ("PEREMPUAN", "3210075808150001", "birth-day digits (7-8) disagree"),
    ("PEREMPUAN", "3210075709150001", "birth-month digits (9-10) disagree"),
    ("PEREMPUAN", "3210075708160001", "birth-year digits (11-12) disagree"),
    ("LAKI-LAKI", "3210075708150001", "encode PEREMPUAN, jenis_kelamin is LAKI-LAKI"),
])
def test_the_childs_nik_follows_the_ektp_rules(sex: str, nik: str, detail: str) -> None:
    obj = kia_record(sex=sex)
    obj["nik"] = nik
    rejected = rejection(obj)
    assert rejected.code == "nik-mismatch" and detail in rejected.detail


# -- ages: the 17th birthday and the photo from 5 -----------------------------------------


def test_the_day_before_the_17th_birthday_is_the_last_day_a_kia_is_issued() -> None:
    born = date(2007, 3, 12)
    assert isinstance(parse(kia_record(born=born, issued=date(2024, 3, 11))), KiaRecord)
    rejected = rejection(kia_record(born=born, issued=date(2024, 3, 12)))
    assert rejected.code == "invalid-field"
    assert rejected.detail.startswith("fields.tanggal_terbit: the child is 17 or older")


def test_the_photo_is_required_from_the_fifth_birthday_and_refused_before_it() -> None:
    born = date(2019, 3, 12)
    on_birthday, day_before = kia_record(born=born), kia_record(born=born, issued=ISSUED
                                                                  - timedelta(days=1))
    assert "photo_jpeg" in on_birthday and "photo_jpeg" not in day_before
    assert parse(on_birthday).photo_jpeg is not None
    assert parse(day_before).photo_jpeg is None
    del on_birthday["photo_jpeg"]
    assert rejection(on_birthday).detail.startswith("photo_jpeg: missing")
    for value in (samples.make_record(1)["photo_jpeg"], None, ""):
        day_before["photo_jpeg"] = value
        rejected = rejection(day_before)
        assert (rejected.code, rejected.detail) == (
            "invalid-field", "photo_jpeg: present, but the child is under 5 on tanggal_terbit "
            "(no photo)")


def test_a_leap_day_child_has_its_birthdays_on_the_first_of_march() -> None:
    born = date(2016, 2, 29)
    assert birthday(born, 17) == date(2033, 3, 1)
    assert valid_until(born) == date(2033, 2, 28)
    assert birthday(born, 5) == date(2021, 3, 1)
    assert birthday(date(2012, 2, 29), 5) == date(2017, 3, 1)
    obj = kia_record(born=born, issued=date(2021, 3, 1))
    assert obj["fields"]["berlaku_hingga"] == "2033-02-28" and "photo_jpeg" in obj
    assert isinstance(parse(obj), KiaRecord)
    assert "photo_jpeg" not in kia_record(born=born, issued=date(2021, 2, 28))


# -- images: as for the E-KTP, the signature under pejabat --------------------------------


@pytest.mark.parametrize(("where", "value", "detail"), [
    ("photo_jpeg", "not base64!", "photo_jpeg: not base64"),
    ("photo_jpeg", png_b64(), "photo_jpeg: not a JPEG"),
    ("signature", "not base64!", "pejabat.signature_png: not base64"),
    ("signature", samples.make_record(1)["photo_jpeg"], "pejabat.signature_png: not a PNG"),
    ("signature", png_b64(pad=17 * 1024), "pejabat.signature_png: "),
    ("signature", png_b64((2001, 10)), "pejabat.signature_png: 2001x10 px, over 2000"),
])
def test_bad_images_are_bad_image_named_by_their_path(where: str, value: str,
                                                     detail: str) -> None:
    obj = kia_record()
    if where == "signature":
        obj["pejabat"]["signature_png"] = value
    else:
        obj[where] = value
    rejected = rejection(obj)
    assert rejected.code == "bad-image" and rejected.detail.startswith(detail)


def test_a_signature_that_does_not_decode_in_full_is_refused() -> None:
    obj = kia_record()
    data = base64.b64decode(obj["pejabat"]["signature_png"])
    obj["pejabat"]["signature_png"] = base64.b64encode(data[: len(data) - 30]).decode()
    rejected = rejection(obj)
    assert rejected.code == "bad-image" and "pejabat.signature_png" in rejected.detail


# -- the samples and the seed file --------------------------------------------------------


def test_two_hundred_kia_samples_validate_with_and_without_photo() -> None:
    records = [parse(s) for s in samples.iter_kia_records(200)]
    assert all(isinstance(r, KiaRecord) for r in records)
    without = sum(r.photo_jpeg is None for r in records)
    assert 0 < without < 200
    assert len({r.record_id for r in records}) == 200


def test_kia_seed_file_matches_the_generator() -> None:
    lines = SEEDS.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == list(samples.iter_kia_records(len(lines)))
    parsed = [parse_job(line.encode(), documents=("kia",)) for line in lines]
    assert {r.photo_jpeg is None for r in parsed} == {True, False}  # both versions
