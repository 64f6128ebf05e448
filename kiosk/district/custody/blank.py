"""A station's ``blank`` event (mqtt.md, Events), checked as the untrusted input it is.

`parse_blank` turns one payload from ``{root}/{d}/{s}/events`` into a `Blank`, raises
`NotBlank` for the other event types (job, alert, ...: not the register's business) and
`BadBlank` with a precise reason for anything that claims to be a blank event and is not
one: too large, not JSON, unknown members, a UID that is not upper-case hex of 4, 7 or 10
bytes, an unknown outcome or category, a bad time stamp.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from kiosk.contract.custody import is_uid
from kiosk.district.custody import CATEGORIES, OUTCOMES

MAX_EVENT_BYTES = 16 * 1024  # a blank event is a few hundred bytes
MAX_DETAIL_CHARS = 300
EVENT_SCHEMA = "ektp.event/1"
MEMBERS = frozenset({"schema", "boot_id", "seq", "ts", "type", "uid", "record_id", "document",
                     "outcome", "category", "detail"})
_RECORD_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_BOOT_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
_DOCUMENT = re.compile(r"[a-z][a-z0-9-]{0,15}")
_TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)")
_NIK_LIKE = re.compile(r"\d{16}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class NotBlank(Exception):
    """A well-formed event of another type: acknowledged, not kept."""


class BadBlank(ValueError):
    """A payload that is not a valid blank event; the message is the reason."""


@dataclass(frozen=True)
class Blank:
    boot_id: str
    seq: int
    at: float  # the station's ts, seconds since the epoch
    uid: str | None
    record_id: str | None
    document: str
    outcome: str
    category: str | None
    detail: str


def parse_blank(payload: bytes) -> Blank:
    """The blank event in *payload*, or `NotBlank` / `BadBlank` (see the module docstring)."""
    if len(payload) > MAX_EVENT_BYTES:
        raise BadBlank(f"{len(payload)} bytes, over the {MAX_EVENT_BYTES} a blank event may have")
    try:
        body = json.loads(payload)
    except ValueError:
        raise BadBlank("not UTF-8 JSON") from None
    if not isinstance(body, dict):
        raise BadBlank("not a JSON object")
    if body.get("type") != "blank":
        if body.get("schema") == EVENT_SCHEMA and isinstance(body.get("type"), str):
            raise NotBlank(body["type"])
        raise BadBlank(f"schema {body.get('schema')!r} / type {body.get('type')!r}"
                       " is no event of mqtt.md")
    if body.get("schema") != EVENT_SCHEMA:
        raise BadBlank(f"schema {body.get('schema')!r}, not {EVENT_SCHEMA!r}")
    if unknown := sorted(set(body) - MEMBERS):
        raise BadBlank(f"unknown member {unknown[0]!r}")
    return Blank(boot_id=_boot_id(body), seq=_seq(body), at=_ts(body.get("ts")),
                 uid=_uid(body), record_id=_record_id(body), document=_document(body),
                 outcome=_outcome(body), category=_category(body), detail=_detail(body))


def _boot_id(body: dict) -> str:
    value = body.get("boot_id")
    if not isinstance(value, str) or not _BOOT_ID.fullmatch(value):
        raise BadBlank("boot_id missing or not 1-64 of [A-Za-z0-9-]")
    return value


def _seq(body: dict) -> int:
    value = body.get("seq")
    if type(value) is not int or not 0 <= value < 2**53:
        raise BadBlank("seq missing or not a non-negative integer")
    return value


def _ts(value: object) -> float:
    if not isinstance(value, str) or not _TS.fullmatch(value):
        raise BadBlank("ts missing or not RFC 3339 (YYYY-MM-DDTHH:MM:SSZ)")
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadBlank(f"ts {value!r} is no date and time") from None
    if not 2000 <= stamp.astimezone(UTC).year <= 2999:
        raise BadBlank(f"ts {value!r} is out of range")
    return stamp.timestamp()


def _uid(body: dict) -> str | None:
    if "uid" not in body:
        raise BadBlank("uid missing (null where the station has no encoder)")
    value = body["uid"]
    if value is not None and not is_uid(value):
        raise BadBlank(f"uid {_show(value)} is not upper-case hex of 4, 7 or 10 bytes")
    return value


def _record_id(body: dict) -> str | None:
    value = body.get("record_id")
    if value is not None and not (isinstance(value, str) and _RECORD_ID.fullmatch(value)):
        raise BadBlank(f"record_id {_show(value)} is not 1-64 of [A-Za-z0-9._-]")
    return value


def _document(body: dict) -> str:
    value = body.get("document")
    if not isinstance(value, str) or not _DOCUMENT.fullmatch(value):
        raise BadBlank(f"document {_show(value)} missing or not a document name")
    return value


def _outcome(body: dict) -> str:
    value = body.get("outcome")
    if value not in OUTCOMES:
        raise BadBlank(f"outcome {_show(value)} is not printed or invalid")
    return value


def _category(body: dict) -> str | None:
    value, outcome = body.get("category"), body.get("outcome")
    if outcome == "printed":
        if value is not None:
            raise BadBlank("a printed blank has no category")
        return None
    if value not in CATEGORIES:
        raise BadBlank(f"category {_show(value)} is not one of {', '.join(CATEGORIES)}")
    return value


def _detail(body: dict) -> str:
    value = body.get("detail", "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadBlank("detail is not text")
    # Never personal data in the register: a 16-digit run (a NIK) is masked.
    text = _NIK_LIKE.sub(lambda m: "*" * 12 + m.group()[-4:], _CONTROL.sub(" ", value))
    return text[:MAX_DETAIL_CHARS]


def _show(value: object) -> str:
    text = json.dumps(value, ensure_ascii=True)
    return text if len(text) <= 40 else text[:37] + "..."
