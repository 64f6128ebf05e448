"""The documents a station can print and the one entry point for a job payload.

`parse_job` reads a job of any known schema (`ektp.record/1`, `kia.record/1`), refuses a
document the station is not loaded for with `wrong-document` (mqtt.md: so the district
routes it elsewhere), then checks the signature and the schema's fields. `document_of`
reads a payload's document from its schema alone (no validation, no image decoder), for
the district's router.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

from kiosk.contract import kia, record
from kiosk.contract.kia import KiaRecord
from kiosk.contract.record import Record, Verifier
from kiosk.contract.rejected import MAX_PAYLOAD_BYTES, Rejected, known_record_id, load_payload

SCHEMAS = {record.SCHEMA: "ektp", kia.SCHEMA: "kia"}  # schema -> document
DOCUMENTS = tuple(SCHEMAS.values())  # ("ektp", "kia")
DEFAULT_DOCUMENTS = ("ektp",)  # station.md: [station] documents, default ["ektp"]
_CHECKS = {"ektp": record.check_ektp, "kia": kia.check_kia}

AnyRecord = Record | KiaRecord


def check_documents(documents: Iterable[str]) -> tuple[str, ...]:
    """A station's `documents` setting as a tuple, or ValueError saying what is wrong."""
    if isinstance(documents, str):
        raise ValueError(f"documents must be a list such as [\"ektp\"], not {documents!r}")
    out = tuple(documents)
    if not out:
        raise ValueError("documents is empty: list what the printer is loaded for, "
                         f"one of {', '.join(DOCUMENTS)}")
    for doc in out:
        if doc not in DOCUMENTS:
            raise ValueError(f"unknown document {doc!r} in documents; "
                             f"known: {', '.join(DOCUMENTS)}")
    if len(set(out)) != len(out):
        raise ValueError("documents lists a document twice")
    return out


def document_of(obj: object) -> str | None:
    """The document ("ektp", "kia") of a decoded payload by its schema, else None."""
    schema = obj.get("schema") if isinstance(obj, dict) else None
    return SCHEMAS.get(schema) if isinstance(schema, str) else None


def parse_job(
    payload: bytes,
    *,
    documents: Iterable[str] = DEFAULT_DOCUMENTS,
    max_bytes: int = MAX_PAYLOAD_BYTES,
    verifier: Verifier | None = None,
    today: date | None = None,
    decode_images: bool = True,
) -> AnyRecord:
    """Validate one job payload for a station that prints `documents`; its `Record` or
    `KiaRecord`, else `Rejected`.

    Checks run in this order, the first failure wins: size, JSON, object, nesting depth,
    schema (`unknown-schema`), document (`wrong-document`), signature (only with a
    verifier), then the schema's own checks (kiosk.contract.record, kiosk.contract.kia).
    `today` and `decode_images` as for `parse_record`.
    """
    loaded = check_documents(documents)
    obj = load_payload(payload, max_bytes)
    rid = known_record_id(obj)
    document = document_of(obj)
    if document is None:
        known = " or ".join(repr(s) for s in SCHEMAS)
        raise Rejected("unknown-schema", f"schema is not {known}", rid)
    if document not in loaded:
        raise Rejected("wrong-document", f"a {document} record ({obj['schema']}); this "
                       f"station prints {', '.join(loaded)}", rid)
    if verifier is not None:
        verifier.verify(obj)
    check: Any = _CHECKS[document]
    return check(obj, rid, today=today or date.today(), decode_images=decode_images)
