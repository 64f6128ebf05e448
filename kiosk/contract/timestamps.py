"""RFC 3339 UTC timestamps, the `ts` of every state and event (mqtt.md), written and read once.

Written to the second with a `Z` (`2026-01-02T03:04:05Z`); read with an optional fraction,
because other clients of the contract may send one. A stamp that is not of that form reads
as None: the reader decides what an unreadable time means.
"""

from __future__ import annotations

import time
from calendar import timegm

_FORMAT = "%Y-%m-%dT%H:%M:%S"


def rfc3339(epoch: float | None = None) -> str:
    """*epoch* (default: now) as an RFC 3339 UTC stamp."""
    return time.strftime(_FORMAT + "Z", time.gmtime(time.time() if epoch is None else epoch))


def parse_rfc3339(stamp: object) -> float | None:
    """Epoch seconds of an RFC 3339 UTC stamp (fraction allowed), or None if it is not one
    (a stamp from another machine is input: its length is bounded before it is read)."""
    if not isinstance(stamp, str) or not stamp.endswith("Z") or len(stamp) > 40:
        return None
    whole, _, fraction = stamp[:-1].partition(".")
    if fraction and not fraction.isdigit():
        return None
    try:
        seconds = timegm(time.strptime(whole, _FORMAT))
    except (ValueError, OverflowError):
        return None
    return seconds + (float(f"0.{fraction[:9]}") if fraction else 0.0)
