"""Print-ready KIA records (`kia.record/1`, mqtt.md "The KIA record"): the children's
identity card of Permendagri 2/2016, and the validation of its job payloads.

Everything said of the E-KTP's record holds (size, JSON, signature, rejection codes,
details that name the field and never echo its value); on top of it: the child's NIK
with the E-KTP's rules, the family card number (`no_kk`, 16 digits), the validity date
(the day before the 17th birthday), no child of 17 or older, a photo from the fifth
birthday on and none before it, and the signatory (`pejabat`: name, 18-digit NIP,
signature). Ages are counted on `tanggal_terbit`; a child born on 29 February has its
birthdays on 1 March in common years (docs/card.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, ClassVar

from kiosk.contract.record import (
    GOL_DARAH,
    JENIS_KELAMIN,
    NIK_DIGITS,
    PHOTO,
    SIGNATURE,
    FieldChecker,
)
from kiosk.contract.rejected import RECORD_ID, show_key

SCHEMA = "kia.record/1"
FIELD_NAMES: tuple[str, ...] = (
    "nama", "jenis_kelamin", "tempat_lahir", "tanggal_lahir", "gol_darah", "no_kk",
    "nama_kepala_keluarga", "no_akta_kelahiran", "agama", "kewarganegaraan", "alamat",
    "rt_rw", "kel_desa", "kecamatan", "kabupaten", "provinsi", "berlaku_hingga",
    "tempat_terbit", "tanggal_terbit",
)
# What the KIA layout (kiosk/card/kia.py) can carry, shrinking and wrapping; a longer
# value is refused on arrival, not found unprintable later. Dates, no_kk and rt_rw are
# bounded by their own form.
FIELD_MAX_CHARS = {
    "nama": 80, "jenis_kelamin": 16, "tempat_lahir": 40, "gol_darah": 2,
    "nama_kepala_keluarga": 60, "no_akta_kelahiran": 40, "agama": 40,
    "kewarganegaraan": 40, "alamat": 100, "kel_desa": 50, "kecamatan": 50,
    "kabupaten": 50, "provinsi": 50, "tempat_terbit": 32,
}
PEJABAT_NAMA_MAX_CHARS = 50
PHOTO_FROM_AGE = 5  # no photo before the fifth birthday (Permendagri 2/2016)
VALID_UNTIL_AGE = 17  # the KIA is valid until the day before the 17th birthday

TOP_LEVEL_KEYS = frozenset({"schema", "record_id", "nik", "fields", "photo_jpeg", "pejabat",
                            "priority", "sig"})
PEJABAT_KEYS = ("nama", "nip", "signature_png")
_NO_KK = re.compile(r"[0-9]{16}")
_NIP = re.compile(r"[0-9]{18}")


@dataclass(frozen=True)
class Pejabat:
    """The head of the office who signs the card: name, NIP, signature (PNG bytes)."""

    nama: str
    nip: str
    signature_png: bytes = field(repr=False)


@dataclass(frozen=True)
class KiaRecord:
    """One validated KIA record, images already decoded from base64; `photo_jpeg` is
    None for a child under 5 on `tanggal_terbit`."""

    document: ClassVar[str] = "kia"
    record_id: str
    nik: str
    fields: Mapping[str, str]
    photo_jpeg: bytes | None
    pejabat: Pejabat
    priority: int = 0
    sig: Mapping[str, str] | None = field(default=None, compare=False)


def birthday(born: date, age: int) -> date:
    """The day the child born on `born` turns `age` (29 February: 1 March in common years)."""
    try:
        return born.replace(year=born.year + age)
    except ValueError:  # 29 February in a common year
        return date(born.year + age, 3, 1)


def valid_until(born: date) -> date:
    """The KIA's `berlaku_hingga`: the day before the 17th birthday."""
    return birthday(born, VALID_UNTIL_AGE) - timedelta(days=1)


def needs_photo(born: date, issued: date) -> bool:
    """Whether the card carries a photo: the child is 5 or older on the day of issue."""
    return issued >= birthday(born, PHOTO_FROM_AGE)


