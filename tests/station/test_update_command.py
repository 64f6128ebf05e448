"""The district's ``update`` command at the station (station.md, Releases and updates):
arguments checked before anything starts, the updater started outside the unit, and each
outcome the updater leaves told to the district as an ``update`` event, once."""

from __future__ import annotations

import json
import threading

from kiosk.station.config import from_dict
from kiosk.station.core import events as ev
from kiosk.station.loop import Station
from tests.conftest import STATION
from tests.support.core import Harness, of
from tests.support.wait import wait_until

GOOD = {"url": "http://district.local:8080/bundles/kiosk-0.2.0.bundle", "sha256": "a" * 64,
        "size": 48_000_000, "version": "0.2.0", "platform": "bookworm-arm64"}


def test_an_update_with_good_arguments_starts_the_updater_and_says_so():
    harness = Harness()
    actions = harness.command("update", json.dumps(GOOD).encode())
    assert of(actions, ev.StartUpdate) == [ev.StartUpdate(GOOD)]
    _, reply = harness.replies()[-1]
    assert reply["ok"] is True and "0.2.0" in reply["detail"]


def test_bad_update_arguments_start_nothing_and_name_the_problem():
    for changes, words in (({"sha256": "not-hex"}, "sha256"), ({"url": "file:///x"}, "url"),
                           ({"version": "../../etc"}, "version"), ({"size": -1}, "size"),
                           ({"size": True}, "size")):
        harness = Harness()
        actions = harness.command("update", json.dumps({**GOOD, **changes}).encode())
        assert of(actions, ev.StartUpdate) == [], changes
        _, reply = harness.replies()[-1]
        assert (reply["ok"], reply["error"]) == (False, "bad-arguments")
        assert words in reply["detail"]


def test_the_same_update_request_again_starts_nothing_twice():
    harness = Harness()
    first = harness.command("update", json.dumps(GOOD).encode(), correlation=b"u-1")
    again = harness.command("update", json.dumps(GOOD).encode(), correlation=b"u-1")
    assert len(of(first, ev.StartUpdate)) == 1 and of(again, ev.StartUpdate) == []


def test_outcomes_become_update_events_then_the_file_may_let_them_go():
    harness = Harness()
    actions = harness.send(ev.UpdateOutcomes((
        {"type": "update", "version": "0.2.0", "outcome": "rolled-back", "detail": "x" * 900},)))
    [event] = harness.events("update")
    assert (event["version"], event["outcome"]) == ("0.2.0", "rolled-back")
    assert len(event["detail"]) == 300  # capped: it is the updater's text, read from a file
    assert of(actions, ev.UpdateOutcomesTold) == [ev.UpdateOutcomesTold()]


def test_a_running_station_starts_the_updater_and_tells_the_district_its_outcome(
    station_settings, district, tmp_path
):
    started: list[list[str]] = []
    events_file = tmp_path / "update-events.jsonl"  # beside the spool (kiosk/ops/update)

    def launcher(argv, version):  # what systemd-run would start, and the outcome it leaves
        started.append(list(argv))
        line = {"type": "update", "version": version, "outcome": "updated", "detail": "healthy"}
        events_file.write_text(json.dumps(line) + "\n")

    station = Station(from_dict(station_settings), config_path="/etc/kiosk/test.toml",
                      update_launcher=launcher)
    thread = threading.Thread(target=station.run, daemon=True)
    thread.start()
    try:
        assert district.wait_for(lambda: district.availability.get(STATION) == "online", 10)
        reply = district.command(STATION, "update", GOOD)
        assert reply["ok"] is True, reply
        assert district.wait_for(lambda: district.events_of("update"), 10)
        [event] = district.events_of("update")
        assert (event["version"], event["outcome"], event["detail"]) == (
            "0.2.0", "updated", "healthy")
        assert started == [[started[0][0], "update", "--config", "/etc/kiosk/test.toml",
                            "--sha256", GOOD["sha256"], "--version", "0.2.0", GOOD["url"]]]
        wait_until(lambda: events_file.read_text() == "", 5, what="the told outcome let go")
    finally:
        station.stop()
        thread.join(timeout=20)
    assert not thread.is_alive()


def test_an_updater_that_cannot_start_is_a_failed_update_the_district_hears_of(
    station_settings, district
):
    def launcher(argv, version):
        raise OSError("systemd-run: not found")

    station = Station(from_dict(station_settings), update_launcher=launcher)
    thread = threading.Thread(target=station.run, daemon=True)
    thread.start()
    try:
        assert district.wait_for(lambda: district.availability.get(STATION) == "online", 10)
        assert district.command(STATION, "update", GOOD)["ok"] is True
        assert district.wait_for(lambda: district.events_of("update"), 10)
        [event] = district.events_of("update")
        assert event["outcome"] == "failed" and "systemd-run: not found" in event["detail"]
    finally:
        station.stop()
        thread.join(timeout=20)
    assert not thread.is_alive()
