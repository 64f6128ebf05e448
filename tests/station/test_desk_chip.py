"""Desk mode end to end (chip.md, ``[encoder] mode = "desk"``): the station with a real
broker, the Evolis simulator on a pty fed through its manual slot, a private pcscd with the
"Kiosk Desk" vpcd reader, the project's chip emulator as the cards the operator lays on it,
and the panel on gpiozero's MockFactory with the memory LCD. The operator here does only
what the LCD asks, when it asks (each wait has a deadline).
"""

from __future__ import annotations

import pytest

from kiosk.devices.encoder.personalizers import demo_content
from kiosk.devices.printer.evolis.driver import EvolisPrinter
from kiosk.sim.chip import Chip, VirtualCard
from kiosk.sim.printer import PrinterSimulator
from tests.conftest import STATION, StationThread, wait_until
from tests.devices.test_panel_e2e import HOLD_S, hold
from tests.sim.test_chip import pcsc, pcsc_parts, wait_card  # noqa: F401  (fixtures)

READER = "Kiosk Desk"
CARD_WAIT_S = 8.0
PROMPT_S = 20.0  # a prompt shows within this (a card's previous steps included)


def uid(n: int) -> bytes:
    return bytes.fromhex(f"04DE5C00000{n:03X}")


def hex_of(n: int) -> str:
    return uid(n).hex().upper()


@pytest.fixture
def desk_settings(station_settings, pcsc):  # noqa: F811
    station_settings["encoder"] = {"mode": "desk", "reader": READER, "personalizer": "demo",
                                   "card_wait_s": CARD_WAIT_S, "timeout_s": 5}
    station_settings["panel"] = {"lcd": "memory", "hold_s": HOLD_S}
    return station_settings


class Operator:
    """The person at the desk: reads the LCD, lays cards on the reader, feeds the printer."""

    def __init__(self, station, pcsc, sim: PrinterSimulator) -> None:  # noqa: F811
        self.station, self.sim = station, sim
        self.reader = pcsc.reader(READER)
        self.on_reader: VirtualCard | None = None

    def lcd(self) -> str:
        return "\n".join(self.station.panel.lcd.lines)

    def sees(self, title: str, timeout: float = PROMPT_S) -> None:
        wait_until(lambda: self.lcd().startswith(title), timeout,
                   what=f"the LCD asking {title!r}")

    def lay(self, chip: Chip) -> None:
        assert self.on_reader is None
        self.on_reader = VirtualCard(chip, self.reader.port).insert()

    def lift(self) -> Chip:
        card, self.on_reader = self.on_reader, None
        assert card is not None
        card.remove()
        # pcscd polls the slot: the next card is seen only once this one is seen gone.
        assert wait_card(self.reader.slot(0), False), "the reader still reports the card"
        return card.chip

    def encode(self, chip: Chip) -> None:
        """A blank laid when asked, then fed into the manual slot when asked."""
        self.sees("LETAKKAN BLANKO")
        self.lay(chip)
        self.sees("MASUKKAN KE PRINTER")
        self.sim.feed_manual(self.lift())

    def scan_printed(self, chip: Chip, answer: str) -> None:
        """The handover scan with *chip*; *answer*: what the LCD says then."""
        self.sees("SCAN SERAH TERIMA")
        self.lay(chip)
        self.sees(answer)
        self.lift()


def test_a_failed_chip_is_put_aside_and_the_record_prints_on_the_next_blank_from_the_manual_slot(
        desk_settings, district, signed, printer_sim, pcsc):  # noqa: F811
    record = signed(1)
    rid = record["record_id"]
    feeder = printer_sim.feeder
    with StationThread(desk_settings, district) as station:
        operator = Operator(station, pcsc, printer_sim)
        district.publish_record(STATION, record)
        operator.sees("LETAKKAN BLANKO")
        bad = Chip(uid(1), fault="write-fails")
        operator.lay(bad)
        operator.sees("GAGAL ENCODE")  # put it aside: it never entered the printer
        operator.lift()
        good = Chip(uid(2))
        operator.encode(good)
        assert printer_sim.wait_for_cards(1, PROMPT_S)
        operator.scan_printed(printer_sim.cards[0].chip, "KARTU COCOK")
        assert district.wait_for(lambda: district.final_state(rid) == "completed", 10)
        wait_until(lambda: operator.lcd().startswith("SIAP"), 10, what="the status screen")
    blanks = {event["uid"]: event for event in district.events_of("blank")}
    assert blanks[hex_of(1)]["outcome"] == "invalid"
    assert blanks[hex_of(1)]["category"] == "gagal-encode"
    assert blanks[hex_of(2)]["outcome"] == "printed" and blanks[hex_of(2)]["record_id"] == rid
    assert printer_sim.cards[0].uid == hex_of(2)
    assert good.content() == demo_content(record)  # the chip holds its own record
    assert printer_sim.feeder == feeder and printer_sim.picked == 1  # from the manual slot
    assert "handover scan: chip " + hex_of(2) in district.job_events(rid)[-1]["detail"]
    assert district.job_events(rid)[-1]["chip_uid"] == hex_of(2)


