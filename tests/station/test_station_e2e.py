"""End to end: real Mosquitto, the station, the printer and tray simulators on ptys."""

from __future__ import annotations

import json

from kiosk.card.render import render_card
from kiosk.contract.record import parse_record
from kiosk.devices.printer.evolis.panels import encode_card
from tests.conftest import STATION, StationThread


def completed(district, record_ids, timeout=30.0):
    return district.wait_for(
        lambda: all(district.final_state(rid) == "completed" for rid in record_ids), timeout
    )


def test_records_print_in_order_and_the_district_sees_every_step(
    station_settings, district, signed, printer_sim
):
    records = [signed(i) for i in range(1, 6)]
    with StationThread(station_settings, district):
        for record in records:
            district.publish_record(STATION, record)
        ids = [r["record_id"] for r in records]
        assert completed(district, ids)
        for rid in ids:
            assert district.job_states(rid) == ["pending", "processing", "completed"]
        assert district.wait_for(
            lambda: district.states[STATION]["counters"]["printed"] == 5, 10)
    assert printer_sim.printed == 5
    # The printer got exactly what the renderer makes of each record, in arrival order.
    for record, card in zip(records, printer_sim.cards, strict=True):
        expected = encode_card(render_card(parse_record(json.dumps(record).encode())))
        k_panel = next(p for p in expected if p.panel == "k")
        assert card.bits["k"] == 1
        assert card.panels["k"] == _raw_k(k_panel)
    assert district.availability[STATION] == "offline"  # clean stop says so


def _raw_k(panel):
    from kiosk.devices.printer.evolis.protocol import decompress_1bit

    return decompress_1bit(panel.data) if panel.compressed else panel.data


def test_same_record_twice_prints_once(station_settings, district, signed, printer_sim):
    record = signed(1)
    later = signed(2)
    with StationThread(station_settings, district):
        district.publish_record(STATION, record)
        district.publish_record(STATION, record)
        district.publish_record(STATION, later)
        assert completed(district, [record["record_id"], later["record_id"]])
        assert district.job_states(record["record_id"]) == ["pending", "processing", "completed"]
    assert printer_sim.printed == 2


def test_each_invalid_payload_is_rejected_and_the_next_good_record_prints(
    station_settings, district, signed, printer_sim
):
    unsigned = dict(signed(3))
    del unsigned["sig"]
    tampered = dict(signed(4))
    tampered["priority"] = 7
    bad = {
        "too-large": b"{" + b" " * (256 * 1024) + b"}",
        "not-json": b"\x00\x01 not json",
        "unknown-schema": json.dumps(signed(5, schema="ektp.record/2")).encode(),
        "invalid-field": json.dumps(signed(6, nik="12345")).encode(),
        "nik-mismatch": json.dumps(signed(7, nik=signed(8)["nik"])).encode(),
        "bad-image": json.dumps(signed(9, photo_jpeg="aGVsbG8=")).encode(),
        "unsigned": json.dumps(unsigned).encode(),
        "bad-signature": json.dumps(tampered).encode(),
    }
    good = signed(10)
    with StationThread(station_settings, district):
        for payload in bad.values():
            district.publish_record(STATION, payload)
        district.publish_record(STATION, good)
        assert completed(district, [good["record_id"]])
        assert district.wait_for(lambda: len(district.events_of("rejected")) == len(bad), 10)
    errors = [event["error"] for event in district.events_of("rejected")]
    assert errors == list(bad)
    for event in district.events_of("rejected"):
        assert event["detail"]
        assert "photo_jpeg\":" not in json.dumps(event)
    assert printer_sim.printed == 1


