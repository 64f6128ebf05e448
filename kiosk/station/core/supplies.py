"""The printer's supplies (ribbon, film, cleaner) as the state's ``supplies`` and alerts.

A driver that can tell reports them (`ev.SuppliesSeen`, from IPP ``marker-*``
attributes; any driver whose printer tells) as mqtt.md has them: name, type, level
0-100 (-1 unknown), low_level. A supply at 0 raises ``marker-supply-empty-error``,
one at or below its low level ``marker-supply-low-warning`` (card-printer.md,
Supplies); the printer's own reasons still decide whether a card may go.
"""

from __future__ import annotations

EMPTY = "marker-supply-empty-error"
LOW = "marker-supply-low-warning"


def supply_reasons(supplies: tuple[dict, ...]) -> dict[str, str]:
    """The alerts the supplies raise, each with a human detail."""
    empty = [s["name"] for s in supplies if s.get("level") == 0]
    low = [f"{s['name']} {s['level']}%" for s in supplies
           if 0 < s.get("level", -1) <= s.get("low_level", 0)]
    active = {}
    if empty:
        active[EMPTY] = f"used up: {', '.join(empty)}"
    if low:
        active[LOW] = f"running low: {', '.join(low)}"
    return active
