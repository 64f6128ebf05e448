"""A station's ``blank`` event checked as untrusted input (kiosk/district/custody/blank.py)."""

from __future__ import annotations

import json

import pytest

from kiosk.district.custody.blank import BadBlank, NotBlank, parse_blank


def body(**changes) -> dict:
    event = {"schema": "ektp.event/1", "boot_id": "0b7f0d4e-3c1a-4a43-9a4b-2b1d8c1e9f00",
             "seq": 7, "ts": "2026-12-07T03:04:05Z", "type": "blank", "uid": "04A1B2C3D4E5F6",
             "record_id": "R-0001", "document": "ektp", "outcome": "invalid",
             "category": "gagal-encode", "detail": "verify failed"}
    event.update(changes)
    return event


def parse(**changes):
    return parse_blank(json.dumps(body(**changes)).encode())


def test_a_valid_event_is_read_in_full():
    blank = parse()
    assert (blank.uid, blank.record_id, blank.outcome, blank.category, blank.seq) == (
        "04A1B2C3D4E5F6", "R-0001", "invalid", "gagal-encode", 7)
    assert blank.at == 1796612645.0


@pytest.mark.parametrize("uid", ["DEADBEEF", "04A1B2C3D4E5F6", "0422334455667788990A", None])
def test_uids_of_4_7_10_bytes_or_null_are_taken(uid):
    assert parse(uid=uid).uid == uid


@pytest.mark.parametrize(("changes", "reason"), [
    ({"uid": "04a1b2c3d4e5f6"}, "not upper-case hex"),
    ({"uid": "04A1B2C3D4E5"}, "not upper-case hex"),
    ({"uid": 1234}, "not upper-case hex"),
    ({"uid": "04A1B2C3D4E5F6G"}, "not upper-case hex"),
    ({"category": "hilang"}, "category \"hilang\""),
    ({"category": None}, "category null"),
    ({"outcome": "printed"}, "a printed blank has no category"),
    ({"outcome": "lost"}, "outcome \"lost\""),
    ({"extra": 1}, "unknown member 'extra'"),
    ({"seq": -1}, "seq"),
    ({"seq": True}, "seq"),
    ({"ts": "yesterday"}, "ts"),
    ({"ts": "2026-13-07T03:04:05Z"}, "no date and time"),
    ({"record_id": "R 1"}, "record_id"),
    ({"document": ""}, "document"),
    ({"schema": "ektp.event/2"}, "schema"),
    ({"detail": 5}, "detail is not text"),
    ({"detail": "x" * 17_000}, "over the 16384"),
])
def test_a_bad_event_is_refused_with_its_reason(changes, reason):
    with pytest.raises(BadBlank) as refused:
        parse(**changes)
    assert reason in str(refused.value)


def test_uid_must_be_present_even_when_null():
    event = body()
    del event["uid"]
    with pytest.raises(BadBlank, match="uid missing"):
        parse_blank(json.dumps(event).encode())


@pytest.mark.parametrize("payload", [b"\xff\xfe", b"not json", b"[]", b"null", b"{}"])
def test_what_is_not_an_event_is_refused(payload):
    with pytest.raises(BadBlank):
        parse_blank(payload)


def test_other_event_types_are_not_the_registers_business():
    with pytest.raises(NotBlank):
        parse_blank(json.dumps({"schema": "ektp.event/1", "type": "job"}).encode())


def test_a_nik_in_a_detail_is_masked_and_control_characters_dropped():
    blank = parse(detail="operator typed 3210014101900001\nby mistake")
    assert "3210014101900001" not in blank.detail
    assert blank.detail == "operator typed ************0001 by mistake"


def test_a_flood_of_bad_events_reaches_the_journal_as_its_first_lines_and_a_count(caplog):
    import logging

    from kiosk.district.custody.keep import _JournalWindow

    window = _JournalWindow()
    allowed = [window.allows("st-1") for _ in range(window.LIMIT + 30)]
    assert allowed == [True] * window.LIMIT + [False] * 30
    assert window.allows("st-2")  # another station has its own share
    window._since -= window.WINDOW_S  # the window is over
    with caplog.at_level(logging.WARNING, logger="kiosk.district.custody.keep"):
        assert window.allows("st-1")
    assert "30 more blank events from st-1 rejected" in caplog.text
