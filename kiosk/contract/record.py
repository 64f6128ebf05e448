"""Print-ready E-KTP records: the shape the station works with and the validation of
incoming job payloads (see mqtt.md, Job). `FieldChecker` holds the checks every
document's schema shares (kiosk.contract.kia builds the KIA's on it).

`parse_record` turns the raw bytes of an MQTT job message into a `Record` or raises
`Rejected` with a machine code and a human detail. Details name the field and the
problem but never echo field values, so they can go into events and logs as they are.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, ClassVar, Protocol

from kiosk.contract.rejected import (
    MAX_PAYLOAD_BYTES,
    RECORD_ID,
    Rejected,
    known_record_id,
    load_payload,
    show_key,
)

FIELD_NAMES: tuple[str, ...] = (
    "provinsi", "kabupaten", "nama", "tempat_lahir", "tanggal_lahir", "jenis_kelamin",
    "gol_darah", "alamat", "rt_rw", "kel_desa", "kecamatan", "agama", "status_perkawinan",
    "pekerjaan", "kewarganegaraan", "berlaku_hingga", "tempat_terbit", "tanggal_terbit",
)


@dataclass(frozen=True)
class Record:
    """One validated record, images already decoded from base64."""

    document: ClassVar[str] = "ektp"
    record_id: str
    nik: str
    fields: Mapping[str, str]
    photo_jpeg: bytes
    signature_png: bytes
    priority: int = 0
    sig: Mapping[str, str] | None = field(default=None, compare=False)


SCHEMA = "ektp.record/1"
MAX_FIELD_CHARS = 200
# What the card layout can carry (kiosk/card/render.py fits these, shrinking and wrapping):
# a longer value is rejected when the record arrives, not found unprintable later.
FIELD_MAX_CHARS = {
    "provinsi": 60, "kabupaten": 60, "nama": 120, "tempat_lahir": 50, "jenis_kelamin": 16,
    "gol_darah": 2, "alamat": 120, "rt_rw": 7, "kel_desa": 60, "kecamatan": 60, "agama": 60,
    "status_perkawinan": 60, "pekerjaan": 60, "kewarganegaraan": 60, "berlaku_hingga": 60,
    "tempat_terbit": 32,
}
PRIORITY_RANGE = (-1000, 1000)
MIN_BIRTH_YEAR = 1900
PHOTO_MAX_BYTES = 64 * 1024
SIGNATURE_MAX_BYTES = 16 * 1024
PHOTO_MAX_SIDE = 2000
SIGNATURE_MAX_SIDE = 2000

TOP_LEVEL_KEYS = frozenset(
    {"schema", "record_id", "nik", "fields", "photo_jpeg", "signature_png", "priority", "sig"}
)
SIG_KEYS = frozenset({"alg", "key_id", "value"})
JENIS_KELAMIN = ("LAKI-LAKI", "PEREMPUAN")
GOL_DARAH = ("A", "B", "AB", "O", "-")

_NIK = re.compile(r"[0-9]{16}")
NIK_DIGITS = _NIK
_RT_RW = re.compile(r"[0-9]{3}/[0-9]{3}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# C0/C1 controls and unpaired surrogates have no place on a printed card.
_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
PHOTO = ("JPEG", b"\xff\xd8\xff", PHOTO_MAX_BYTES, PHOTO_MAX_SIDE)  # format, magic, limits
SIGNATURE = ("PNG", b"\x89PNG\r\n\x1a\n", SIGNATURE_MAX_BYTES, SIGNATURE_MAX_SIDE)


def mask_nik(nik: str) -> str:
    """Hide all but the last four digits of a NIK ("************1234") for logs and events."""
    if len(nik) < 8:
        return "*" * len(nik)
    return "*" * (len(nik) - 4) + nik[-4:]


def record_summary(record: Record) -> dict[str, str]:
    """What may be said about a record outside the spool: its id and its masked NIK."""
    return {"record_id": record.record_id, "nik": mask_nik(record.nik)}


class Verifier(Protocol):
    """What checks a record's signature (kiosk.contract.signing.Verifier is one)."""

    def verify(self, record_dict: dict[str, Any]) -> None:
        """Return if the record is acceptable; raise `Rejected` otherwise."""


