"""The monthly report of blanks (``kiosk district custody monthly --month YYYY-MM``).

Two parts, per station and for the district:

- **the month's activity**: blanks received (shipments whose manifest is dated in the
  month; the district receives, so this is on the district's line), printed, and invalid
  per category, each counted from the events of the month (a card printed in March and
  declared ``perubahan-elemen-data`` in May is in March's printed and May's invalid);
- **the stock at the month's end** (the district's line): every blank received up to then
  counted once, by what it is at the month's end: ``received = on hand + printed + invalid``
  (a card declared invalid after it was printed counts invalid). Blanks used that are in no
  manifest (foreign) and blanks without a chip UID cannot be in that balance; they are
  counted beside it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date
from zoneinfo import ZoneInfo

from kiosk.district.custody import CATEGORIES, CATEGORY_LABELS
from kiosk.district.custody.period import bulan, days, month_days
from kiosk.district.custody.register import Register

DISTRICT_ROW = "KABUPATEN/KOTA"


@dataclass
class Counts:
    received: int = 0
    printed: int = 0
    invalid: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0))

    @property
    def invalid_total(self) -> int:
        return sum(self.invalid.values())


@dataclass
class Monthly:
    month: date
    last: date
    stations: dict[str, Counts]
    district: Counts
    received_to_date: int
    on_hand: int
    printed_now: int
    invalid_now: dict[str, int]
    foreign: int
    without_uid: int

    @property
    def balanced(self) -> bool:
        return self.received_to_date == (self.on_hand + self.printed_now
                                         + sum(self.invalid_now.values()))


def monthly(register: Register, month: str, tz: ZoneInfo) -> Monthly:
    """The figures of *month* (``YYYY-MM``, in the office's zone *tz*)."""
    first, last = month_days(month)
    start, end = days(first, last, tz)
    stations: dict[str, Counts] = {}
    district = Counts(received=register.received(first.isoformat(), last.isoformat()))
    for station, outcome, category, count in register.activity(start, end):
        for counts in (stations.setdefault(station, Counts()), district):
            if outcome == "printed":
                counts.printed += count
            else:
                counts.invalid[category] = counts.invalid.get(category, 0) + count
    received = register.received(None, last.isoformat())
    printed_now, invalid_now = 0, dict.fromkeys(CATEGORIES, 0)
    for outcome, category, count in register.states_at(end, last.isoformat()):
        if outcome == "printed":
            printed_now += count
        else:
            invalid_now[category] = invalid_now.get(category, 0) + count
    used = printed_now + sum(invalid_now.values())
    foreign, without_uid = register.unlisted(start, end)
    return Monthly(first, last, dict(sorted(stations.items())), district, received,
                   received - used, printed_now, invalid_now, foreign, without_uid)


def to_text(report: Monthly, office: str) -> str:
    """The report as an operator reads it on a terminal (Bahasa Indonesia)."""
    head = ["Stasiun", "Diterima", "Dicetak", *(CATEGORY_LABELS[c] for c in CATEGORIES),
            "Tidak valid"]
    rows = [_row(name, counts) for name, counts in report.stations.items()]
    rows.append(_row(DISTRICT_ROW, report.district))
    widths = [max(len(str(row[i])) for row in [head, *rows]) for i in range(len(head))]
    table = "\n".join("  ".join(str(cell).rjust(w) if i else str(cell).ljust(w)
                                for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
                      for row in [head, *rows])
    invalid = sum(report.invalid_now.values())
    lines = [f"LAPORAN BULANAN BLANKO — {office}", f"Bulan: {bulan(report.month)}", "",
             table, "",
             f"Persediaan pada akhir {bulan(report.month)} (setiap blanko sekali):",
             f"  diterima {report.received_to_date} = ada {report.on_hand}"
             f" + dicetak {report.printed_now} + tidak valid {invalid}"
             + ("" if report.balanced else "  (TIDAK SEIMBANG: periksa manifest)")]
    if report.foreign or report.without_uid:
        lines.append(f"  di luar manifest bulan ini: {report.foreign} blanko asing,"
                     f" {report.without_uid} blanko tanpa UID chip")
    return "\n".join(lines) + "\n"


def to_csv(report: Monthly) -> bytes:
    """One row per station and one for the district; the stock columns on the district's."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["bulan", "stasiun", "diterima", "dicetak", *CATEGORIES, "tidak_valid",
                     "stok_diterima", "stok_ada", "stok_dicetak", "stok_tidak_valid"])
    month = report.month.strftime("%Y-%m")
    for name, counts in report.stations.items():
        writer.writerow([month, *_row(name, counts), "", "", "", ""])
    writer.writerow([month, *_row(DISTRICT_ROW, report.district), report.received_to_date,
                     report.on_hand, report.printed_now, sum(report.invalid_now.values())])
    return buffer.getvalue().encode("utf-8-sig")


def _row(name: str, counts: Counts) -> list:
    received = counts.received if name == DISTRICT_ROW else ""
    return [name, received, counts.printed, *(counts.invalid.get(c, 0) for c in CATEGORIES),
            counts.invalid_total]
