"""What stations publish, read with limits (kiosk/district/inputs.py): each limit, each
refusal with its reason, and what is kept of a state that is partly wrong."""

from __future__ import annotations

import json

import pytest

from kiosk.district import inputs
from kiosk.district.inputs import Invalid


@pytest.mark.parametrize(("payload", "reason"), [
    (b"[" * 1000, "nests deeper than 8"),
    (b'{"a": ' + b"[" * 9 + b"]" * 9 + b"}", "nests deeper than 8"),
    (b'{"a": NaN}', "NaN is not a number"),
    (b'{"a": -Infinity}', "-Infinity is not a number"),
    (b'{"a": 1e999}', "1e999 is not a finite number"),
    (b'{"a": ' + b"9" * 400 + b"}", "an integer of 400 digits"),
    (b'{"a": 1} trailing', "not JSON"),
    (b"\xff\xfe", "not UTF-8"),
    (b"[1, 2]", "a JSON list, not an object"),
    (b" " * (64 * 1024 + 1), "over the limit of 65536"),
])
def test_a_message_outside_the_limits_is_refused_with_its_reason(payload, reason):
    with pytest.raises(Invalid, match=reason.replace("(", r"\(")):
        inputs.parse_object(payload)


def test_a_state_keeps_what_is_in_range_and_names_what_it_refused():
    state = inputs.state(json.dumps({
        "printer_state": "constructor", "printer_state_reasons": ["none", "media-jam-error",
                                                                   "__proto__", 5],
        "accepting_jobs": "yes", "queue": {"pending": 1e23, "held": 2, "processing": True},
        "counters": {"printed": 10, "spoiled": -100000, "rejected": 3},
        "stock": {"remaining": 1e21, "low_threshold": 50, "minutes_to_empty": 12.5},
        "ts": "2026-01-01T00:00:00Z"}).encode())
    assert state.printer_state is None
    assert state.printer_state_reasons == ["media-jam-error"]
    assert state.accepting_jobs is False
    assert state.queue == {"pending": None, "held": 2, "processing": None}
    assert state.counters == {"printed": 10, "spoiled": None, "rejected": 3}
    assert state.stock == {"remaining": None, "low_threshold": 50, "sensor_estimate": None,
                           "minutes_to_empty": 12.5}
    assert state.refused == ["printer_state", "printer_state_reasons", "accepting_jobs",
                             "queue.pending", "queue.processing", "counters.spoiled",
                             "stock.remaining"]


def test_a_real_state_is_kept_whole():
    from kiosk.sim.fleet import idle_state

    state = inputs.state(json.dumps(idle_state()).encode())
    assert state.refused == [] and state.printer_state == "idle"


@pytest.mark.parametrize(("body", "reason"), [
    ({"type": "gossip"}, "event type 'gossip'"),
    ({"type": "job", "job_state": "completed"}, "without a record_id"),
    ({"type": "job", "record_id": "R" * 65, "job_state": "completed"}, "record_id"),
    ({"type": "job", "record_id": "R-1", "job_state": "constructor"}, "not an IPP job state"),
    ({"type": "rejected", "record_id": "R-1", "error": "\x1b[2J"}, "not a machine code"),
])
def test_an_event_outside_mqtt_md_is_refused(body, reason):
    with pytest.raises(Invalid, match=reason.replace("[", r"\[")):
        inputs.event(json.dumps(body).encode())


def test_a_refill_audit_event_carries_its_count_only_when_it_is_one():
    def count(args: object, ok: object = True) -> int | None:
        return inputs.event(json.dumps({"type": "command", "name": "refill", "args": args,
                                        "ok": ok}).encode()).count
    assert count({"count": 200}) == 200
    assert count({"count": 10_001}) is None
    assert count({"count": True}) is None
    assert count({"count": 5}, ok=False) is None


def test_availability_is_online_or_offline_only():
    assert inputs.availability(b"online") == "online"
    for payload in (b"", b"Online", b"online\x00", b"x" * 1000):
        with pytest.raises(Invalid):
            inputs.availability(payload)


def test_text_for_a_terminal_has_no_control_characters_and_a_cap():
    shown = inputs.text("ok\x1b]0;title\x07\x1b[2J\r\n\u202eevil\x9b" + "x" * 500, 50)
    assert not any(c in shown for c in "\x1b\x07\r\n\u202e\x9b")
    assert shown.startswith("ok\ufffd]0;title") and shown.endswith("…") and len(shown) == 51
