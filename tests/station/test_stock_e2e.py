"""Blank-card stock on real parts: tray board simulator, printer simulator, broker, station.

Each scenario ends with the ledger balanced: every picked card printed or spoiled.
"""

from __future__ import annotations

from tests.conftest import STATION, StationThread, wait_until


def estimate(district) -> int | None:
    """The tray sensor's estimate in the last state (None before the first state)."""
    return district.states.get(STATION, {}).get("stock", {}).get("sensor_estimate")


def reasons(district) -> list[str]:
    return district.states.get(STATION, {}).get("printer_state_reasons", [])


def alert_seen(district, reason: str, *, cleared: bool = False) -> bool:
    return any(a["reason"] == reason and a.get("cleared", False) == cleared
               for a in district.events_of("alert"))


def all_completed(district, records, timeout=30.0) -> bool:
    ids = [r["record_id"] for r in records]
    return district.wait_for(lambda: all(district.final_state(i) == "completed" for i in ids),
                             timeout)


def test_stock_runs_out_mid_queue_and_a_refill_resumes_printing(
    station_settings, district, signed, printer_sim, tray_sim
):
    printer_sim.on_pick = tray_sim.take_card
    printer_sim.load_cards(3 - printer_sim.feeder)
    tray_sim.cards = 3
    station_settings["tray"]["low_threshold"] = 2
    records = [signed(i) for i in range(1, 6)]
    with StationThread(station_settings, district) as station:
        assert district.command(STATION, "refill", {"count": 3})["remaining"] == 3
        for record in records:
            district.publish_record(STATION, record)
        assert district.wait_for(lambda: "media-empty-error" in reasons(district), 20)
        assert district.wait_for(lambda: alert_seen(district, "media-low-warning"), 5)
        assert district.states[STATION]["stock"]["remaining"] == 0
        assert district.wait_for(  # the printer's own feeder sensor stops it
            lambda: district.states[STATION]["printer_state"] == "stopped", 10)
        # Someone puts 20 blanks in the tray and books them.
        printer_sim.load_cards(20)
        tray_sim.cards = 20
        assert district.command(STATION, "refill", {"count": 20})["ok"]
        assert all_completed(district, records)
        assert district.wait_for(lambda: alert_seen(district, "media-empty-error", cleared=True),
                                 5)
        assert district.wait_for(
            lambda: district.states[STATION]["stock"]["remaining"] == 18, 5)
        ledger = station.spool.ledger()
    assert (ledger.refills, ledger.picks, ledger.printed) == (23, 5, 5) and ledger.balanced


def test_ledger_at_zero_while_the_printer_still_has_cards_prints_and_warns(
    station_settings, district, signed
):
    records = [signed(i) for i in range(1, 3)]
    with StationThread(station_settings, district) as station:
        for record in records:  # no refill was ever booked, then one too small
            district.publish_record(STATION, record)
        assert all_completed(district, records)
        assert district.states[STATION]["stock"]["remaining"] is None
        district.command(STATION, "refill", {"count": 1})
        more = [signed(3), signed(4)]
        for record in more:
            district.publish_record(STATION, record)
        assert all_completed(district, more)
        assert district.wait_for(lambda: "ledger-mismatch-warning" in reasons(district), 5)
        ledger = station.spool.ledger()
    assert ledger.remaining == 1 - 4 and ledger.balanced  # picks before the refill count too


def test_tray_door_opened_mid_print_warns_once_and_clears_once(
    station_settings, district, signed, tray_sim, printer_sim
):
    printer_sim.card_seconds = 0.2
    records = [signed(i) for i in range(1, 5)]
    with StationThread(station_settings, district) as station:
        for record in records:
            district.publish_record(STATION, record)
        assert wait_until(lambda: printer_sim.picked >= 1, 10)
        tray_sim.set_door(True)
        assert district.wait_for(lambda: "door-open-warning" in reasons(district), 5)
        tray_sim.set_door(False)
        assert district.wait_for(lambda: "door-open-warning" not in reasons(district), 5)
        assert all_completed(district, records)
        ledger = station.spool.ledger()
    raised = [a for a in district.events_of("alert") if a["reason"] == "door-open-warning"]
    assert [a.get("cleared", False) for a in raised] == [False, True]
    assert ledger.balanced and ledger.printed == 4