def parse_record(
    payload: bytes,
    *,
    max_bytes: int = MAX_PAYLOAD_BYTES,
    verifier: Verifier | None = None,
    today: date | None = None,
    decode_images: bool = True,
) -> Record:
    """Validate one job payload and return its `Record`; raise `Rejected` otherwise.

    Checks run in this order, the first failure wins: size, JSON, object, nesting depth,
    schema, signature (only with a verifier), fields, NIK consistency, images.
    `today` (default: the local date) bounds tanggal_lahir; tests pin it.
    `decode_images=False` skips decoding every pixel of the photo and signature (their
    headers are still checked): for a record that passed in full when it arrived and is
    read again from the spool to be drawn, where the card's own decode follows anyway.
    """
    obj = load_payload(payload, max_bytes)
    if obj.get("schema") != SCHEMA:
        raise Rejected("unknown-schema", f"schema is not {SCHEMA!r}", known_record_id(obj))
    if verifier is not None:
        verifier.verify(obj)
    return check_ektp(obj, known_record_id(obj), today=today or date.today(),
                      decode_images=decode_images)


def check_ektp(obj: dict[str, Any], record_id: str | None, *, today: date,
               decode_images: bool = True) -> Record:
    """The `Record` of a decoded `ektp.record/1` object (schema and signature already
    checked), or `Rejected`."""
    return _Checker(obj, record_id, decode_images).record(today)