def test_a_card_whose_handover_scan_shows_another_chip_is_held_until_a_person_decides(
        desk_settings, district, signed, printer_sim, pcsc):  # noqa: F811
    record = signed(1)
    rid = record["record_id"]
    with StationThread(desk_settings, district) as station:
        operator = Operator(station, pcsc, printer_sim)
        district.publish_record(STATION, record)
        operator.encode(Chip(uid(3)))
        assert printer_sim.wait_for_cards(1, PROMPT_S)
        operator.scan_printed(Chip(uid(4)), "KARTU TAK COCOK")  # another card on the reader
        assert district.wait_for(lambda: "handover-mismatch-warning" in (
            district.job_events(rid)[-1]["reasons"]), 10)
        job = district.job_events(rid)[-1]
        assert job["job_state"] == "processing-stopped" and "uncertain" in job["reasons"]
        assert hex_of(4) in job["detail"] and hex_of(3) in job["detail"]
        assert district.wait_for(lambda: any(
            a["reason"] == "handover-mismatch-warning" and not a.get("cleared")
            for a in district.events_of("alert")), 10)
        wait_until(lambda: operator.lcd().startswith("CHIP TAK COCOK"), 10,
                   what="the held card's screen")
        assert rid[-10:] in operator.lcd()
        hold("ok")  # the person checked the card: it is right
        assert district.wait_for(lambda: district.final_state(rid) == "completed", 10)
        assert district.wait_for(lambda: any(
            a["reason"] == "handover-mismatch-warning" and a.get("cleared")
            for a in district.events_of("alert")), 10)
    assert [e["outcome"] for e in district.events_of("blank")] == ["printed"]


def test_the_manual_slot_of_the_simulator_and_the_driver(printer_sim):
    """Pmi;M: Ss takes the card fed into the manual slot, never one from the feeder; the
    driver sends Ss again while the slot is empty, up to its wait."""
    from tests.devices.test_encoder_inline import Hooks

    printer = EvolisPrinter(printer_sim.path, print_seconds=1)
    printer.connect()
    try:
        printer.use_manual_feed(0.8)
        feeder = printer_sim.feeder
        with pytest.raises(Exception, match="no card was fed into the manual slot"):
            printer.print_card(Hooks([]))
        assert printer_sim.picked == 0 and printer_sim.feeder == feeder
        printer_sim.feed_manual(Chip(uid(5)))
        printer.print_card(Hooks([]))
        printer.finish()
        assert printer_sim.cards[-1].uid == hex_of(5) and printer_sim.feeder == feeder
    finally:
        printer.close()


def test_the_reader_unplugged_stops_the_desk_and_a_used_card_is_never_written(
        desk_settings, district, signed, printer_sim, pcsc):  # noqa: F811
    first, second = signed(1), signed(2)
    with StationThread(desk_settings, district) as station:
        operator = Operator(station, pcsc, printer_sim)
        pcsc.unplug(READER)
        assert district.wait_for(lambda: "chip-reader-missing-error" in district.states[
            STATION]["printer_state_reasons"], 15)
        wait_until(lambda: operator.lcd().startswith("PEMBACA CHIP HILANG"), 10,
                   what="the reader's fault screen")
        district.publish_record(STATION, first)
        assert district.wait_for(lambda: district.states[STATION]["queue"]["pending"] == 1
                                 and "chip-reader-missing-error" in district.states[STATION][
                                     "printer_state_reasons"], 5)  # spooled, not started
        assert district.job_states(first["record_id"]) == ["pending"]
        pcsc.plug(READER)
        made = Chip(uid(6))
        operator.encode(made)  # the job starts once the reader is back
        assert printer_sim.wait_for_cards(1, PROMPT_S)
        operator.scan_printed(made, "KARTU COCOK")
        written = made.content()
        district.publish_record(STATION, second)
        operator.sees("LETAKKAN BLANKO")
        operator.lay(made)  # a card the register knows, laid as if it were a blank
        operator.sees("BUKAN BLANKO BARU")
        operator.lift()
        operator.encode(Chip(uid(7)))
        assert printer_sim.wait_for_cards(2, PROMPT_S)
        operator.scan_printed(printer_sim.cards[1].chip, "KARTU COCOK")
        assert district.wait_for(lambda: district.final_state(second["record_id"]) == "completed",
                                 10)
    assert made.content() == written == demo_content(first)  # nothing written to it again
    assert [(e["uid"], e["outcome"]) for e in district.events_of("blank")] == [
        (hex_of(6), "printed"), (hex_of(7), "printed")]
