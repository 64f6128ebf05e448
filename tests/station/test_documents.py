"""Issue 28 at the station: it prints the documents it is loaded for (`[station] documents`),
says so in its state, and refuses a record of another document with `wrong-document`."""

from __future__ import annotations

from kiosk.contract.signing import sign_record
from kiosk.sim.samples import make_kia_record
from tests.conftest import STATION, StationThread


def test_a_kia_station_prints_a_kia_record_and_refuses_an_ektp_one(
    station_settings, district, district_key, signed, printer_sim
):
    station_settings["station"]["documents"] = ["kia"]
    kia = sign_record(make_kia_record(1), district_key[0])
    ektp = signed(2)
    with StationThread(station_settings, district):
        assert district.wait_for(
            lambda: district.states.get(STATION, {}).get("documents") == ["kia"], 10)
        district.publish_record(STATION, ektp)
        district.publish_record(STATION, kia)
        assert district.wait_for(
            lambda: district.final_state(kia["record_id"]) == "completed", 30)
        refused = [e for e in district.events_of("rejected")
                   if e.get("record_id") == ektp["record_id"]]
        assert [e["error"] for e in refused] == ["wrong-document"]
        assert district.job_states(ektp["record_id"]) == []
    assert printer_sim.printed == 1


def test_an_ektp_station_refuses_a_kia_record_and_prints_on(
    station_settings, district, district_key, signed, printer_sim
):
    kia = sign_record(make_kia_record(3), district_key[0])
    ektp = signed(4)
    with StationThread(station_settings, district):
        district.publish_record(STATION, kia)
        district.publish_record(STATION, ektp)
        assert district.wait_for(
            lambda: district.final_state(ektp["record_id"]) == "completed", 30)
        assert district.states[STATION]["documents"] == ["ektp"]
        refused = [e for e in district.events_of("rejected")
                   if e.get("record_id") == kia["record_id"]]
        assert [e["error"] for e in refused] == ["wrong-document"]
    assert printer_sim.printed == 1
