"""Days and months of the office's time zone as spans of the register's clock (UTC epoch)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ZONE_NAMES = {"Asia/Jakarta": "WIB", "Asia/Pontianak": "WIB", "Asia/Makassar": "WITA",
              "Asia/Jayapura": "WIT"}
MONTHS = ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus",
          "September", "Oktober", "November", "Desember")
DAYS = ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu")


def zone(name: str) -> ZoneInfo:
    """The time zone *name* (``Asia/Jakarta``), or ValueError saying it is unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (e.g. Asia/Jakarta, Asia/Makassar,"
                         " Asia/Jayapura)") from None


def zone_label(tz: ZoneInfo) -> str:
    return ZONE_NAMES.get(tz.key, tz.key)


def days(first: date, last: date, tz: ZoneInfo) -> tuple[float, float]:
    """[start, end) of the days *first* to *last* inclusive, as epoch seconds."""
    start = datetime.combine(first, time(), tz)
    end = datetime.combine(last + timedelta(days=1), time(), tz)
    return start.timestamp(), end.timestamp()


def month_days(month: str) -> tuple[date, date]:
    """First and last day of ``YYYY-MM``; ValueError if it is not one."""
    try:
        first = datetime.strptime(month, "%Y-%m").date()
    except ValueError:
        raise ValueError(f"month {month!r} is not YYYY-MM") from None
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return first, following - timedelta(days=1)


def local(at: float, tz: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(at, tz)


def tanggal(day: date) -> str:
    """``7 Desember 2026``."""
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def bulan(first: date) -> str:
    """``Desember 2026``."""
    return f"{MONTHS[first.month - 1]} {first.year}"
