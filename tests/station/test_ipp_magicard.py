"""A real open card-printer driver behind the station (card-printer.md, "Testing IPP
printers"): gutenprint's Magicard Rio 2E queue (CUPS filters, then rastertogutenprint)
in a private cupsd, printing a record that came over MQTT; the backend (the
simulated printer) receives Magicard print data, which starts with the driver's own
header. `kiosk doctor` accepts the queue's card size and says why."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from kiosk.ops.ippcheck import ipp_findings
from tests.conftest import STATION, StationThread

MODEL = "gutenprint.5.3://magicard-rio-2e/expert"
NEEDED = (Path("/usr/lib/cups/driver/gutenprint.5.3"),
          Path("/usr/lib/cups/filter/rastertogutenprint.5.3"),
          Path("/usr/lib/cups/filter/gstoraster"))
INSTALL = ("gutenprint's Magicard driver or cups-filters is missing: "
           "apt-get install printer-driver-gutenprint cups-filters (or run scripts/setup)")
MAGICARD_HEADER = b"\x05" * 64 + b"\x01,"  # 64 × 0x05, then the command list


@pytest.fixture
def magicard(cupsd_present):
    missing = [str(p) for p in NEEDED if not p.exists()]
    if missing:
        pytest.fail(f"{INSTALL} ({', '.join(missing)} not found)", pytrace=False)
    from kiosk.sim.cups import CupsServer

    # The filters run as CUPS's unprivileged user: the server's files must be reachable.
    root = Path(tempfile.mkdtemp(prefix="kiosk-magicard-"))
    os.chmod(root, 0o755)
    server = CupsServer(root / "cups", card_seconds=0.1, system_filters=True, model=MODEL)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_a_record_prints_through_gutenprints_magicard_driver(station_settings, district,
                                                              signed, magicard):
    station_settings["printer"] = {"driver": "ipp", "uri": magicard.uri, "poll_s": 0.05,
                                   "job_timeout_s": 60.0}
    records = [signed(i) for i in range(1, 3)]
    with StationThread(station_settings, district) as station:
        for record in records:
            district.publish_record(STATION, record)
        assert district.wait_for(lambda: all(
            district.final_state(r["record_id"]) == "completed" for r in records), 90)
        ledger = station.spool.ledger()
    assert (ledger.picks, ledger.printed, ledger.spoiled) == (2, 2, 0)
    documents = magicard.printer.documents()
    assert [d.name.split("-", 1)[1] for d in documents] == [r["record_id"] for r in records]
    for document in documents:
        data = document.read_bytes()
        assert data.startswith(MAGICARD_HEADER), data[:80]
        assert b",IMFBGR," in data[:400]  # the page as the driver's blue, green, red planes
    assert magicard.jobs() == {} and magicard.spooled_files() == []


def test_doctor_accepts_the_magicard_card_size_and_says_why(magicard):
    found = {name: (status, detail) for status, name, detail in
             ipp_findings(magicard.uri, "iso_id-1_53.98x85.6mm")}
    status, detail = found["ipp_media"]
    assert status == "ok", detail
    assert "56.9x86.02mm" in detail and "bleed" in detail
    assert found["ipp_formats"][0] == "ok"


def test_sizes_far_from_id1_are_no_card_even_with_bleed():
    from kiosk.ops.ippcheck import id1_bleed

    assert id1_bleed("custom_56.9x86.02mm_56.9x86.02mm") == (2.92, 0.42)
    assert id1_bleed("iso_id-1_53.98x85.6mm") == (0.0, 0.0)
    assert id1_bleed("iso_a7_74x105mm") is None and id1_bleed("na_letter_8.5x11in") is None
