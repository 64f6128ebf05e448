"""A stopped queue is never left stopped, end to end: real Mosquitto, the station with
`driver = "ipp"`, a private cupsd whose backend stops the queue as vendors' do (exit 4)."""

from __future__ import annotations

import time

import pytest

from tests.conftest import STATION, StationThread


@pytest.fixture
def vendor_like(station_settings, cups_server):
    cups_server.printer.stop_on_fault()
    station_settings["printer"] = {"driver": "ipp", "uri": cups_server.uri, "poll_s": 0.1,
                                   "job_timeout_s": 20.0}
    return station_settings


def completed(district, record_ids, timeout=30.0):
    return district.wait_for(
        lambda: all(district.final_state(rid) == "completed" for rid in record_ids), timeout)


def alert_standing(district, reason: str) -> bool:
    raised = [a for a in district.events_of("alert") if a["reason"] == reason]
    return bool(raised) and not raised[-1].get("cleared")


def printer_lookups(server) -> int:
    """Get-Printer-Attributes requests the server has answered (its access log)."""
    log = server.root / "log" / "access_log"
    return log.read_text().count("Get-Printer-Attributes") if log.exists() else 0


def test_an_empty_feeder_stops_the_queue_and_printing_resumes_by_itself_after_the_refill(
        vendor_like, district, signed, cups_server):
    cups_server.printer.raise_fault("media-empty-error")
    records = [signed(i) for i in range(1, 4)]
    with StationThread(vendor_like, district) as station:
        for record in records:
            district.publish_record(STATION, record)
        assert district.wait_for(lambda: alert_standing(district, "media-empty-error"), 15)
        assert cups_server.printer.counters["taken"] == 0
        cups_server.printer.clear()  # cards in the feeder; nobody books it
        assert completed(district, [r["record_id"] for r in records])  # retried: poll_s × 10
        ledger = station.spool.ledger()
    assert (ledger.picks, ledger.printed, ledger.spoiled) == (3, 3, 0) and ledger.balanced
    assert cups_server.printer.counters == {"taken": 3, "printed": 3}
    assert cups_server.jobs() == {} and cups_server.spooled_files() == []


def test_a_booked_refill_resumes_the_queue_at_once(vendor_like, district, signed, cups_server):
    vendor_like["printer"]["poll_s"] = 3.0  # the retry by itself would wait 30 s
    cups_server.printer.raise_fault("media-empty-error")
    records = [signed(i) for i in range(1, 3)]
    with StationThread(vendor_like, district):
        for record in records:
            district.publish_record(STATION, record)
        assert district.wait_for(lambda: alert_standing(district, "media-empty-error"), 15)
        cups_server.printer.clear()
        refilled = time.monotonic()
        reply = district.command(STATION, "refill", {"count": 50})
        assert reply["ok"] is True
        assert completed(district, [records[0]["record_id"]], timeout=25)
        assert time.monotonic() - refilled < 30, "resumed by the timed retry, not the refill"


def test_a_jam_stops_the_queue_until_the_district_resumes_it(vendor_like, district, signed,
                                                             cups_server):
    cups_server.printer.jam_next_card()
    records = [signed(i) for i in range(1, 3)]
    first, second = (r["record_id"] for r in records)
    with StationThread(vendor_like, district) as station:
        for record in records:
            district.publish_record(STATION, record)
        assert district.wait_for(
            lambda: (district.job_events(first) or [{}])[-1].get("reasons") == ["uncertain"], 20)
        assert district.wait_for(lambda: alert_standing(district, "media-jam-error"), 10)
        cups_server.printer.clear()  # a person takes the card out, and tells nobody
        # The station's chance to resume by itself: twice the harmless retry, seen as its
        # lookups at the server (one per poll), never a bare sleep.
        looked = printer_lookups(cups_server)
        since = time.monotonic()
        assert district.wait_for(lambda: time.monotonic() - since > 2.0
                                 and printer_lookups(cups_server) >= looked + 20, 30)
        assert district.final_state(second) != "completed"
        assert alert_standing(district, "media-jam-error")
        assert cups_server.printer.counters["taken"] == 1
        assert district.command(STATION, "resume", {})["ok"] is True
        assert completed(district, [second])
        ledger = station.spool.ledger()
    assert (ledger.picks, ledger.printed) == (1, 1)  # the jammed card waits for a decision
    assert cups_server.printer.counters == {"taken": 2, "printed": 1}
