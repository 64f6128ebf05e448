"""The device panel driving the real station: gpiozero MockFactory pins, broker, simulators."""

from __future__ import annotations

import time

import pytest
from gpiozero import Device

from kiosk.sim.receipt import ReceiptSimulator
from tests.conftest import STATION, StationThread, wait_until

PINS = {"pause": 5, "ok": 6, "menu": 13, "extra": 19}
HOLD_S = 0.3


def press(name: str) -> None:
    pin = Device.pin_factory.pin(PINS[name])
    pin.drive_low()
    time.sleep(0.08)
    pin.drive_high()
    time.sleep(0.08)


def hold(name: str) -> None:
    pin = Device.pin_factory.pin(PINS[name])
    pin.drive_low()
    time.sleep(HOLD_S + 0.3)
    pin.drive_high()
    time.sleep(0.08)


@pytest.fixture
def panel_settings(station_settings, tmp_path):
    station_settings["panel"] = {"lcd": "memory", "hold_s": HOLD_S}
    return station_settings


def lcd_text(station) -> str:
    return "\n".join(station.panel.lcd.lines)


def test_pause_button_pauses_and_resumes_the_station(panel_settings, district):
    with StationThread(panel_settings, district) as station:
        assert station.panel is not None
        press("pause")
        assert district.wait_for(
            lambda: "paused" in district.states[STATION]["printer_state_reasons"], 5)
        assert wait_until(lambda: "JEDA" in lcd_text(station), 5), lcd_text(station)
        press("pause")
        assert district.wait_for(
            lambda: "paused" not in district.states[STATION]["printer_state_reasons"], 5)
    audits = [(e["name"], e["source"]) for e in district.events_of("command")]
    assert audits == [("pause", "device"), ("resume", "device")]


def test_refill_entered_at_the_device_is_booked(panel_settings, district):
    with StationThread(panel_settings, district) as station:
        hold("extra")  # refill entry
        assert wait_until(lambda: station.panel.screen == "refill", 3)
        for _ in range(5):
            press("menu")  # +10 each
        press("extra")  # +1
        press("ok")
        assert district.wait_for(
            lambda: district.states[STATION]["stock"]["remaining"] == 51, 5)
    audit = district.events_of("command")[-1]
    assert (audit["name"], audit["source"], audit["args"]) == ("refill", "device", {"count": 51})


def test_holding_ok_on_an_uncertain_card_confirms_it(panel_settings, district, signed,
                                                     printer_sim):
    printer_sim.inject("Se", "no-reply")
    record = signed(1)
    rid = record["record_id"]
    with StationThread(panel_settings, district) as station:
        district.publish_record(STATION, record)
        assert district.wait_for(lambda: "uncertain" in (
            district.job_events(rid)[-1]["reasons"] if district.job_events(rid) else []), 15)
        assert wait_until(lambda: station.panel.screen == "uncertain", 5), lcd_text(station)
        hold("ok")
        assert district.wait_for(lambda: district.final_state(rid) == "completed", 5)
        ledger = station.spool.ledger()
    assert ledger.printed == 1 and ledger.balanced


def test_holding_menu_prints_the_shift_report(panel_settings, district, signed, tmp_path):
    with ReceiptSimulator(str(tmp_path / "receipt")) as receipt:
        panel_settings["receipt"] = {"port": receipt.path, "enabled": True}
        records = [signed(1), signed(2)]
        with StationThread(panel_settings, district):
            for record in records:
                district.publish_record(STATION, record)
            assert district.wait_for(lambda: all(
                district.final_state(r["record_id"]) == "completed" for r in records), 15)
            assert wait_until(lambda: len(receipt.documents()) >= 2, 10)  # two handover slips
            hold("menu")
            assert wait_until(lambda: len(receipt.documents()) >= 3, 10)
        slips = [receipt.text_of(doc) for doc in receipt.documents()[:2]]
        report = receipt.text_of(receipt.documents()[2])
    for slip, record in zip(slips, records, strict=True):
        assert record["nik"][-4:] in slip and record["nik"][:12] not in slip
    assert record["record_id"] in receipt.qr_payloads()
    assert "SEIMBANG" in report  # picked = printed + spoiled
    assert any(line.split()[-1:] == ["2"] for line in report.splitlines() if "Dicetak" in line)


def test_receipt_paper_out_is_an_alert_and_never_stops_the_card_printer(
    station_settings, district, signed, tmp_path
):
    with ReceiptSimulator(str(tmp_path / "receipt"), paper=False) as receipt:
        station_settings["receipt"] = {"port": receipt.path, "enabled": True}
        records = [signed(1), signed(2)]
        with StationThread(station_settings, district):
            for record in records:
                district.publish_record(STATION, record)
            assert district.wait_for(lambda: all(
                district.final_state(r["record_id"]) == "completed" for r in records), 15)
            assert district.wait_for(lambda: "receipt-paper-empty-warning" in district.states[
                STATION]["printer_state_reasons"], 10)
            assert receipt.documents() == []
            receipt.set_paper(True)  # a new roll: the waiting slips come out
            assert wait_until(lambda: len(receipt.documents()) == 2, 15)
            assert district.wait_for(lambda: "receipt-paper-empty-warning" not in district.states[
                STATION]["printer_state_reasons"], 10)
    raised = [a.get("cleared", False) for a in district.events_of("alert")
              if a["reason"] == "receipt-paper-empty-warning"]
    assert raised == [False, True]


def test_holding_extra_on_the_last_card_declares_it_damaged(panel_settings, district,
                                                             signed):
    """chip.md, Custody: a person declares a card rusak at the panel's menu: the blank
    event, the register's counter, once (the screen goes once it is declared)."""
    record = signed(1)
    with StationThread(panel_settings, district) as station:
        district.publish_record(STATION, record)
        assert district.wait_for(lambda: district.final_state(record["record_id"])
                                 == "completed", 30)
        for _ in range(6):  # MENU steps through the screens to "made"
            if station.panel.screen == "made":
                break
            press("menu")
        assert wait_until(lambda: "KARTU TERAKHIR" in lcd_text(station), 3), lcd_text(station)
        hold("extra")
        assert district.wait_for(lambda: district.states[STATION]["counters"]["invalid"]
                                 ["rusak"] == 1, 10)
        assert wait_until(lambda: station.panel.screen != "made", 3)
    declared = [e for e in district.events_of("blank") if e["outcome"] == "invalid"]
    assert [(e["record_id"], e["category"]) for e in declared] == [
        (record["record_id"], "rusak")]
    audits = [(e["name"], e["source"], e["ok"]) for e in district.events_of("command")]
    assert audits == [("invalidate", "device", True)]
