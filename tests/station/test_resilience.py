"""The station under a crash (kill -9) and a broker outage: nothing lost, nothing printed twice."""

from __future__ import annotations

import pytest

from kiosk.sim.printer import PrinterSimulator
from kiosk.station.spool import Spool
from tests.conftest import STATION, StationProcess, StationThread, wait_until
from tests.support.rigs import k_panel, once_each


def settled(district, ids) -> bool:
    """Every record completed, or stopped as uncertain waiting for a person."""
    for rid in ids:
        events = district.job_events(rid)
        last = events[-1] if events else None
        if last is None:
            return False
        if last["job_state"] == "completed":
            continue
        if last["job_state"] == "processing-stopped" and last["reasons"] == ["uncertain"]:
            continue
        return False
    return True


@pytest.fixture
def slow_printer(tmp_path):
    sim = PrinterSimulator(str(tmp_path / "slow-printer"), card_seconds=0.25, receive_timeout=0.8)
    sim.start()
    yield sim
    sim.stop()


@pytest.mark.parametrize("kill_after_picks", [2, 4])
def test_kill_9_while_printing_loses_nothing_and_prints_nothing_twice(
    tmp_path, station_settings, district, signed, slow_printer, kill_after_picks
):
    station_settings["printer"]["port"] = slow_printer.path
    records = [signed(i) for i in range(1, 9)]
    ids = [r["record_id"] for r in records]
    station = StationProcess(station_settings, tmp_path).start()
    assert district.wait_for(lambda: district.availability.get(STATION) == "online", 15)
    for record in records:
        district.publish_record(STATION, record)
    # Kill while a card is inside the printer (picked, not yet out).
    assert wait_until(lambda: slow_printer.picked >= kill_after_picks
                      and slow_printer.picked > slow_printer.printed, 20)
    station.kill()
    assert district.wait_for(lambda: district.availability.get(STATION) == "offline", 10)

    station.start()
    try:
        assert district.wait_for(lambda: settled(district, ids), 40), station.log.read_text()
        uncertain = [rid for rid in ids if district.final_state(rid) != "completed"]
        assert len(uncertain) <= 1
        # The printer's output, card by card, matched to the records by their K panel.
        by_panel = {k_panel(r): r["record_id"] for r in records}
        printed = [by_panel[card.panels["k"]] for card in slow_printer.cards]
        assert len(printed) == len(set(printed)), "a record was printed twice"
        completed = [rid for rid in ids if rid not in uncertain]
        assert set(completed) <= set(printed)
        for rid in uncertain:  # the person at the device looks, and tells the station
            name = "confirm" if rid in printed else "reprint"
            args = {"record_id": rid} if rid in printed else {"record_id": rid, "reason": "x"}
            assert district.command(STATION, name, args)["ok"] is True
        assert district.wait_for(
            lambda: all(district.final_state(rid) == "completed" for rid in ids), 20)
    finally:
        assert station.terminate() == 0
    ledger = Spool(station_settings["station"]["spool"]).ledger()
    assert ledger.balanced, ledger
    assert ledger.printed == len(ids)


def test_broker_outage_while_printing_loses_no_record_and_no_event(
    station_settings, broker, district, signed, printer_sim
):
    before = [signed(i) for i in range(1, 5)]
    after = [signed(i) for i in range(5, 8)]
    with StationThread(station_settings, district) as station:
        for record in before:
            district.publish_record(STATION, record)
        assert district.wait_for(  # all spooled: the station has them, the broker may go
            lambda: all(district.job_states(r["record_id"]) for r in before), 10)
        broker.stop()
        # The station keeps printing what it has while the broker is away.
        assert wait_until(lambda: printer_sim.printed == len(before), 20)
        assert wait_until(lambda: not station.link.connected, 5)
        broker.start()
        assert district.wait_for(lambda: district.availability.get(STATION) == "online", 30)
        for record in after:
            district.publish_record(STATION, record)
        ids = [r["record_id"] for r in before + after]
        assert district.wait_for(
            lambda: all(district.final_state(rid) == "completed" for rid in ids), 30), [
            (rid, district.job_states(rid)) for rid in ids]
        for rid in ids:  # delivery is at least once: the district dedupes by (boot_id, seq)
            assert once_each(district.job_events(rid)) == ["pending", "processing", "completed"]
        reader = Spool(station_settings["station"]["spool"])
        assert wait_until(lambda: reader.outbox() == [], 10), "events not confirmed"
        reader.close()
    assert printer_sim.printed == len(before) + len(after)
