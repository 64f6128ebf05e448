"""What is said of a payload that is refused, and the envelope every payload passes first.

`Rejected` carries the machine code and human detail of a `rejected` event (mqtt.md);
`load_payload` applies the checks that come before any schema: size, UTF-8, JSON without
duplicate keys or NaN, an object, nesting depth. `known_record_id` reads a record's id
only when it is well-formed. Nothing here decodes an image or checks a signature, so the
district's processes can use it without the station's decoders.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

MAX_PAYLOAD_BYTES = 256 * 1024
MAX_DEPTH = 8  # a valid record nests 2 deep (record > fields / sig)
RECORD_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class Rejected(Exception):
    """An incoming record that must be acknowledged, never printed, and reported.

    `code` is the machine code of the `rejected` event, `detail` the human text,
    `record_id` the record's id when it was readable and well-formed, else None.
    """

    def __init__(self, code: str, detail: str, record_id: str | None = None) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.record_id = record_id


def known_record_id(obj: object) -> str | None:
    """The record_id of a decoded payload if it is present and well-formed, else None."""
    rid = obj.get("record_id") if isinstance(obj, dict) else None
    return rid if isinstance(rid, str) and RECORD_ID.fullmatch(rid) else None


def show_key(text: str) -> str:
    """A key name for a detail message: quoted and cut short."""
    return repr(text[:40] + ("…" if len(text) > 40 else ""))


def load_payload(payload: bytes, max_bytes: int = MAX_PAYLOAD_BYTES,
                 max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """The JSON object in *payload*, or `Rejected` with the first problem found."""
    if len(payload) > max_bytes:
        raise Rejected("too-large", f"payload is {len(payload)} bytes, over {max_bytes}")
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected("not-json", f"not UTF-8 (byte {exc.start})") from None
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except RecursionError:
        raise Rejected("too-deep", f"JSON nests deeper than {max_depth} levels") from None
    except ValueError as exc:  # bad syntax, duplicate keys, over-long integers, NaN/Infinity
        raise Rejected("not-json", str(exc)) from None
    if not isinstance(obj, dict):
        raise Rejected("not-object", f"payload is a JSON {type(obj).__name__}, not an object")
    if _deeper_than(obj, max_depth):
        raise Rejected("too-deep", f"JSON nests deeper than {max_depth} levels",
                       known_record_id(obj))
    return obj


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Duplicate keys would let the signer and the station read different records.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        counts = Counter(key for key, _ in pairs)
        dup = next(key for key, n in counts.items() if n > 1)
        raise ValueError(f"duplicate key {show_key(dup)}")
    return obj


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _deeper_than(obj: object, limit: int) -> bool:
    """Whether `obj` holds more than `limit` levels of nested objects/arrays (itself included)."""
    if isinstance(obj, dict):
        children: Any = obj.values()
    elif isinstance(obj, list):
        children = obj
    else:
        return False
    return limit == 0 or any(_deeper_than(c, limit - 1) for c in children)
