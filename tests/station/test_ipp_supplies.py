"""Supplies (card-printer.md; mqtt.md state ``supplies``): an IPP printer's marker-*
attributes become the state's supplies, and a ribbon low or used up is an alert."""

from __future__ import annotations

from kiosk.station.core.supplies import EMPTY, LOW, supply_reasons
from tests.conftest import STATION, StationThread


def ribbon(level: int, low: int = 10) -> dict:
    return {"name": "ribbon", "type": "ribbon-wax-transfer", "level": level, "low_level": low}


def test_levels_make_the_alerts():
    assert supply_reasons(()) == {}
    assert supply_reasons((ribbon(80),)) == {}
    assert supply_reasons((ribbon(-1),)) == {}  # unknown is no alarm
    assert set(supply_reasons((ribbon(10),))) == {LOW}
    assert supply_reasons((ribbon(0), ribbon(5) | {"name": "film"})) == {
        EMPTY: "used up: ribbon", LOW: "running low: film 5%"}


def test_the_ribbon_level_reaches_the_district_and_a_low_ribbon_is_an_alert(
        station_settings, district, signed, cups_server):
    station_settings["printer"] = {"driver": "ipp", "uri": cups_server.uri, "poll_s": 0.05,
                                   "job_timeout_s": 20.0}
    cups_server.printer.set_ribbon_level(7)
    with StationThread(station_settings, district):
        record = signed(1)
        district.publish_record(STATION, record)
        assert district.wait_for(
            lambda: district.final_state(record["record_id"]) == "completed", 20)
        assert district.wait_for(
            lambda: district.states.get(STATION, {}).get("supplies") == [ribbon(7)], 10), (
            district.states.get(STATION, {}).get("supplies"))
        assert district.wait_for(lambda: any(
            a["reason"] == LOW and not a.get("cleared") for a in district.events_of("alert")), 10)
        assert LOW in district.states[STATION]["printer_state_reasons"]



def test_the_tray_seeing_cards_again_is_evidence_for_the_printer():
    from kiosk.station.core import events as ev
    from kiosk.station.core.machine import tray_refilled

    assert tray_refilled(True, 40) == [ev.FaultGone("tray")]
    assert tray_refilled(True, 0) == [] and tray_refilled(True, None) == []
    assert tray_refilled(False, 40) == []  # it saw cards before: nothing new
