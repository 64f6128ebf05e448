"""The district view folded from messages, with no network: no PII kept, ages, why_not."""

from __future__ import annotations

import json
import time

from kiosk.district.web.model import COMPLETIONS_KEPT, DAY_S, DistrictView
from kiosk.sim.fleet import idle_state

PREFIX = "ektp/v1/3210"
T0 = 1_800_000_000.0
PII = ("3210014501900001", "SITI AMINAH", "JL. MERDEKA", "/9j/4AAQSkZJRg", "iVBORw0KGgo")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def stamp(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def make_view() -> tuple[DistrictView, Clock]:
    clock = Clock()
    view = DistrictView(PREFIX, district="3210", clock=clock)
    view.set_broker(True)
    return view, clock


def send(view: DistrictView, station: str, leaf: str, body: dict | str) -> None:
    payload = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    view.on_message(f"{PREFIX}/{station}/{leaf}", payload)


def station(view: DistrictView, name: str) -> dict:
    return next(s for s in view.document()["stations"] if s["id"] == name)


def online(view: DistrictView, name: str, ts: float, **changes) -> None:
    send(view, name, "availability", "online")
    send(view, name, "state", {**idle_state(), "ts": stamp(ts), **changes})


def everything_kept(view: DistrictView) -> str:
    """All the view holds, as text (its own fields and each station's)."""
    held = [repr(vars(view))] + [repr(vars(s)) for s in view._stations.values()]
    return "\n".join(held)


def test_no_personal_data_is_kept_or_served():
    view, _ = make_view()
    personal = {"nik": PII[0], "fields": {"nama": PII[1], "alamat": PII[2]},
                "photo_jpeg": PII[3], "signature_png": PII[4]}
    online(view, "st-1", T0, **personal)  # a state that (wrongly) carries a record
    for kind, state in (("job", "completed"), ("job", "processing"), ("rejected", None)):
        send(view, "st-1", "events", {"type": kind, "job_state": state, "record_id": "R-1",
                                      "detail": PII[1], "ts": stamp(T0), **personal})
    send(view, "_router", "state", {"waiting": 1, "at_stations": {"st-1": 1}, **personal})
    served = json.dumps([view.document(), view.history()])
    kept = everything_kept(view)
    for value in PII:
        assert value not in served
        assert value not in kept
    assert "R-1" in kept  # record ids are what it keeps


def test_state_age_is_measured_from_the_stations_stamp():
    view, clock = make_view()
    online(view, "st-1", T0 - 5)
    clock.now = T0 + 37
    assert station(view, "st-1")["state_age_s"] == 42


def test_state_without_a_stamp_ages_from_its_arrival():
    view, clock = make_view()
    send(view, "st-1", "availability", "online")
    send(view, "st-1", "state", idle_state())
    clock.now += 9
    assert station(view, "st-1")["state_age_s"] == 9


def test_why_not_says_why_the_router_skips_a_station_and_is_absent_when_it_does_not():
    view, _ = make_view()
    online(view, "ok-1", T0)
    online(view, "jam-1", T0, printer_state="stopped",
           printer_state_reasons=["media-jam-error"])
    online(view, "drain-1", T0, accepting_jobs=False)
    online(view, "empty-1", T0, stock={"remaining": 0})
    online(view, "gone-1", T0)
    send(view, "gone-1", "availability", "offline")
    by_id = {s["id"]: s for s in view.document()["stations"]}
    assert by_id["ok-1"]["takes_records"] is True and "why_not" not in by_id["ok-1"]
    assert {name: (s["takes_records"], s.get("why_not")) for name, s in by_id.items()
            if name != "ok-1"} == {
        "jam-1": (False, "media-jam-error"), "drain-1": (False, "not-accepting"),
        "empty-1": (False, "no-stock"), "gone-1": (False, "offline")}
    assert by_id["jam-1"]["printer_state_reasons"] == ["media-jam-error"]


def test_rate_counts_completed_cards_once_and_only_where_printing_goes_on():
    view, clock = make_view()
    online(view, "st-a", T0)
    online(view, "st-b", T0, printer_state="stopped", printer_state_reasons=["cover-open-error"])
    clock.now = T0 + 3600
    for n in range(6):
        event = {"type": "job", "job_state": "completed", "record_id": f"A-{n}",
                 "ts": stamp(T0 + 600 * n + 1)}
        send(view, "st-a", "events", event)
        send(view, "st-a", "events", event)  # sent again after a reconnect: counted once
        send(view, "st-b", "events", {**event, "record_id": f"B-{n}"})
    document = view.document()
    assert document["rate_per_hour"] == 6.0
    assert document["forecast"]["assumptions"]["stations_counted"] == ["st-a"]
    assert sum(count for _, count in view.history()["cards_per_hour"]) == 12


def test_backlog_comes_from_the_router_when_it_publishes_one():
    view, _ = make_view()
    online(view, "st-a", T0, queue={"pending": 3, "held": 0, "processing": 1})
    assert view.document()["backlog"] == {"waiting": 0, "at_stations": 4, "by_document": {},
                                          "no_printer": []}
    send(view, "_router", "availability", "online")
    send(view, "_router", "state", {"schema": "ektp.router-state/1", "waiting": 120,
                                    "at_stations": {"st-a": 5, "st-b": 2}})
    document = view.document()
    assert document["backlog"] == {"waiting": 120, "at_stations": 7, "by_document": {},
                                   "no_printer": []}
    assert document["router"] == "online"
    assert document["forecast"]["blanks_needed"] == 127


def test_records_waiting_for_a_printer_of_their_kind_are_shown_per_document():
    """Issue 28: KIA records with no KIA station wait; the page says which document waits."""
    view, _ = make_view()
    send(view, "_router", "availability", "online")
    send(view, "_router", "state", {"schema": "ektp.router-state/1", "waiting": 12,
                                    "at_stations": {}, "no_printer": ["kia", "__proto__"],
                                    "waiting_by_document": {"ektp": 9, "kia": 3, "x": 1,
                                                            "constructor": 5}})
    backlog = view.document()["backlog"]
    assert backlog["no_printer"] == ["kia"]
    assert backlog["by_document"] == {"ektp": 9, "kia": 3}


def test_each_documents_blanks_are_forecast_on_its_own_stations():
    """Issue 28: a KIA blank is no E-KTP blank: each document's need is set against the
    stock of the stations that print it, so a KIA shortage shows beside plenty of E-KTP."""
    view, _ = make_view()
    online(view, "st-a", T0, stock={"remaining": 100, "low_threshold": 50,
                                    "sensor_estimate": None})
    online(view, "st-k", T0, documents=["kia"],
           stock={"remaining": 30, "low_threshold": 10, "sensor_estimate": None})
    send(view, "_router", "availability", "online")
    send(view, "_router", "state", {"schema": "ektp.router-state/1", "waiting": 90,
                                    "at_stations": {}, "no_printer": [],
                                    "waiting_by_document": {"ektp": 50, "kia": 40}})
    by_document = view.document()["forecast"]["by_document"]
    assert by_document["ektp"]["stations"] == ["st-a"]
    assert (by_document["ektp"]["blanks_needed"], by_document["ektp"]["blanks_short"]) == (50, 0)
    assert by_document["kia"]["stations"] == ["st-k"]
    assert (by_document["kia"]["blanks_needed"], by_document["kia"]["blanks_on_hand"],
            by_document["kia"]["blanks_short"]) == (40, 30, 10)


def test_router_and_broker_links():
    view, _ = make_view()
    assert view.document()["router"] == "unknown"
    send(view, "_router", "availability", "offline")
    assert view.document()["router"] == "offline"
    view.set_broker(False)
    assert (view.document()["broker"], view.document()["router"]) == ("offline", "unknown")


def test_memory_stays_bounded_per_station():
    view, clock = make_view()
    online(view, "st-a", T0)

    def card(n: int, at: float) -> None:
        clock.now = at
        send(view, "st-a", "events", {"type": "job", "job_state": "completed",
                                      "record_id": f"R-{n}"})
        send(view, "st-a", "state", {**idle_state(remaining=100_000 - n), "ts": stamp(at)})

    for n in range(COMPLETIONS_KEPT + 500):  # faster than any printer, within one window
        card(n, T0 + n * 0.5)
    kept = view._stations["st-a"]
    assert len(kept.completions) == COMPLETIONS_KEPT
    assert len(kept.completed_ids) <= 512
    assert len(kept.stock) <= (clock.now - T0) / view.stock_sample_s + 2
    for n in range(100):  # two days later, a card every 10 min
        card(COMPLETIONS_KEPT + 500 + n, T0 + 2 * DAY_S + n * 600)
    assert len(kept.completions) <= 7  # the last hour's only
    assert len(view._hourly) <= 26
    assert all(at >= clock.now - DAY_S for at, _ in kept.stock)


def test_a_change_is_announced():
    view, _ = make_view()
    calls = []
    view.on_change = lambda: calls.append(1)
    online(view, "st-a", T0)
    send(view, "st-a", "events", {"type": "alert", "reason": "media-low-warning"})
    assert len(calls) == 2  # availability and state; an alert changes nothing kept


def test_a_card_completed_long_ago_counts_in_its_hour_not_in_the_rate():
    view, clock = make_view()
    online(view, "st-a", T0)
    clock.now = T0 + 4 * 3600
    send(view, "st-a", "events", {"type": "job", "job_state": "completed", "record_id": "R-old",
                                  "ts": stamp(T0 + 60)})  # sent again from an outbox, late
    assert view.document()["rate_per_hour"] == 0
    hours = dict(view.history()["cards_per_hour"])
    assert hours[stamp(T0 // 3600 * 3600)] == 1


def test_a_station_silent_for_the_forget_time_leaves_and_its_old_retained_state_stays_out():
    clock = Clock()
    view = DistrictView(PREFIX, district="3210", clock=clock, forget_after_s=3600)
    online(view, "st-a", T0)
    online(view, "st-b", T0)
    send(view, "st-b", "availability", "offline")
    clock.now = T0 + 3599
    assert {s["id"] for s in view.document()["stations"]} == {"st-a", "st-b"}
    clock.now = T0 + 3601
    assert {s["id"] for s in view.document()["stations"]} == {"st-a"}  # online: stays
    # the page reconnects: the broker sends st-b's retained messages again, stamped T0
    view.on_message(f"{PREFIX}/st-b/availability", b"offline", retained=True)
    view.on_message(f"{PREFIX}/st-b/state", json.dumps({**idle_state(), "ts": stamp(T0)})
                    .encode(), retained=True)
    assert {s["id"] for s in view.document()["stations"]} == {"st-a"}
    send(view, "st-b", "availability", "online")  # it speaks again: back
    assert {s["id"] for s in view.document()["stations"]} == {"st-a", "st-b"}


def test_once_a_router_is_seen_the_rate_and_the_bars_are_its_word_not_the_stations():
    view, clock = make_view()
    online(view, "st-a", T0)
    online(view, "st-b", T0)
    send(view, "_router", "availability", "online")
    clock.now = T0 + 600
    for n in range(50):  # st-b's own word: never confirmed by the router
        send(view, "st-b", "events", {"type": "job", "job_state": "completed",
                                      "record_id": f"F-{n}", "ts": stamp(T0 - 7200)})
    for n in range(3):
        send(view, "_router", "events", {"type": "completed", "record_id": f"R-{n}",
                                         "target": "st-a"})
    send(view, "_router", "events", {"type": "completed", "record_id": "R-0",
                                     "target": "st-a"})  # sent again: once
    document = view.document()
    assert document["forecast"]["assumptions"]["rate_from"] == "router"
    assert document["forecast"]["assumptions"]["cards_in_window"] == 3
    assert sum(count for _, count in view.history()["cards_per_hour"]) == 3
