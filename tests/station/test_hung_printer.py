"""A printer that stops reading mid-download (a hung firmware, a stalled USB link).

Real parts: Mosquitto, the station, the printer simulator on a pty that stops reading,
so the station's write fills the line and would block for ever without a write timeout.
"""

from __future__ import annotations

from tests.conftest import STATION, StationThread


def reasons(district) -> list[str]:
    return (district.states.get(STATION) or {}).get("printer_state_reasons", [])


def test_a_printer_that_stops_reading_is_reported_and_printing_resumes_when_it_reads_again(
    station_settings, district, printer_sim, signed
):
    record = signed(1)
    with StationThread(station_settings, district):
        # It hangs after the pick, in the middle of the card's downloads: the panels
        # (80 KB and more each) fill the line and the station's write would block.
        printer_sim.on_command = lambda command: (
            printer_sim.stop_reading() if command == "Sr" else None)
        district.publish_record(STATION, record)
        # download_timeout_s is 1 s in these settings; well within a few of them:
        assert district.wait_for(lambda: "timed-out-error" in reasons(district), 10), (
            "a hung printer still looks busy")
        assert district.wait_for(lambda: any(
            a.get("reason") == "timed-out-error" and not a.get("cleared")
            for a in district.events_of("alert")), 5)
        printer_sim.on_command = None
        printer_sim.resume_reading()
        assert district.wait_for(lambda: record["record_id"] in {
            e["record_id"] for e in district.events_of("job") if e["job_state"] == "completed"
        }, 30), "printing did not resume when the printer came back"
    assert printer_sim.printed == 1 and printer_sim.picked == 2  # the first blank is spoiled