def test_card_jam_at_se_stops_then_resumes_when_cleared(
    station_settings, district, signed, printer_sim
):
    printer_sim.inject("Se", "CARD JAM")
    records = [signed(i) for i in range(1, 4)]
    with StationThread(station_settings, district) as station:
        for record in records:
            district.publish_record(STATION, record)
        first = records[0]["record_id"]
        assert district.wait_for(lambda: "processing-stopped" in district.job_states(first), 10)
        assert district.wait_for(
            lambda: "media-jam-error" in district.states[STATION]["printer_state_reasons"], 10)
        assert printer_sim.printed == 0
        printer_sim.clear_jam()  # the operator pulls the card out
        assert completed(district, [r["record_id"] for r in records])
        assert district.job_states(first) == [
            "pending", "processing", "processing-stopped", "processing", "completed"]
        alerts = [(a["reason"], a.get("cleared", False)) for a in district.events_of("alert")]
        assert ("media-jam-error", False) in alerts and ("media-jam-error", True) in alerts
        ledger = station.spool.ledger()
    assert (ledger.picks, ledger.printed, ledger.spoiled) == (4, 3, 1)
    assert printer_sim.printed == 3


def test_empty_feeder_stops_and_a_refill_resumes_by_itself(
    station_settings, district, signed, printer_sim
):
    printer_sim.load_cards(-printer_sim.feeder + 2)  # two blanks left
    records = [signed(i) for i in range(1, 5)]
    with StationThread(station_settings, district) as station:
        for record in records:
            district.publish_record(STATION, record)
        third = records[2]["record_id"]
        assert district.wait_for(lambda: "processing-stopped" in district.job_states(third), 15)
        assert district.wait_for(
            lambda: "media-empty-error" in district.states[STATION]["printer_state_reasons"], 10)
        printer_sim.load_cards(50)
        assert completed(district, [r["record_id"] for r in records])
        ledger = station.spool.ledger()
    assert (ledger.picks, ledger.printed, ledger.spoiled) == (4, 4, 0)


def test_no_reply_spoils_the_card_and_the_queue_still_prints(
    station_settings, district, signed, printer_sim
):
    printer_sim.inject("Db", "no-reply")
    records = [signed(i) for i in range(1, 4)]
    with StationThread(station_settings, district) as station:
        for record in records:
            district.publish_record(STATION, record)
        assert completed(district, [r["record_id"] for r in records])
        ledger = station.spool.ledger()
    reasons = {a["reason"] for a in district.events_of("alert")}
    assert "timed-out-error" in reasons
    assert (ledger.printed, ledger.spoiled) == (3, 1) and ledger.balanced


def test_port_vanishing_mid_card_then_returning(station_settings, district, signed, printer_sim):
    printer_sim.inject("Sr", "vanish", seconds=1.0)
    records = [signed(i) for i in range(1, 4)]
    with StationThread(station_settings, district) as station:
        for record in records:
            district.publish_record(STATION, record)
        assert district.wait_for(
            lambda: "connecting-to-device" in district.states.get(STATION, {}).get(
                "printer_state_reasons", []), 10)
        assert completed(district, [r["record_id"] for r in records])
        ledger = station.spool.ledger()
    assert (ledger.printed, ledger.spoiled) == (3, 1) and ledger.balanced
    assert printer_sim.printed == 3


def test_no_reply_to_se_makes_the_card_uncertain_and_the_district_decides(
    station_settings, district, signed, printer_sim
):
    printer_sim.inject("Se", "no-reply")
    records = [signed(i) for i in range(1, 4)]
    first = records[0]["record_id"]
    with StationThread(station_settings, district) as station:
        for record in records:
            district.publish_record(STATION, record)
        assert completed(district, [r["record_id"] for r in records[1:]])
        events = district.job_events(first)
        assert events[-1]["job_state"] == "processing-stopped"
        assert events[-1]["reasons"] == ["uncertain"]
        reply = district.command(STATION, "reprint", {"record_id": first, "reason": "not out"})
        assert reply["ok"] is True
        assert completed(district, [first])
        ledger = station.spool.ledger()
    assert ledger.balanced and ledger.spoiled == 1
