"""The printer simulator's smart-card subset (card-printer.md, "Smart cards") on real parts:
the printer on its pty through pyserial, its encoder a vpcd slot of a private pcscd."""

from __future__ import annotations

import pytest
import serial

from kiosk.devices.printer.evolis.protocol import command
from kiosk.sim.printer import PrinterSimulator
from tests.sim.test_chip import UID, apdu, pcsc, pcsc_parts, wait_card  # noqa: F401
from tests.sim.test_sim_printer import ask

GET_UID = bytes.fromhex("FFCA000000")
SLOT = "Kiosk Encoder 00 00"


@pytest.fixture
def inline(pcsc):  # noqa: F811
    """(printer, port): the simulator with its encoder on the "Kiosk Encoder" reader."""
    with PrinterSimulator(feeder=5, card_seconds=0.01, uids=[UID],
                          encoder_port=pcsc.reader("Kiosk Encoder").port) as printer:
        port = serial.serial_for_url(printer.path, 115200, timeout=2)
        yield printer, port
        port.close()


def test_sic_picks_a_blank_to_the_encoder_where_its_chip_answers(inline):
    printer, port = inline
    assert ask(port, command("Sic")) == "OK"
    assert (printer.picked, printer.feeder, ask(port, command("Rlr", "p"))) == (1, 4, "1")
    assert printer.card_inside.uid == UID.hex().upper()
    assert apdu(SLOT, GET_UID) == [UID + b"\x90\x00"]


def test_ss_after_sic_prints_that_card_picking_nothing(inline):
    printer, port = inline
    assert ask(port, command("Sic")) == "OK"
    assert wait_card(SLOT, present=True)
    assert ask(port, command("Sr")) == "ERROR CDE"  # not in a print sequence yet
    assert ask(port, command("Ss")) == "OK"
    assert (printer.picked, printer.feeder) == (1, 4)
    assert wait_card(SLOT, present=False)  # out of the reader's field
    assert ask(port, command("Sr")) == "OK"
    assert ask(port, command("Se")) == "OK"
    assert [card.uid for card in printer.cards] == [UID.hex().upper()]


def test_ser_ejects_to_the_reject_box_and_needs_a_card(inline):
    printer, port = inline
    assert ask(port, command("Ser")) == "ERROR CDE"
    assert ask(port, command("Sic")) == "OK"
    assert wait_card(SLOT, present=True)
    assert ask(port, command("Ser")) == "OK"
    assert wait_card(SLOT, present=False)
    assert [card.uid for card in printer.rejected_cards] == [UID.hex().upper()]
    assert (printer.rejected, printer.printed, ask(port, command("Rlr", "p"))) == (1, 0, "0")


def test_sic_with_a_card_inside_carries_it_to_the_encoder(inline):
    """After a crash: a card left in its print sequence is brought back and read."""
    printer, port = inline
    assert ask(port, command("Ss")) == "OK"
    assert ask(port, command("Sic")) == "OK"
    assert (printer.picked, printer.rejected) == (1, 0)
    assert apdu(SLOT, GET_UID) == [UID + b"\x90\x00"]


def test_sis_carries_the_card_to_the_contact_station(inline):
    printer, port = inline
    assert ask(port, command("Sis")) == "OK"
    assert printer.card_inside.position == "contact"
    assert ask(port, command("Sic")) == "OK"  # then to the contactless one, nothing picked
    assert printer.picked == 1 and printer.card_inside.position == "contactless"


def test_uids_listed_then_seeded_and_a_chip_failing_on_demand(tmp_path):
    listing = tmp_path / "uids.txt"
    listing.write_text("04A1B2C3D4E5F6\n08112233\n")
    from kiosk.sim.chip import uids_from_file

    with PrinterSimulator(feeder=5, uids=uids_from_file(listing)) as printer:
        port = serial.serial_for_url(printer.path, 115200, timeout=2)
        printer.fail_next_chip("garbage")
        for _ in range(3):
            assert ask(port, command("Sic")) == "OK"
            assert ask(port, command("Ser")) == "OK"
        port.close()
    uids = [card.uid for card in printer.rejected_cards]
    assert uids[:2] == ["04A1B2C3D4E5F6", "08112233"] and len(uids[2]) == 14
    assert [chip.fault for chip in printer.chips] == ["garbage", None, None]
    with pytest.raises(ValueError, match="unknown chip fault"):
        printer.fail_next_chip("melted")


def test_sic_on_an_empty_feeder(inline):
    printer, port = inline
    printer.load_cards(-printer.feeder)
    assert ask(port, command("Sic")) == "FEEDER EMPTY"
    assert printer.picked == 0


def test_kiosk_sim_printer_with_listed_uids_and_its_encoder(pcsc, tmp_path):  # noqa: F811
    import subprocess
    import sys

    listing = tmp_path / "uids.txt"
    listing.write_text("04A1B2C3D4E5F6\n")
    command_line = [sys.executable, "-m", "kiosk", "sim", "printer", "--card-seconds", "0.01",
                    "--uids", str(listing), "--encoder-port",
                    str(pcsc.reader("Kiosk Encoder").port)]
    process = subprocess.Popen(command_line, stdout=subprocess.PIPE, text=True)
    try:
        path = process.stdout.readline().strip()
        port = serial.serial_for_url(path, 115200, timeout=2)
        assert ask(port, command("Sic")) == "OK"
        assert apdu(SLOT, GET_UID) == [UID + b"\x90\x00"]
        assert ask(port, command("Ser")) == "OK"
        port.close()
    finally:
        process.terminate()
        assert process.wait(10) == 0