def test_card_held_in_the_path_beam_is_a_jam_before_the_printer_says_so(
    station_settings, district, tray_sim
):
    station_settings["tray"]["path_jam_s"] = 0.5
    with StationThread(station_settings, district):
        tray_sim.set_path(True)
        assert district.wait_for(lambda: "media-jam-error" in reasons(district), 5)
        tray_sim.set_path(False)
        assert district.wait_for(lambda: "media-jam-error" not in reasons(district), 5)
    assert alert_seen(district, "media-jam-error")
    assert alert_seen(district, "media-jam-error", cleared=True)


def test_silent_tray_board_goes_offline_and_printing_goes_on(
    station_settings, district, signed, tray_sim, printer_sim
):
    records = [signed(i) for i in range(1, 4)]
    with StationThread(station_settings, district) as station:
        tray_sim.mute(4.0)
        assert district.wait_for(lambda: "offline-report" in reasons(district), 6)
        for record in records:
            district.publish_record(STATION, record)
        assert all_completed(district, records)
        assert district.wait_for(lambda: "offline-report" not in reasons(district), 8)
        ledger = station.spool.ledger()
    assert ledger.balanced and printer_sim.printed == 3


def test_corrupt_frames_and_sequence_gaps_never_close_the_tray_link(
    station_settings, district, tray_sim
):
    with StationThread(station_settings, district) as station:
        assert wait_until(lambda: station.tray.stats.frames >= 3, 5)
        tray_sim.corrupt_next(5)
        tray_sim.skip_seq(7)
        assert wait_until(lambda: station.tray.stats.bad_frames >= 5, 5)
        assert wait_until(lambda: station.tray.stats.lost_frames >= 7, 5)
        frames = station.tray.stats.frames
        assert wait_until(lambda: station.tray.stats.frames > frames + 3, 5)
    assert "offline-report" not in reasons(district)


def test_sensor_estimate_and_time_to_empty_in_the_state(
    station_settings, district, signed, tray_sim, printer_sim
):
    printer_sim.on_pick = tray_sim.take_card
    tray_sim.cards = 100
    records = [signed(i) for i in range(1, 6)]
    with StationThread(station_settings, district):
        district.command(STATION, "refill", {"count": 100})
        for record in records:
            district.publish_record(STATION, record)
        assert all_completed(district, records)
        assert district.wait_for(
            lambda: estimate(district) == 95, 5)
        stock = district.states[STATION]["stock"]
    assert stock["remaining"] == 95
    assert stock["rate_per_hour"] > 0 and stock["minutes_to_empty"] > 0


def test_ledger_and_sensor_disagreeing_beyond_tolerance_is_an_alert(
    station_settings, district, tray_sim
):
    tray_sim.cards = 150
    with StationThread(station_settings, district):
        district.command(STATION, "refill", {"count": 100})
        assert district.wait_for(lambda: "ledger-mismatch-warning" in reasons(district), 5)
        district.command(STATION, "refill", {"count": 50})
        assert district.wait_for(lambda: "ledger-mismatch-warning" not in reasons(district), 5)


def test_calibration_by_command_reaches_the_board_and_changes_the_estimate(
    station_settings, district, tray_sim
):
    tray_sim.cards = 100  # 76,000 µm of cards above an empty height of 0
    with StationThread(station_settings, district):
        assert district.wait_for(
            lambda: estimate(district) == 100, 5)
        reply = district.command(STATION, "calibrate", {"empty_height_um": 0, "card_um": 800})
        assert reply["ok"] is True
        assert district.wait_for(lambda: any(
            e["name"] == "calibrate" and e.get("source") == "tray" and e["ok"]
            for e in district.events_of("command")), 5)
        assert district.wait_for(  # 76,000 / 800 = 95 cards
            lambda: estimate(district) == 95, 5)
        refused = district.command(STATION, "calibrate",
                                   {"empty_height_um": 999_999, "card_um": 800})
        assert refused["ok"] is True  # sent; the board's own answer is the refusal
        assert district.wait_for(lambda: any(
            e["name"] == "calibrate" and e.get("source") == "tray" and not e["ok"]
            for e in district.events_of("command")), 5)
    assert tray_sim.calibration == (0, 800)
