"""Fuzzing of the job entry point with KIA records (kiosk.contract.documents.parse_job):
near-valid KIA records, signed or not, sent to stations of either document, are a record
or a `Rejected` with a known code, never another exception; an untouched one stays valid.

Derandomized (the same examples on every run) and without an example database; the
``slow`` marker puts it in .ci/run's second pytest step, beside tests/contract/test_fuzz.py.
"""

from __future__ import annotations

import base64
import contextlib
import json
import random
from datetime import date
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiosk.contract.documents import document_of, parse_job
from kiosk.contract.kia import FIELD_NAMES, PEJABAT_KEYS, KiaRecord
from kiosk.contract.record import Record, Rejected
from kiosk.contract.signing import Verifier, sign_record
from kiosk.sim import samples

pytestmark = pytest.mark.slow

FUZZ = settings(max_examples=5_000, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TODAY = date(2017, 1, 1)
KEY = Ed25519PrivateKey.generate()
VERIFIER = Verifier([KEY.public_key()])
CODES = {"too-large", "not-json", "too-deep", "not-object", "unknown-schema", "wrong-document",
         "invalid-field", "nik-mismatch", "bad-image", "unsigned", "bad-signature",
         "unknown-key"}
BASES = [samples.make_kia_record(index) for index in range(1, 9)]  # with and without photo
STATIONS = (("kia",), ("ektp",), ("ektp", "kia"))
NASTY: list[Any] = [
    None, True, 0, -1, 2**64, 1.5, "", " ", "\x00", "\ud800", "x" * 101, "SEUMUR HIDUP",
    "2016-02-29", "2033-02-28", "2999-01-01", "1899-12-31", "001/001", "1/1", "-", "AB",
    "1234567890123456", "123456789012345678", "12345678901234567", [], {}, [[[[[]]]]],
    BASES[0]["pejabat"]["signature_png"], samples.make_record(1)["photo_jpeg"],
    "kia.record/1", "ektp.record/1",
]
NASTY_VALUE = st.sampled_from(NASTY) | st.text(max_size=30) | st.integers()
MUTATIONS = ("top", "drop-top", "field", "drop-field", "pejabat", "drop-pejabat", "photo",
             "nik-digit", "image-bytes", "none")


def mutate(record: dict[str, Any], kind: str, pick: random.Random, value: Any) -> None:
    """One near-miss of *kind*; *pick* chooses where, *value* is what goes there."""
    fields = record.get("fields")
    if not isinstance(fields, dict):
        fields = record["fields"] = {}
    pejabat = record.get("pejabat")
    if not isinstance(pejabat, dict):
        pejabat = record["pejabat"] = {}
    if kind == "top":
        record[pick.choice(sorted(record))] = value
    elif kind == "drop-top":
        record.pop(pick.choice(sorted(record)))
    elif kind == "field":
        fields[pick.choice(FIELD_NAMES)] = value
    elif kind == "drop-field" and fields:
        fields.pop(pick.choice(sorted(fields)))
    elif kind == "pejabat":
        pejabat[pick.choice(PEJABAT_KEYS)] = value
    elif kind == "drop-pejabat" and pejabat:
        pejabat.pop(pick.choice(sorted(pejabat)))
    elif kind == "photo":
        if "photo_jpeg" in record:
            record.pop("photo_jpeg")
        else:
            record["photo_jpeg"] = NASTY[-3]
    elif kind == "nik-digit":
        nik = list(str(record.get("nik", "")).ljust(16, "0"))
        nik[pick.randrange(16)] = pick.choice("0123456789x")
        record["nik"] = "".join(nik)
    elif kind == "image-bytes":
        raw = bytearray(base64.b64decode(BASES[0]["pejabat"]["signature_png"]))
        del raw[pick.randrange(len(raw)):]
        pejabat["signature_png"] = base64.b64encode(raw).decode("ascii")


@FUZZ
@given(base=st.sampled_from(BASES),
       changes=st.lists(st.tuples(st.sampled_from(MUTATIONS), NASTY_VALUE), max_size=3),
       signing=st.sampled_from(["none", "signed", "signed-then-changed"]),
       documents=st.sampled_from(STATIONS), pick=st.randoms(use_true_random=False))
def test_near_valid_kia_records_are_a_record_or_rejected(
    base: dict, changes: list[tuple[str, Any]], signing: str, documents: tuple[str, ...],
    pick: random.Random,
) -> None:
    record = json.loads(json.dumps(base))
    for kind, value in changes:
        mutate(record, kind, pick, value)
    if signing != "none":
        with contextlib.suppress(TypeError, ValueError, UnicodeEncodeError):  # not signable
            record = sign_record(record, KEY)
        if signing == "signed-then-changed":
            mutate(record, pick.choice(MUTATIONS[:-1]), pick, pick.choice(NASTY))
    payload = json.dumps(record).encode("utf-8", "surrogatepass")
    try:
        result: Any = parse_job(payload, documents=documents, today=TODAY,
                                verifier=None if signing == "none" else VERIFIER)
    except Rejected as rejected:
        assert rejected.code in CODES, rejected.code
        assert rejected.detail
        result = rejected
    assert isinstance(result, KiaRecord | Record | Rejected)
    if isinstance(result, Rejected) and result.code == "wrong-document":
        assert document_of(record) not in documents
    untouched = all(kind == "none" for kind, _ in changes) and signing != "signed-then-changed"
    if untouched:
        assert isinstance(result, KiaRecord) == ("kia" in documents), result


@FUZZ
@given(st.one_of(st.binary(max_size=500),
                 st.sampled_from(NASTY).map(lambda v: json.dumps({"schema": v}).encode())),
       st.sampled_from(STATIONS))
def test_any_bytes_are_rejected_at_any_station(payload: bytes, documents: tuple[str, ...]
                                               ) -> None:
    with pytest.raises(Rejected) as info:
        parse_job(payload, documents=documents, today=TODAY)
    assert info.value.code in CODES
