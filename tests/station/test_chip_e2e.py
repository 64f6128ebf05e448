"""The chip inline, end to end (chip.md): a real Mosquitto, the station, the Evolis
simulator on a pty whose blanks carry chips laid on a private pcscd's vpcd reader, the
demo personalizer. Every printed card's chip holds its own record, a failing chip is
rejected and counted gagal-encode while its job prints on the next blank, and every
``blank`` event names the chip the simulator saw.
"""

from __future__ import annotations

import pytest

from kiosk.devices.encoder.personalizers import demo_content
from kiosk.sim.printer import PrinterSimulator
from kiosk.station.config import ConfigError, from_dict
from kiosk.station.loop import Station
from kiosk.station.spool import Spool
from tests.conftest import STATION, StationThread
from tests.sim.test_chip import pcsc, pcsc_parts  # noqa: F401  (fixtures)

UIDS = [bytes.fromhex(f"04C1D2E3F400{n:02X}") for n in range(1, 12)]
ENCODER = {"mode": "inline", "reader": "Kiosk Encoder", "personalizer": "demo",
           "timeout_s": 5.0, "card_wait_s": 5.0}


@pytest.fixture
def chip_printer(tmp_path, pcsc):  # noqa: F811
    sim = PrinterSimulator(str(tmp_path / "chip-printer"), card_seconds=0.02,
                           receive_timeout=0.8, uids=list(UIDS),
                           encoder_port=pcsc.reader("Kiosk Encoder").port)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def chip_settings(station_settings, chip_printer):
    station_settings["printer"]["port"] = chip_printer.path
    station_settings["encoder"] = dict(ENCODER)
    return station_settings


def blanks(district):
    return district.events_of("blank")


def completed(district, record_ids, timeout=60.0):
    return district.wait_for(
        lambda: all(district.final_state(rid) == "completed" for rid in record_ids), timeout)


def test_five_records_each_on_its_own_chip_and_a_failing_chip_is_gagal_encode(
        chip_settings, chip_printer, district, signed):
    records = [signed(i) for i in range(1, 6)]
    ids = [r["record_id"] for r in records]
    chip_printer.fail_next_chip("write-fails")  # the first blank: its write fails
    with StationThread(chip_settings, district):
        for record in records:
            district.publish_record(STATION, record)
        assert completed(district, ids)
        assert district.wait_for(lambda: len(blanks(district)) == 6, 10), blanks(district)
        assert district.wait_for(lambda: district.states[STATION]["counters"]["invalid"]
                                 ["gagal-encode"] == 1, 10)
    assert (chip_printer.printed, chip_printer.rejected) == (5, 1)
    for card, record in zip(chip_printer.cards, records, strict=True):
        assert card.chip.content() == demo_content(record)  # its own record, nobody else's
    events = blanks(district)
    rejected = chip_printer.rejected_cards[0]
    assert events[0]["uid"] == rejected.uid and events[0]["record_id"] == ids[0]
    assert (events[0]["outcome"], events[0]["category"]) == ("invalid", "gagal-encode")
    printed = [e for e in events if e["outcome"] == "printed"]
    assert [(e["uid"], e["record_id"]) for e in printed] == [
        (card.uid, rid) for card, rid in zip(chip_printer.cards, ids, strict=True)]
    assert all(e["document"] == "ektp" for e in events)
    # The job events name the chip of the card they are about.
    done = [e for e in district.job_events(ids[0]) if e["job_state"] == "completed"]
    assert done[0]["chip_uid"] == chip_printer.cards[0].uid
    # The station's own register holds the same rows, without personal data.
    spool = Spool(chip_settings["station"]["spool"])
    try:
        rows = list(reversed(spool.blanks()))
        assert [(r.uid, r.outcome, r.category) for r in rows] == [
            (e["uid"], e["outcome"], e["category"]) for e in events]
        ledger = spool.ledger()
        assert (ledger.picks, ledger.printed, ledger.spoiled) == (6, 5, 1)
    finally:
        spool.close()


@pytest.mark.parametrize(("fault", "reason"), [
    ("garbage", "not an APDU response"), ("bad-uid", "impossible UID length")])
def test_a_chip_that_answers_garbage_is_rejected_with_its_reason_and_nothing_written(
        fault, reason, chip_settings, chip_printer, district, signed):
    record = signed(1)
    chip_printer.fail_next_chip(fault)
    with StationThread(chip_settings, district):
        district.publish_record(STATION, record)
        assert completed(district, [record["record_id"]])
        assert district.wait_for(lambda: len(blanks(district)) == 2, 10)
    first = blanks(district)[0]
    assert (first["outcome"], first["category"], first["uid"]) == (
        "invalid", "gagal-encode", None)  # no UID could be read from it
    assert reason in first["detail"]
    failed = [e for e in district.job_events(record["record_id"])
              if "chip step failed" in e["detail"]]
    assert failed and reason in failed[0]["detail"]
    assert chip_printer.rejected_cards[0].chip.writes == 0


