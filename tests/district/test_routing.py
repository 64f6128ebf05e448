"""The router's choice of station, as a pure function of the stations' retained documents."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.district.routing import (
    HOLD_AHEAD,
    ReleaseClock,
    choose,
    is_faulted,
    is_station,
    plan,
    queue_length,
    refusal,
)


def state(*, printer="idle", reasons=("none",), accepting=True, queue=(0, 0, 0),
          remaining=None) -> dict:
    pending, held, processing = queue
    return {
        "schema": "ektp.state/1",
        "printer_state": printer,
        "printer_state_reasons": list(reasons),
        "accepting_jobs": accepting,
        "queue": {"pending": pending, "held": held, "processing": processing},
        "stock": {"remaining": remaining, "low_threshold": 50, "sensor_estimate": None},
    }


def online(*names: str) -> dict[str, str]:
    return dict.fromkeys(names, "online")


def test_the_shortest_queue_wins():
    states = {"st-1": state(queue=(3, 0, 1)), "st-2": state(queue=(1, 0, 1)),
              "st-3": state(queue=(2, 1, 0))}
    assert choose(online("st-1", "st-2", "st-3"), states) == "st-2"


def test_held_and_processing_jobs_count_as_queue():
    assert queue_length(state(queue=(1, 2, 3))) == 6
    states = {"st-1": state(queue=(0, 2, 0)), "st-2": state(queue=(1, 0, 0))}
    assert choose(online("st-1", "st-2"), states) == "st-2"


def test_ties_go_to_the_station_name():
    states = {name: state() for name in ("st-3", "st-1", "st-2")}
    assert choose(online("st-3", "st-1", "st-2"), states) == "st-1"


def test_records_sent_but_not_yet_counted_by_a_station_add_to_its_queue():
    states = {"st-1": state(), "st-2": state(queue=(1, 0, 0))}
    assert choose(online("st-1", "st-2"), states, unconfirmed={"st-1": 2}) == "st-2"
    # A burst spreads: each choice counts what was sent before it.
    sent: dict[str, int] = {}
    states = {name: state() for name in ("st-1", "st-2", "st-3")}
    for _ in range(9):
        name = choose(online(*states), states, unconfirmed=sent)
        sent[name] = sent.get(name, 0) + 1
    assert sent == {"st-1": 3, "st-2": 3, "st-3": 3}


def test_excluded_stations_are_never_chosen():
    states = {"st-1": state(), "st-2": state(queue=(9, 0, 1))}
    assert choose(online("st-1", "st-2"), states, exclude={"st-1"}) == "st-2"
    assert choose(online("st-1", "st-2"), states, exclude={"st-1", "st-2"}) is None


@pytest.mark.parametrize(("link", "document", "why"), [
    (None, state(), "offline"),
    ("offline", state(), "offline"),
    ("online", None, "no-state"),
    ("online", {}, "no-state"),
    ("online", state(accepting=False), "not-accepting"),
    ("online", state(printer="stopped", reasons=["paused"]), "stopped"),
    ("online", state(printer="stopped", reasons=["connecting-to-device"]), "stopped"),
    ("online", state(printer="stopped", reasons=["media-jam-error"]), "media-jam-error"),
    ("online", state(printer="processing",
                     reasons=["media-low-warning", "marker-supply-empty-error"]),
     "marker-supply-empty-error"),
    ("online", state(remaining=0), "no-stock"),
    ("online", state(remaining=-2), "no-stock"),
])
def test_a_station_that_cannot_print_is_refused_with_the_reason(link, document, why):
    assert refusal(link, document) == why
    assert choose({"st-1": link} if link else {}, {"st-1": document} if document else {}) is None


@pytest.mark.parametrize("document", [
    state(),
    state(printer="processing", queue=(4, 0, 1)),
    state(remaining=None),  # no refill booked yet: unknown, not empty
    state(remaining=1),
    state(reasons=["media-low-warning", "door-open-warning", "offline-report"]),
])
def test_a_station_that_can_print_is_chosen(document):
    assert refusal("online", document) is None
    assert choose(online("st-1"), {"st-1": document}) == "st-1"


def test_an_empty_or_faulted_station_loses_to_a_busy_healthy_one():
    states = {"st-1": state(remaining=0), "st-2": state(printer="stopped",
                                                        reasons=["media-empty-error"]),
              "st-3": state(printer="processing", queue=(20, 0, 1), remaining=500)}
    assert choose(online("st-1", "st-2", "st-3"), states) == "st-3"


def test_only_station_ids_are_candidates():
    assert is_station("majalengka-01") and not is_station("_router")
    assert not is_station("St-1") and not is_station("x" * 33)
    states = {"_router": state(), "ST-1": state(), "st-2": state(queue=(5, 0, 0))}
    assert choose(online(*states), states) == "st-2"


def test_faulted_means_online_but_unable_to_print():
    assert is_faulted("online", state(printer="stopped", reasons=["media-jam-error"]))
    assert is_faulted("online", state(remaining=0))
    assert is_faulted("online", state(printer="stopped", reasons=["paused"]))
    assert not is_faulted("online", state())
    assert not is_faulted("offline", state(printer="stopped", reasons=["media-jam-error"]))
    assert not is_faulted("online", state(accepting=False))
    assert not is_faulted("online", None)


def test_a_station_is_due_a_release_after_being_faulted_that_long_then_periodically():
    clock = ReleaseClock(10)
    jammed = {"st-1": state(printer="stopped", reasons=["media-jam-error"]), "st-2": state()}
    links = online("st-1", "st-2")
    assert clock.due(links, jammed, now=100) == []
    assert clock.due(links, jammed, now=109.9) == []
    assert clock.due(links, jammed, now=110) == ["st-1"]
    assert clock.due(links, jammed, now=115) == []
    assert clock.due(links, jammed, now=120) == ["st-1"]
    # Back to health, then faulted again: the wait starts over.
    assert clock.due(links, {**jammed, "st-1": state()}, now=121) == []
    assert clock.due(links, jammed, now=125) == []
    assert clock.due(links, jammed, now=135) == ["st-1"]


def test_an_offline_or_draining_station_is_never_due_a_release():
    clock = ReleaseClock(0)
    states = {"st-1": state(printer="stopped", reasons=["media-jam-error"]),
              "st-2": state(accepting=False)}
    assert clock.due({"st-1": "offline", "st-2": "online"}, states, now=50) == []


@pytest.mark.parametrize("document", [
    {"accepting_jobs": True, "printer_state_reasons": 7, "queue": [], "stock": "full"},
    {"accepting_jobs": True, "printer_state_reasons": [None, 3], "queue": {"pending": "x"}},
])
def test_malformed_documents_from_the_network_do_not_break_the_choice(document):
    assert refusal("online", document) is None
    assert queue_length(document) == 0
    assert choose(online("st-1"), {"st-1": document}) == "st-1"


def test_a_station_holding_its_share_ahead_takes_no_more():
    states = {"st-1": state(printer="processing", queue=(2, 0, 1)),
              "st-2": state(printer="processing", queue=(1, 0, 1))}
    assert choose(online("st-1", "st-2"), states, ahead=3) == "st-2"
    assert choose(online("st-1", "st-2"), states, ahead=3, unconfirmed={"st-2": 1}) is None
    assert choose(online("st-1", "st-2"), states, ahead=None, unconfirmed={"st-2": 5}) == "st-1"
    assert HOLD_AHEAD >= 2  # the next card is spooled before the printer frees


class Waiting:
    def __init__(self, name: str, released_by: tuple[str, ...] = (),
                 document: str = "ektp") -> None:
        self.name, self.released_by, self.document = name, released_by, document


def test_plan_fills_each_station_to_its_hold_and_leaves_the_rest_waiting():
    states = {"st-1": state(), "st-2": state(printer="processing", queue=(0, 0, 1))}
    waiting = [Waiting(f"r{i}") for i in range(10)]
    chosen = plan(waiting, online("st-1", "st-2"), states, ahead=3)
    assert [(r.name, s) for r, s in chosen] == [
        ("r0", "st-1"), ("r1", "st-1"), ("r2", "st-2"), ("r3", "st-1"), ("r4", "st-2")]


def test_plan_stops_reading_the_backlog_once_no_station_has_room():
    read: list[int] = []

    def backlog():
        for index in range(10_000):
            read.append(index)
            yield Waiting(f"r{index}")

    states = {"st-1": state()}
    assert len(plan(backlog(), online("st-1"), states, ahead=2)) == 2
    assert len(read) <= 3


def test_plan_skips_a_record_released_by_the_only_station_with_room_and_goes_on():
    states = {"st-1": state(printer="processing", queue=(2, 0, 1)), "st-2": state()}
    waiting = [Waiting("back", released_by=("st-2",)), Waiting("new")]
    chosen = plan(waiting, online("st-1", "st-2"), states, ahead=3)
    assert [(r.name, s) for r, s in chosen] == [("new", "st-2")]
    # Without a hold every record goes out at once, to the shortest queues.
    chosen = plan([Waiting(f"r{i}") for i in range(6)], online("st-1", "st-2"), states)
    assert [s for _, s in chosen] == ["st-2", "st-2", "st-2", "st-1", "st-2", "st-1"]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(documents=st.lists(st.sampled_from(["ektp", "kia"]), min_size=1, max_size=60),
       prints=st.lists(st.sampled_from([["ektp"], ["kia"], ["ektp", "kia"], None]),
                       min_size=1, max_size=6),
       loads=st.lists(st.integers(0, 4), min_size=6, max_size=6),
       ahead=st.integers(1, 4))
def test_plan_never_gives_a_record_to_a_station_that_does_not_print_its_document(
        documents, prints, loads, ahead):
    """Issue 28: under any load, a KIA record never reaches an E-KTP station nor an E-KTP
    record a KIA one; a record with no station of its kind with room waits (is skipped),
    and the records of the other kind still go."""
    states = {}
    for index, listed in enumerate(prints):
        states[f"st-{index}"] = state(queue=(loads[index], 0, 0))
        if listed is not None:
            states[f"st-{index}"]["documents"] = listed
    waiting = [Waiting(f"r{i}", document=doc) for i, doc in enumerate(documents)]
    chosen = plan(waiting, online(*states), states, ahead=ahead)
    final = {name: loads[i] for i, name in enumerate(states)}
    for record, station in chosen:
        assert record.document in (states[station].get("documents") or ["ektp"])
        final[station] += 1
    given_out = {record.name for record, _ in chosen}
    for record in waiting:  # one that waits has no station of its kind with room left
        if record.name not in given_out:
            assert all(final[name] >= ahead for name, s in states.items()
                       if record.document in (s.get("documents") or ["ektp"])), record.name
