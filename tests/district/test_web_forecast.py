"""The forecast on scripted histories whose answers are worked out by hand."""

from __future__ import annotations

import pytest

from kiosk.district.web.forecast import MIN_SPAN_S, Rate, forecast, print_rate

NOW = 1_800_000_000.0
HOUR = 3600.0


def spread(station: str, cards: int, over_s: float, *, ending: float = NOW) -> dict:
    """*cards* completions evenly over the *over_s* seconds before *ending*."""
    return {station: [ending - over_s + over_s * (i + 1) / cards for i in range(cards)]}


def joined(*histories: dict) -> dict:
    out: dict[str, list[float]] = {}
    for history in histories:
        for station, times in history.items():
            out[station] = sorted(out.get(station, []) + times)
    return out


def test_cards_after_now_are_not_counted():
    rate = print_rate(joined(spread("st-a", 6, HOUR), {"st-a": [NOW + 5]}), can_print={"st-a"},
                      now=NOW)
    assert rate.cards == 6


def test_rate_counts_only_stations_that_can_print_and_only_the_window():
    history = joined(spread("st-a", 30, HOUR), spread("st-b", 10, HOUR),
                     spread("st-c", 20, HOUR),  # jammed now: its past says nothing of the future
                     spread("st-a", 50, HOUR, ending=NOW - HOUR))  # before the window
    rate = print_rate(history, can_print={"st-a", "st-b"}, now=NOW, window_s=HOUR)
    assert rate == Rate(per_hour=40.0, window_s=HOUR, cards=40, stations=("st-a", "st-b"))


def test_backlog_done_at_is_backlog_over_rate():
    rate = print_rate(spread("st-a", 40, HOUR), can_print={"st-a"}, now=NOW)
    outlook = forecast(backlog=200, rate=rate, now=NOW, on_hand=[500], printed=0, spoiled=0)
    assert outlook.backlog_done_at == pytest.approx(NOW + 5 * HOUR)


def test_watched_for_half_the_window_counts_over_what_was_watched():
    rate = print_rate(spread("st-a", 10, 1800), can_print={"st-a"}, now=NOW, observed_s=1800)
    assert (rate.per_hour, rate.window_s) == (20.0, 1800)


def test_one_card_in_the_first_seconds_is_not_a_rate_of_thousands():
    rate = print_rate({"st-a": [NOW - 1]}, can_print={"st-a"}, now=NOW, observed_s=2)
    assert rate.window_s == MIN_SPAN_S
    assert rate.per_hour == pytest.approx(3600 / MIN_SPAN_S)


def test_nothing_can_print_gives_no_date():
    rate = print_rate(spread("st-a", 40, HOUR), can_print=set(), now=NOW)
    outlook = forecast(backlog=10, rate=rate, now=NOW, on_hand=[5], printed=0, spoiled=0)
    assert rate.per_hour == 0 and rate.stations == ()
    assert outlook.backlog_done_at is None


def test_stations_that_can_print_but_printed_nothing_give_no_date():
    rate = print_rate({}, can_print={"st-a"}, now=NOW)
    assert forecast(backlog=10, rate=rate, now=NOW, on_hand=[], printed=0,
                    spoiled=0).backlog_done_at is None


def test_blanks_needed_add_the_spoilage_so_far_and_short_is_what_is_missing():
    rate = Rate(10.0, HOUR, 10, ("st-a",))
    outlook = forecast(backlog=100, rate=rate, now=NOW, on_hand=[40, None, 30],
                       printed=200, spoiled=10)
    assert outlook.spoil_ratio == pytest.approx(0.05)
    assert (outlook.blanks_needed, outlook.blanks_on_hand, outlook.blanks_short) == (105, 70, 35)


def test_no_booked_stock_is_null_on_hand_and_all_of_it_short():
    rate = Rate(10.0, HOUR, 10, ("st-a",))
    outlook = forecast(backlog=12, rate=rate, now=NOW, on_hand=[None, None], printed=0,
                       spoiled=0)
    assert (outlook.blanks_needed, outlook.blanks_on_hand, outlook.blanks_short) == (12, None, 12)


def test_enough_blanks_is_nothing_short_and_an_empty_backlog_is_done_now():
    rate = Rate(0.0, HOUR, 0, ())
    outlook = forecast(backlog=0, rate=rate, now=NOW, on_hand=[3], printed=10, spoiled=5)
    assert (outlook.backlog_done_at, outlook.blanks_needed, outlook.blanks_short) == (NOW, 0, 0)
