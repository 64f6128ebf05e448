"""The district's forecast, as pure functions: the print rate and what the backlog needs.

Honest by construction: the rate counts only cards actually completed in a
stated recent window, at the stations that can print now; the backlog's end
is ``None`` when nothing can print (or nothing printed in the window, so no
rate can be measured); every figure comes back with what it rests on, for the
page to show beside it.

    rate = print_rate({"st-1": [t1, t2]}, can_print={"st-1"}, now=now, window_s=3600,
                      observed_s=now - started)
    outlook = forecast(backlog=1200, rate=rate, now=now, on_hand=[150, None],
                       printed=400, spoiled=8)
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

RATE_WINDOW_S = 3600.0  # "recent": the last hour of completed cards
MIN_SPAN_S = 300.0  # watched for less than this: count over this anyway (errs low, never high)


@dataclass(frozen=True)
class Rate:
    per_hour: float
    window_s: float  # the span the cards were counted over
    cards: int  # cards completed in that span at the stations counted
    stations: tuple[str, ...]  # the stations counted: those that can print now


@dataclass(frozen=True)
class Forecast:
    backlog_done_at: float | None  # epoch seconds; None: nothing can print at a known rate
    blanks_needed: int
    blanks_on_hand: int | None  # None: no station has booked its stock
    blanks_short: int
    spoil_ratio: float  # blank cards spoiled per card printed, so far


def print_rate(completions: Mapping[str, Sequence[float]], *, can_print: Collection[str],
               now: float, window_s: float = RATE_WINDOW_S,
               observed_s: float | None = None) -> Rate:
    """Cards per hour over the last *window_s*.

    Watched for only *observed_s* (< *window_s*), the span is what was
    watched, but never less than MIN_SPAN_S (or *window_s* if shorter), so one
    card seen in the first second does not make a rate of thousands an hour.
    *completions* maps each station to the times (epoch seconds, ascending)
    of its completed cards; only the stations in *can_print* count, since a
    stopped station prints nothing.
    """
    span = window_s
    if observed_s is not None:
        span = min(window_s, max(observed_s, MIN_SPAN_S))
    counted = sorted(set(can_print))
    cards = sum(bisect_right(times, now) - bisect_right(times, now - span)
                for times in (completions.get(station, ()) for station in counted))
    per_hour = cards * 3600.0 / span if span > 0 and counted else 0.0
    return Rate(per_hour, span, cards, tuple(counted))


def forecast(*, backlog: int, rate: Rate, now: float, on_hand: Sequence[int | None],
             printed: int, spoiled: int) -> Forecast:
    """When the backlog is printed at *rate*, and whether the blank cards last.

    Each card of the backlog takes one blank plus the district's spoilage so
    far (*spoiled* / *printed*, rounded up to whole cards). *on_hand* is each
    station's booked stock (None where no refill was booked: not counted).
    """
    spoil_ratio = spoiled / printed if printed > 0 else 0.0
    needed = math.ceil(backlog * (1.0 + spoil_ratio) - 1e-9) if backlog > 0 else 0
    booked = [n for n in on_hand if isinstance(n, int)]
    blanks = sum(max(0, n) for n in booked) if booked else None
    if backlog == 0:
        done_at: float | None = now
    elif rate.per_hour > 0:
        done_at = now + backlog / rate.per_hour * 3600.0
    else:
        done_at = None
    return Forecast(done_at, needed, blanks, max(0, needed - (blanks or 0)), spoil_ratio)
