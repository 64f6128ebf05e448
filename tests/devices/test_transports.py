"""usblp://: a non-serial byte device node as a pyserial port, driving the printer simulator."""

from __future__ import annotations

import pytest
import serial

from kiosk.devices.printer.evolis.driver import EvolisPrinter
from kiosk.sim.printer import PrinterSimulator
from kiosk.sim.samples import make_record


class Hooks:
    def __init__(self, panels):
        self._panels = panels

    def document(self):
        return self._panels

    def ask_pick(self):
        pass

    def may_pick(self):
        return True

    def picked(self):
        pass


def test_usblp_url_opens_a_device_node_and_prints_a_card(tmp_path):
    import json

    from kiosk.card.render import render_card
    from kiosk.contract.record import parse_record
    from kiosk.devices.printer.evolis.panels import encode_card

    panels = encode_card(render_card(parse_record(json.dumps(make_record(1)).encode())))
    with PrinterSimulator(str(tmp_path / "printer")) as sim:
        printer = EvolisPrinter(f"usblp://{sim.path}")
        assert "simulated" in printer.connect()
        printer.print_card(Hooks(panels))
        printer.finish()
        printer.close()
        assert sim.wait_for_cards(1, 5)
    assert sim.printed == 1


def test_usblp_read_times_out_and_a_missing_node_is_a_serial_error(tmp_path):
    with PrinterSimulator(str(tmp_path / "printer")) as sim:
        port = serial.serial_for_url(f"usblp://{sim.path}", timeout=0.2)
        assert port.read(10) == b""
        port.write(b"\x1bRfv\r")
        assert port.read_until(b"\r").endswith(b"\r")
        port.close()
    with pytest.raises(serial.SerialException, match="could not open"):
        serial.serial_for_url(f"usblp://{tmp_path}/none")
