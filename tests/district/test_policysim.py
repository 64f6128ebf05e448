"""The policy-only simulation of the district's week: its faults, its bound, and the
router's policy measured against the two baselines on the same faults."""

from __future__ import annotations

import itertools
import math

import pytest

from kiosk.district.policysim import (
    CARD_S,
    HOUR,
    Faults,
    Outage,
    Policy,
    ideal_pull,
    lower_bound,
    schedule,
    simulate,
    static_split,
    stations,
)

BACKLOG = 16_851


def quiet(names: list[str], jams: dict | None = None, outages: tuple = ()) -> Faults:
    return Faults(tuple(names), {n: (jams or {}).get(n, {}) for n in names}, outages)


def test_without_faults_every_policy_prints_everything_as_fast_as_the_bound():
    names = stations(3)
    faults = quiet(names)
    best = math.ceil(100 / 3) * CARD_S
    for result in (simulate(100, faults), static_split(100, faults), ideal_pull(100, faults)):
        assert len(result.done_at) == 100
        assert result.makespan == best
    assert lower_bound(100, faults) == pytest.approx(100 * CARD_S / 3, abs=0.05)


def test_the_seeded_week_has_the_faults_it_promises_and_is_the_same_every_time():
    names = stations(6)
    faults = schedule(names)
    assert faults == schedule(names)
    for name in names:
        picks = sorted(faults.jams[name])
        assert all(200 <= b - a <= 400 for a, b in itertools.pairwise(picks))
        assert all(120 <= s <= 480 for s in faults.jams[name].values())
    kinds = {(o.station, o.kind, o.end - o.start) for o in faults.outages if o.kind != "overheat"}
    assert kinds == {("st-2", "feeder", HOUR), ("st-4", "offline", HOUR)}
    heat = [o for o in faults.outages if o.kind == "overheat"]
    assert heat and all(300 <= o.end - o.start <= 600 for o in heat)
    shorter = {o.kind: o.end - o.start for o in schedule(names, scale=0.1).outages}
    assert shorter["feeder"] == shorter["offline"] == HOUR / 10


def test_the_routers_policy_meets_the_goal_on_a_slice_of_the_week():
    """Within 3 % of the lower bound, ahead of a static split, at most 1 % behind an
    ideal pull queue, on the week's faults scaled to a slice of the backlog."""
    count = 3000
    faults = schedule(stations(6), scale=count / BACKLOG)
    bound = lower_bound(count, faults)
    router = simulate(count, faults)
    assert len(router.done_at) == count
    assert router.makespan <= bound * 1.03
    assert router.makespan < static_split(count, faults).makespan
    assert router.makespan <= ideal_pull(count, faults).makespan * 1.01
    # The bound is one: nothing beats it.
    assert ideal_pull(count, faults).makespan >= bound


def test_pushing_the_whole_backlog_out_at_once_loses_to_a_jam():
    count = 3000
    faults = schedule(stations(6), scale=count / BACKLOG)
    pushed = simulate(count, faults, policy=Policy(hold_ahead=None, release_after_s=300))
    assert pushed.makespan > simulate(count, faults).makespan * 1.03


def test_a_jammed_stations_queued_records_move_after_the_delay_and_never_return():
    names = stations(2)
    faults = quiet(names, jams={"st-1": {1: 2 * HOUR}})
    result = simulate(10, faults, policy=Policy(hold_ahead=3, release_after_s=60))
    assert result.released == 2  # the two queued behind the jammed card
    assert result.makespan == 2 * HOUR + CARD_S  # the jammed card, cleared, prints last
    kept = simulate(10, faults, policy=Policy(hold_ahead=3, release_after_s=None))
    assert kept.released == 0
    assert kept.makespan == 2 * HOUR + 3 * CARD_S


def test_an_offline_station_keeps_what_it_holds_and_prints_it_when_back():
    names = stations(2)
    faults = quiet(names, outages=(Outage("st-1", "offline", 10.0, 10.0 + HOUR),))
    result = simulate(30, faults, policy=Policy(hold_ahead=3, release_after_s=60))
    assert result.released == 0
    assert len(result.done_at) == 30
    # Its card in the printer finishes; the two queued behind wait for the hour.
    assert result.done_at[-2:] == [10.0 + HOUR + CARD_S, 10.0 + HOUR + 2 * CARD_S]


def test_a_static_split_hands_each_station_its_share_up_front():
    names = stations(2)
    faults = quiet(names, outages=(Outage("st-1", "feeder", 0.0, HOUR),))
    # Its first card was started as the feeder ran out; the four others wait the hour.
    assert static_split(10, faults).makespan == HOUR + 4 * CARD_S
    assert ideal_pull(10, faults).makespan == 9 * CARD_S  # st-2 takes every other one
