"""RFC 3339 stamps: written to the second in UTC, read back with or without a fraction."""

from __future__ import annotations

from kiosk.contract.timestamps import parse_rfc3339, rfc3339


def test_a_stamp_is_utc_to_the_second_and_reads_back() -> None:
    assert rfc3339(1_767_323_045.9) == "2026-01-02T03:04:05Z"
    assert parse_rfc3339("2026-01-02T03:04:05Z") == 1_767_323_045
    assert parse_rfc3339("2026-01-02T03:04:05.250Z") == 1_767_323_045.25


def test_what_is_not_a_utc_stamp_reads_as_none() -> None:
    for stamp in (None, 5, "", "yesterday", "2026-01-02T03:04:05", "2026-01-02T03:04:05+07:00",
                  "2026-13-02T03:04:05Z", "2026-01-02T03:04:05.x5Z", "2026-01-02 03:04:05Z"):
        assert parse_rfc3339(stamp) is None, stamp
