"""`kiosk doctor` on an IPP printer: a real private cupsd, well and badly configured."""

from __future__ import annotations

import pytest

from kiosk.ops.ippcheck import ipp_findings, is_id1
from kiosk.sim.cups import CupsServer
from tests.devices.test_ipp import connected
from tests.ops.test_doctor import run_doctor

MEDIA = "iso_id-1_53.98x85.6mm"


def findings(server) -> dict[str, tuple[str, str]]:
    return {name: (status, detail) for status, name, detail in ipp_findings(server.uri, MEDIA)}


def test_id1_sizes_are_recognised_by_their_dimensions():
    assert is_id1(MEDIA) and is_id1("om_cr80_53.98x85.6mm") and is_id1("oe_cr80_2.125x3.37in")
    assert not is_id1("iso_a4_210x297mm") and not is_id1("na_letter_8.5x11in")


def test_a_well_set_server_passes_every_check(cups_server):
    found = findings(cups_server)
    assert {name: status for name, (status, _) in found.items()} == {
        "ipp": "ok", "ipp_media": "ok", "ipp_formats": "ok", "ipp_queue": "ok",
        "ipp_policy": "ok", "ipp_job_files": "ok", "ipp_events": "ok"}, found
    assert "image/png" in found["ipp_formats"][1]


def test_a_server_that_would_retry_by_itself_is_refused(station_settings, tmp_path, capsys,
                                                        cupsd_present):
    with CupsServer(tmp_path / "cups", error_policy="retry-job") as server:
        station_settings["printer"] = {"driver": "ipp", "uri": server.uri}
        status, lines = run_doctor(station_settings, tmp_path, capsys)
    assert status == 1
    assert lines["ipp_policy"].startswith("FAIL") and "retry-job" in lines["ipp_policy"]
    assert "printer" not in lines  # no serial port is looked for with the ipp driver


def test_a_server_that_keeps_job_files_fails(tmp_path, cupsd_present):
    with CupsServer(tmp_path / "cups", preserve_job_files=True) as server:
        status, detail = findings(server)["ipp_job_files"]
    assert status == "fail" and "PreserveJobFiles Yes" in detail


def test_a_stopped_queue_is_a_warning_the_station_fixes(cups_server):
    cups_server.lp("cupsdisable", "card")
    assert findings(cups_server)["ipp_queue"][0] == "warn"
    connected(cups_server).check()  # what the station does
    assert findings(cups_server)["ipp_queue"][0] == "ok"


@pytest.mark.parametrize("broken", ["stopped server"])
def test_an_unreachable_server_fails(cups_server, broken):
    cups_server.stop()
    assert findings(cups_server)["ipp"][0] == "fail"


def test_doctor_says_whether_a_queue_gets_notifications_or_polling(cups_server, tmp_path,
                                                                   cupsd_present):
    status, detail = findings(cups_server)["ipp_events"]
    assert status == "ok" and "Get-Notifications" in detail
    assert "at once" in detail  # CUPS answers notify-wait without waiting: said plainly
    with CupsServer(tmp_path / "nosubs", subscriptions=False) as server:
        status, detail = findings(server)["ipp_events"]
    assert status == "warn" and detail.startswith("polling every poll_s")


@pytest.mark.parametrize("manual_slot", [True, False])
def test_desk_mode_needs_a_queue_with_a_manual_slot(manual_slot, tmp_path, cupsd_present):
    with CupsServer(tmp_path / "cups", manual_slot=manual_slot) as server:
        found = {name: (status, detail) for status, name, detail
                 in ipp_findings(server.uri, MEDIA, manual_feed=True)}
        plain = {name for _, name, _ in ipp_findings(server.uri, MEDIA)}
    assert found["ipp_manual"][0] == ("ok" if manual_slot else "fail"), found["ipp_manual"]
    if not manual_slot:
        assert "no manual feed" in found["ipp_manual"][1]
    assert "ipp_manual" not in plain  # asked only where the station feeds by hand
