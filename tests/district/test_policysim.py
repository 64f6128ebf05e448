"""The policy-only simulation of the district's week: its faults, its bound, and the
router's policy measured against the two baselines on the same faults."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiosk.district.policysim import (
    CARD_S,
    HOUR,
    Faults,
    Outage,
    Policy,
    ideal_pull,
    lower_bound,
    mixed,
    schedule,
    simulate,
    static_split,
    stations,
)
from kiosk.district.routing import takes_document

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


# -- two documents: the E-KTP and the KIA (issue 28) ----------------------------------------


def kinds(ektp: int, kia: int) -> tuple[list[str], dict[str, tuple[str, ...]]]:
    names = [*stations(ektp), *stations(kia, "kia")]
    return names, {n: ("kia",) if n.startswith("kia") else ("ektp",) for n in names}


def test_a_station_takes_the_documents_its_state_lists_and_the_ektp_by_default():
    assert takes_document({"documents": ["kia"]}, "kia")
    assert not takes_document({"documents": ["kia"]}, "ektp")
    assert takes_document({"documents": ["ektp", "kia"]}, "kia")
    for state in ({}, None, {"documents": []}, {"documents": "kia"}, {"documents": [1]}):
        assert takes_document(state, "ektp") and not takes_document(state, "kia"), state


def test_mixed_spreads_the_share_evenly_through_the_backlog():
    mix = mixed(100, 0.10)
    assert mix.count("kia") == 10 and len(mix) == 100
    assert [i for i, d in enumerate(mix) if d == "kia"] == list(range(9, 100, 10))
    assert mixed(5, 0.0) == ["ektp"] * 5


def test_a_mixed_slice_of_the_week_prints_each_record_on_its_kind_near_the_bound():
    """10 % KIA, six E-KTP stations and one KIA station, the week's faults on a slice:
    every record printed, each on a station of its kind, within 3 % of the lower bound."""
    count = 3000
    names, prints = kinds(6, 1)
    faults = schedule(names, scale=count / BACKLOG)
    mix = mixed(count, 0.10)
    bound = lower_bound(count, faults, prints=prints, mix=mix)
    router = simulate(count, faults, prints=prints, mix=mix)
    assert len(router.done_at) == count and router.stranded == 0
    assert all(mix[i] in prints[station] for i, station in router.printed_by.items())
    assert {router.printed_by[i] for i in range(count) if mix[i] == "kia"} == {"kia-1"}
    assert router.makespan <= bound * 1.03
    pull = ideal_pull(count, faults, prints=prints, mix=mix)
    assert router.makespan <= pull.makespan * 1.01 and pull.makespan >= bound
    split = static_split(count, faults, prints=prints, mix=mix)
    assert all(mix[i] in prints[station] for i, station in split.printed_by.items())


def test_the_mixed_bound_is_the_larger_kinds_and_pooled_when_a_station_prints_both():
    names, prints = kinds(2, 1)
    faults = quiet(names)
    mix = mixed(30, 0.5)  # 15 KIA records on one station, 15 E-KTP on two
    assert lower_bound(30, faults, prints=prints, mix=mix) == pytest.approx(15 * CARD_S,
                                                                            abs=0.05)
    both = {**prints, "kia-1": ("ektp", "kia")}
    assert lower_bound(30, faults, prints=both, mix=mix) == pytest.approx(10 * CARD_S, abs=0.05)
    assert simulate(30, faults, prints=prints, mix=mix).makespan == 15 * CARD_S


def test_the_only_station_of_a_kind_keeps_its_records_through_a_jam():
    """Releasing them would strand them (no other station may take them): they wait in
    that station and print once the jam is cleared. Two stations of the kind: they move."""
    mix = ["kia", "ektp"] * 6  # the E-KTP station's cards keep the router looking
    names, prints = kinds(1, 1)
    faults = quiet(names, jams={"kia-1": {1: HOUR}})
    alone = simulate(12, faults, prints=prints, mix=mix, policy=Policy(3, 60))
    assert (alone.released, alone.stranded, len(alone.done_at)) == (0, 0, 12)
    assert alone.makespan == HOUR + 6 * CARD_S
    names, prints = kinds(1, 2)
    faults = quiet(names, jams={"kia-1": {1: HOUR}})
    paired = simulate(12, faults, prints=prints, mix=mix, policy=Policy(3, 60))
    assert (paired.released, paired.stranded, len(paired.done_at)) == (2, 0, 12)
    assert paired.makespan == HOUR + CARD_S


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(ektp=st.integers(0, 3), kia=st.integers(0, 3), count=st.integers(1, 120),
       share=st.sampled_from([0.0, 0.05, 0.1, 0.5, 0.9, 1.0]),
       jam_at=st.lists(st.integers(1, 40), max_size=3),
       policy=st.sampled_from([Policy(), Policy(1, 30), Policy(None, 300), Policy(3, None)]))
def test_no_record_ever_prints_on_a_station_of_another_kind(ektp, kia, count, share, jam_at,
                                                           policy):
    """Over mixed backlogs, station mixes, jams and router settings: a record prints only on
    a station of its kind; every record of a kind some station prints is printed; a record
    of a kind no station prints waits (never printed, never stranded)."""
    names, prints = kinds(ektp, kia)
    if not names:
        return
    jams = {name: {pick: 600.0 for pick in jam_at} for name in names[::2]}
    faults = quiet(names, jams=jams)
    mix = mixed(count, share)
    for run in (simulate, static_split, ideal_pull):
        kwargs = {"policy": policy} if run is simulate else {}
        result = run(count, faults, prints=prints, mix=mix, **kwargs)
        assert all(mix[i] in prints[station] for i, station in result.printed_by.items())
        printable = {i for i in range(count) if any(mix[i] in p for p in prints.values())}
        assert set(result.printed_by) == printable, run.__name__
        assert result.stranded == 0
