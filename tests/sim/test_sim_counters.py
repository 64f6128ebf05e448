"""The Evolis simulator's counters behave like a printer's: they survive its host."""

from __future__ import annotations

import serial

from kiosk.devices.printer.evolis import protocol as evolis
from kiosk.sim.printer import PrinterSimulator


def ask(port: serial.SerialBase, name: str, *params: str) -> str:
    port.write(evolis.command(name, *params))
    return port.read_until(b"\r").decode().strip()


def test_counters_persist_in_the_state_file(tmp_path):
    state = tmp_path / "printer-state.json"
    with PrinterSimulator(str(tmp_path / "p1"), state_file=str(state)) as sim:
        port = serial.serial_for_url(sim.path, timeout=2)
        assert ask(port, "Ss") == "OK"  # a blank taken, then the process dies
        port.close()
    with PrinterSimulator(str(tmp_path / "p2"), state_file=str(state)) as sim:
        port = serial.serial_for_url(sim.path, timeout=2)
        assert (ask(port, "Rco", "c"), ask(port, "Rco", "p")) == ("1", "0")
        port.close()
