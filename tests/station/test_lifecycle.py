"""The job lifecycle table: the moves it allows, the ones it refuses, the README's diagram."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiosk.station.core import events as ev
from kiosk.station.core.state import (
    FINAL,
    TRANSITIONS,
    IllegalTransition,
    JobState,
    check_transition,
    diagram,
)
from tests.support.core import Harness

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_state_is_in_the_table_and_final_states_go_nowhere() -> None:
    assert set(TRANSITIONS) == {None, *JobState}
    for final in (JobState.CANCELED, JobState.ABORTED):
        assert TRANSITIONS[final] == {}
    assert set(FINAL) == {JobState.COMPLETED, JobState.CANCELED, JobState.ABORTED}


@pytest.mark.parametrize(("current", "new"), [
    (None, "processing"),  # a record is spooled before it prints
    ("pending", "completed"),  # no card is printed without going through the printer
    ("canceled", "pending"),
    ("aborted", "processing"),
    ("completed", "processing"),  # a reprint goes back to the queue first
])
def test_moves_outside_the_table_are_refused(current, new) -> None:
    with pytest.raises(IllegalTransition, match=f"{current} -> {new}"):
        check_transition("r-1", current, new)


def test_the_core_refuses_an_illegal_move_of_a_real_job() -> None:
    harness = Harness()
    harness.send(ev.PrinterReady())
    body, _ = harness.record(1)
    rid = body["record_id"]
    harness.print_one(rid)
    assert harness.store.job(rid).state == "completed"
    with pytest.raises(IllegalTransition):
        harness.core.set_job(rid, JobState.PROCESSING, (), "not a lifecycle move")
    assert harness.store.job(rid).state == "completed"


def test_the_readme_shows_the_table_as_it_is() -> None:
    assert diagram() in README.read_text(), "README's lifecycle diagram is out of date"
