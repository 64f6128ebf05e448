"""End to end through CUPS: real Mosquitto, the station with `driver = "ipp"`, a private
cupsd whose queue ends in the card-printer simulator (card-printer.md, Printer drivers)."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from kiosk.card.render import render_card
from kiosk.contract.record import parse_record
from kiosk.devices.printer import pwgraster
from kiosk.station.spool import Spool
from tests.conftest import STATION, StationProcess, StationThread, wait_until


@pytest.fixture
def ipp_settings(station_settings, cups_server):
    station_settings["printer"] = {"driver": "ipp", "uri": cups_server.uri, "poll_s": 0.05,
                                   "job_timeout_s": 20.0}
    return station_settings


def completed(district, record_ids, timeout=30.0):
    return district.wait_for(
        lambda: all(district.final_state(rid) == "completed" for rid in record_ids), timeout)


def reasons_seen(district) -> set[str]:
    return {a["reason"] for a in district.events_of("alert") if not a.get("cleared")}


def test_records_print_through_cups_and_nothing_of_them_stays_on_the_server(
        ipp_settings, district, signed, cups_server):
    records = [signed(i) for i in range(1, 4)]
    with StationThread(ipp_settings, district) as station:
        for record in records:
            district.publish_record(STATION, record)
        ids = [r["record_id"] for r in records]
        assert completed(district, ids)
        for rid in ids:
            assert district.job_states(rid) == ["pending", "processing", "completed"]
        ledger = station.spool.ledger()
    assert (ledger.picks, ledger.printed, ledger.spoiled) == (3, 3, 0)
    documents = cups_server.printer.documents()
    assert [d.name.split("-", 1)[1] for d in documents] == ids  # job-name = record_id
    first = pwgraster.decode(documents[0].read_bytes())
    expected = render_card(parse_record(json.dumps(records[0]).encode())).preview()
    expected = expected.transpose(Image.Transpose.ROTATE_90).resize(first.size,
                                                                     Image.Resampling.LANCZOS)
    assert first.tobytes() == expected.tobytes()  # the rendered card, as one ID-1 page
    assert cups_server.spooled_files() == [] and cups_server.jobs() == {}


@pytest.mark.parametrize("fault", ["media-empty-error", "marker-supply-empty-error",
                                   "door-open-error", "offline-report"])
def test_a_fault_is_an_alert_and_printing_resumes_by_itself_when_it_clears(
        ipp_settings, district, signed, cups_server, fault):
    cups_server.printer.raise_fault(fault)
    records = [signed(i) for i in range(1, 3)]
    with StationThread(ipp_settings, district) as station:
        for record in records:
            district.publish_record(STATION, record)
        assert district.wait_for(lambda: fault in reasons_seen(district), 15)
        assert district.wait_for(
            lambda: fault in district.states.get(STATION, {}).get("printer_state_reasons", []),
            10)
        cups_server.printer.clear(fault)
        assert completed(district, [r["record_id"] for r in records])
        assert district.wait_for(
            lambda: any(a.get("cleared") and a["reason"] == fault
                        for a in district.events_of("alert")), 10)
        ledger = station.spool.ledger()
    assert (ledger.printed, ledger.spoiled) == (2, 0) and ledger.balanced


def test_a_jam_after_processing_is_uncertain_and_the_district_decides(
        ipp_settings, district, signed, cups_server):
    cups_server.printer.jam_next_card()
    records = [signed(i) for i in range(1, 3)]
    first = records[0]["record_id"]
    with StationThread(ipp_settings, district) as station:
        for record in records:
            district.publish_record(STATION, record)
        assert district.wait_for(
            lambda: (district.job_events(first) or [{}])[-1].get("reasons") == ["uncertain"], 20)
        assert "media-jam-error" in reasons_seen(district)
        detail = district.job_events(first)[-1]["detail"]
        assert "job-impressions-completed 0" in detail
        cups_server.printer.clear()  # a person takes the jammed card out
        assert completed(district, [records[1]["record_id"]])
        reply = district.command(STATION, "reprint", {"record_id": first, "reason": "jammed"})
        assert reply["ok"] is True
        assert completed(district, [first])
        ledger = station.spool.ledger()
    assert (ledger.picks, ledger.printed, ledger.spoiled) == (3, 2, 1) and ledger.balanced
    assert cups_server.printer.counters == {"taken": 3, "printed": 2}
    assert cups_server.spooled_files() == [] and cups_server.jobs() == {}


def test_a_card_at_the_print_server_when_the_station_is_killed_is_decided_by_its_job(
        ipp_settings, district, signed, cups_server, tmp_path):
    """kill -9 while CUPS prints the card; after the restart the job named after the record
    tells: completed → printed, no person needed."""
    cups_server.printer._control(card_seconds=2.0)
    ipp_settings["printer"]["poll_s"] = 0.05
    station = StationProcess(ipp_settings, tmp_path).start()
    try:
        assert district.wait_for(lambda: district.availability.get(STATION) == "online", 20)
        record = signed(1)
        rid = record["record_id"]
        district.publish_record(STATION, record)
        assert wait_until(lambda: cups_server.printer.counters["taken"] == 1, 20)
        station.kill()
        station.start()
        assert district.wait_for(lambda: district.final_state(rid) == "completed", 30)
        details = [e["detail"] for e in district.job_events(rid)]
        assert any("uncertain" in e["reasons"] for e in district.job_events(rid)), details
        assert "decided by the print server" in details[-1], details
    finally:
        assert station.terminate() == 0
    reader = Spool(ipp_settings["station"]["spool"])
    try:
        ledger = reader.ledger()
    finally:
        reader.close()
    assert (ledger.picks, ledger.printed, ledger.spoiled) == (1, 1, 0)
    assert cups_server.printer.printed == 1 and cups_server.jobs() == {}