class FieldChecker:
    """The checks every document's schema shares, over one decoded record object:
    strings, text fields within `limits`, choices, dates, priority, sig, NIK, images."""

    limits: Mapping[str, int] = FIELD_MAX_CHARS

    def __init__(self, obj: dict[str, Any], record_id: str | None,
                 decode_images: bool = True) -> None:
        self.obj = obj
        self.record_id = record_id
        self.decode_images = decode_images

    def reject(self, code: str, detail: str) -> Rejected:
        return Rejected(code, detail, self.record_id)

    def invalid(self, path: str, problem: str) -> Rejected:
        return self.reject("invalid-field", f"{path}: {problem}")

    def string(self, where: dict[str, Any], key: str, pattern: re.Pattern[str] | None,
               problem: str, path: str = "") -> str:
        path = path or key
        if key not in where:
            raise self.invalid(path, "missing")
        value = where[key]
        if not isinstance(value, str):
            raise self.invalid(path, f"not a string ({type(value).__name__})")
        if pattern is not None and not pattern.fullmatch(value):
            raise self.invalid(path, problem)
        return value

    def text_fields(self, names: tuple[str, ...]) -> dict[str, str]:
        """The record's `fields` object: exactly `names`, each a text field, in that order."""
        raw = self.obj.get("fields")
        if not isinstance(raw, dict):
            raise self.invalid("fields", "missing" if raw is None else "not an object")
        if extra := sorted(raw.keys() - set(names)):
            raise self.invalid(f"fields.{show_key(extra[0])}", "unknown field")
        return {name: self.text_field(raw, name) for name in names}

    def text_field(self, raw: dict[str, Any], name: str) -> str:
        path = f"fields.{name}"
        value = self.string(raw, name, None, "", path)
        if not value.strip():
            raise self.invalid(path, "empty")
        limit = self.limits.get(path.removeprefix("fields."), MAX_FIELD_CHARS)
        if len(value) > limit:
            raise self.invalid(path, f"{len(value)} characters, over {limit}")
        self.no_bad_chars(value, path)
        return value

    def no_bad_chars(self, value: str, path: str) -> None:
        if _BAD_CHARS.search(value):
            raise self.invalid(path, "contains control characters or unpaired surrogates")

    def choice(self, fields: dict[str, str], name: str, allowed: tuple[str, ...]) -> None:
        if fields[name] not in allowed:
            raise self.invalid(f"fields.{name}", f"not one of {'|'.join(allowed)}")

    def date(self, fields: dict[str, str], name: str) -> date:
        if not _DATE.fullmatch(fields[name]):
            raise self.invalid(f"fields.{name}", "not a date YYYY-MM-DD")
        try:
            return date.fromisoformat(fields[name])
        except ValueError:
            raise self.invalid(f"fields.{name}", "not a calendar date") from None

    def rt_rw(self, fields: dict[str, str]) -> None:
        if not _RT_RW.fullmatch(fields["rt_rw"]):
            raise self.invalid("fields.rt_rw", "not NNN/NNN")

    def born_and_issued(self, born: date, issued: date, today: date) -> None:
        if born > today:
            raise self.invalid("fields.tanggal_lahir", "in the future")
        if born.year < MIN_BIRTH_YEAR:
            raise self.invalid("fields.tanggal_lahir", f"before {MIN_BIRTH_YEAR}")
        if issued < born:
            raise self.invalid("fields.tanggal_terbit", "before tanggal_lahir")

    def priority(self) -> int:
        value = self.obj.get("priority", 0)
        if type(value) is not int:  # bool is an int subclass and is refused
            raise self.invalid("priority", f"not an integer ({type(value).__name__})")
        low, high = PRIORITY_RANGE
        if not low <= value <= high:
            raise self.invalid("priority", f"outside {low}..{high}")
        return value

    def sig(self) -> dict[str, str] | None:
        if "sig" not in self.obj:
            return None
        sig = self.obj["sig"]
        if not isinstance(sig, dict):
            raise self.invalid("sig", "not an object")
        if extra := sorted(sig.keys() - SIG_KEYS):
            raise self.invalid(f"sig.{show_key(extra[0])}", "unknown key")
        return {key: self.string(sig, key, None, "", f"sig.{key}") for key in sorted(SIG_KEYS)}

    def nik_agrees(self, nik: str, fields: dict[str, str]) -> None:
        born = date.fromisoformat(fields["tanggal_lahir"])
        woman = fields["jenis_kelamin"] == "PEREMPUAN"
        day, month, year = int(nik[6:8]), int(nik[8:10]), int(nik[10:12])
        if day == born.day + (0 if woman else 40):
            raise self.reject("nik-mismatch", "nik: birth-day digits (7-8) encode "
                              f"{'LAKI-LAKI' if woman else 'PEREMPUAN'}, "
                              f"jenis_kelamin is {fields['jenis_kelamin']}")
        if day != born.day + (40 if woman else 0):
            raise self.reject("nik-mismatch", "nik: birth-day digits (7-8) disagree with "
                              "tanggal_lahir" + (" (day + 40 for PEREMPUAN)" if woman else ""))
        if month != born.month:
            raise self.reject("nik-mismatch",
                              "nik: birth-month digits (9-10) disagree with tanggal_lahir")
        if year != born.year % 100:
            raise self.reject("nik-mismatch",
                              "nik: birth-year digits (11-12) disagree with tanggal_lahir")

    def image(self, key: str, fmt: str, magic: bytes, max_bytes: int, max_side: int,
              where: dict[str, Any] | None = None, path: str = "") -> bytes:
        """The decoded image at `where[key]` (default: the record's top level); details
        name it by `path` (default: `key`)."""
        text = self.string(self.obj if where is None else where, key, None, "", path)
        key = path or key
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise self.reject("bad-image", f"{key}: not base64") from None
        if len(data) > max_bytes:
            raise self.reject("bad-image", f"{key}: {len(data)} bytes, over {max_bytes}")
        if not data.startswith(magic):
            raise self.reject("bad-image", f"{key}: not a {fmt} (magic bytes)")
        # The decoders load only where a record's images are checked (the station), never
        # in the district's processes, which need the record's id and envelope alone.
        from kiosk.contract import images

        try:
            width, height = images.size(data, fmt)
        except images.Unreadable as exc:
            raise self.reject("bad-image", f"{key}: unreadable {fmt} header ({exc})") from None
        if max(width, height) > max_side or min(width, height) < 1:
            raise self.reject("bad-image", f"{key}: {width}x{height} px, over {max_side} a side")
        # only now: the pixels are known to be bounded
        problem = images.decode_problem(data, fmt) if self.decode_images else None
        if problem:
            raise self.reject("bad-image", f"{key}: does not decode in full ({problem})")
        return data


class _Checker(FieldChecker):
    """The E-KTP's record and fields."""

    def record(self, today: date) -> Record:
        obj = self.obj
        if extra := sorted(obj.keys() - TOP_LEVEL_KEYS):
            raise self.invalid(show_key(extra[0]), "unknown top-level key")
        rid = self.string(obj, "record_id", RECORD_ID, "not 1-64 of [A-Za-z0-9._-]")
        nik = self.string(obj, "nik", _NIK, "not 16 digits")
        fields = self.fields(today)
        priority = self.priority()
        sig = self.sig()
        self.nik_agrees(nik, fields)
        photo = self.image("photo_jpeg", *PHOTO)
        return Record(rid, nik, fields, photo, self.image("signature_png", *SIGNATURE),
                      priority, sig)

    def fields(self, today: date) -> dict[str, str]:
        out = self.text_fields(FIELD_NAMES)
        self.choice(out, "jenis_kelamin", JENIS_KELAMIN)
        self.choice(out, "gol_darah", GOL_DARAH)
        self.rt_rw(out)
        self.born_and_issued(self.date(out, "tanggal_lahir"), self.date(out, "tanggal_terbit"),
                             today)
        return out