class KiaChecker(FieldChecker):
    """The KIA's record, fields, photo rule and signatory."""

    limits = FIELD_MAX_CHARS

    def record(self, today: date) -> KiaRecord:
        obj = self.obj
        if extra := sorted(obj.keys() - TOP_LEVEL_KEYS):
            raise self.invalid(show_key(extra[0]), "unknown top-level key")
        rid = self.string(obj, "record_id", RECORD_ID, "not 1-64 of [A-Za-z0-9._-]")
        nik = self.string(obj, "nik", NIK_DIGITS, "not 16 digits")
        fields = self.fields(today)
        priority = self.priority()
        sig = self.sig()
        self.nik_agrees(nik, fields)
        photo = self.photo(fields)
        return KiaRecord(rid, nik, fields, photo, self.pejabat(), priority, sig)

    def fields(self, today: date) -> dict[str, str]:
        out = self.text_fields(FIELD_NAMES)
        self.choice(out, "jenis_kelamin", JENIS_KELAMIN)
        self.choice(out, "gol_darah", GOL_DARAH)
        self.rt_rw(out)
        if not _NO_KK.fullmatch(out["no_kk"]):
            raise self.invalid("fields.no_kk", "not 16 digits")
        born, issued = self.date(out, "tanggal_lahir"), self.date(out, "tanggal_terbit")
        until = self.date(out, "berlaku_hingga")
        self.born_and_issued(born, issued, today)
        if issued >= birthday(born, VALID_UNTIL_AGE):
            raise self.invalid("fields.tanggal_terbit",
                               f"the child is {VALID_UNTIL_AGE} or older on it (the E-KTP's age)")
        if until != valid_until(born):
            raise self.invalid("fields.berlaku_hingga",
                               f"not the day before the {VALID_UNTIL_AGE}th birthday")
        return out

    def photo(self, fields: dict[str, str]) -> bytes | None:
        born = date.fromisoformat(fields["tanggal_lahir"])
        issued = date.fromisoformat(fields["tanggal_terbit"])
        if not needs_photo(born, issued):
            if "photo_jpeg" in self.obj:
                raise self.invalid("photo_jpeg", f"present, but the child is under "
                                   f"{PHOTO_FROM_AGE} on tanggal_terbit (no photo)")
            return None
        if "photo_jpeg" not in self.obj:
            raise self.invalid("photo_jpeg", f"missing: the child is {PHOTO_FROM_AGE} or older "
                               "on tanggal_terbit")
        return self.image("photo_jpeg", *PHOTO)

    def pejabat(self) -> Pejabat:
        raw = self.obj.get("pejabat")
        if not isinstance(raw, dict):
            raise self.invalid("pejabat", "missing" if raw is None else "not an object")
        if extra := sorted(raw.keys() - set(PEJABAT_KEYS)):
            raise self.invalid(f"pejabat.{show_key(extra[0])}", "unknown key")
        nama = self.string(raw, "nama", None, "", "pejabat.nama")
        if not nama.strip():
            raise self.invalid("pejabat.nama", "empty")
        if len(nama) > PEJABAT_NAMA_MAX_CHARS:
            raise self.invalid("pejabat.nama",
                               f"{len(nama)} characters, over {PEJABAT_NAMA_MAX_CHARS}")
        self.no_bad_chars(nama, "pejabat.nama")
        nip = self.string(raw, "nip", _NIP, "not 18 digits", "pejabat.nip")
        signature = self.image("signature_png", *SIGNATURE, where=raw,
                               path="pejabat.signature_png")
        return Pejabat(nama, nip, signature)


def check_kia(obj: dict[str, Any], record_id: str | None, *, today: date,
              decode_images: bool = True) -> KiaRecord:
    """The `KiaRecord` of a decoded `kia.record/1` object (schema and signature already
    checked), or `Rejected`."""
    return KiaChecker(obj, record_id, decode_images).record(today)