def test_invalidate_by_the_district_declares_a_printed_card_and_is_carried_out_once(
        chip_settings, chip_printer, district, signed):
    record = signed(1)
    with StationThread(chip_settings, district):
        district.publish_record(STATION, record)
        assert completed(district, [record["record_id"]])
        uid = chip_printer.cards[0].uid
        args = {"uid": uid, "category": "perubahan-elemen-data", "reason": "alamat berubah",
                "request_id": "inv-1"}
        reply = district.command(STATION, "invalidate", args)
        again = district.command(STATION, "invalidate", args)
        assert reply == again and reply["ok"], reply
        other = district.command(STATION, "invalidate", {**args, "request_id": "inv-2"})
        assert (other["ok"], other["error"]) == (False, "already-invalid")
        assert district.wait_for(lambda: district.states[STATION]["counters"]["invalid"]
                                 ["perubahan-elemen-data"] == 1, 10)
        state = district.states[STATION]["counters"]
    declared = [e for e in blanks(district) if e["outcome"] == "invalid"]
    assert [(e["uid"], e["category"], e["record_id"]) for e in declared] == [
        (uid, "perubahan-elemen-data", record["record_id"])]
    assert (state["printed"], state["spoiled"]) == (1, 0)  # the card was made: counted so


def test_the_reader_unplugged_stops_the_printer_and_no_blank_is_lost_or_invalid(
        chip_settings, chip_printer, district, signed, pcsc):  # noqa: F811
    """The reader goes away as the blank reaches the encoder (the printer's hook unplugs
    it while ``Sic`` is in the printer): the card waits inside, untouched, the station
    says chip-reader-missing-error and takes no other card; plugged back, the same blank prints."""
    records = [signed(1), signed(2)]
    ids = [r["record_id"] for r in records]

    def unplug_at_first_sic(text: str) -> None:
        if text == "Sic" and chip_printer.picked == 0:
            pcsc.unplug("Kiosk Encoder")

    chip_printer.on_command = unplug_at_first_sic
    with StationThread(chip_settings, district):
        for record in records:
            district.publish_record(STATION, record)
        assert district.wait_for(lambda: "chip-reader-missing-error" in district.states.get(
            STATION, {}).get("printer_state_reasons", []), 20)
        assert chip_printer.picked == 1 and chip_printer.printed == 0
        held = district.job_events(ids[0])[-1]
        assert held["job_state"] == "processing-stopped" and "chip encoder" in held["detail"]
        pcsc.plug("Kiosk Encoder")
        assert completed(district, ids)
    assert (chip_printer.picked, chip_printer.printed, chip_printer.rejected) == (2, 2, 0)
    assert [e["outcome"] for e in blanks(district)] == ["printed", "printed"]
    spool = Spool(chip_settings["station"]["spool"])
    try:
        ledger = spool.ledger()
        assert (ledger.picks, ledger.printed, ledger.spoiled) == (2, 2, 0)
    finally:
        spool.close()


PLUGIN = '''
"""A personalizer package as the authority's would be installed: found by entry point."""
import time

from kiosk.devices.encoder.personalizers import DemoPersonalizer

CALLS = {"n": 0}


class FirstCallFails(DemoPersonalizer):
    def personalize(self, card, record):
        CALLS["n"] += 1
        if CALLS["n"] == 1:
            raise RuntimeError("SAM refused the session")
        return super().personalize(card, record)


class FirstCallHangs(DemoPersonalizer):
    def personalize(self, card, record):
        CALLS["n"] += 1
        if CALLS["n"] == 1:
            time.sleep(3)
        return super().personalize(card, record)
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """Installs the package above on sys.path, with its entry points (a dist-info)."""
    root = tmp_path / "site"
    (root / "faulty_personalizers-1.0.dist-info").mkdir(parents=True)
    (root / "faulty_personalizers-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: faulty-personalizers\nVersion: 1.0\n")
    (root / "faulty_personalizers-1.0.dist-info" / "entry_points.txt").write_text(
        "[kiosk.personalizers]\nfails-once = faulty_plugin:FirstCallFails\n"
        "hangs-once = faulty_plugin:FirstCallHangs\n")
    (root / "faulty_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(root))
    yield
    import sys
    sys.modules.pop("faulty_plugin", None)


@pytest.mark.parametrize(("name", "reason"), [
    ("fails-once", "fails-once failed: RuntimeError: SAM refused the session"),
    ("hangs-once", "hangs-once did not finish within timeout_s = 1 s"),
])
def test_a_personalizer_that_raises_or_hangs_costs_one_blank_and_the_job_prints(
        name, reason, plugin, chip_settings, chip_printer, district, signed):
    chip_settings["encoder"].update(personalizer=name, timeout_s=1.0)
    records = [signed(1), signed(2)]
    ids = [r["record_id"] for r in records]
    with StationThread(chip_settings, district):
        for record in records:
            district.publish_record(STATION, record)
        assert completed(district, ids)
        assert district.wait_for(lambda: len(blanks(district)) == 3, 10)
    first = blanks(district)[0]
    assert (first["category"], first["record_id"]) == ("gagal-encode", ids[0])
    assert reason in first["detail"]
    assert first["uid"] == chip_printer.rejected_cards[0].uid
    for card, record in zip(chip_printer.cards, records, strict=True):
        assert card.chip.content() == demo_content(record)


def test_a_half_installed_personalizer_stops_the_start_with_the_key_named(
        tmp_path, monkeypatch, chip_settings):
    """Its entry point is there, its module is not: a configuration error, not a trace."""
    root = tmp_path / "broken-site"
    info = root / "broken_personalizer-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-personalizer\n"
                                   "Version: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[kiosk.personalizers]\nbroken = no_such_module:Personalizer\n")
    monkeypatch.syspath_prepend(str(root))
    chip_settings["encoder"]["personalizer"] = "broken"
    with pytest.raises(ConfigError) as refused:
        Station(from_dict(chip_settings))
    assert "encoder.personalizer" in str(refused.value)
    assert "ModuleNotFoundError" in str(refused.value)
