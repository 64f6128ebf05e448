"""kill -9 of the station at the chip's steps (chip.md, "A crash"): the station runs as its
own process against a real Mosquitto, the Evolis simulator on a pty and a private pcscd
whose vpcd reader holds each blank's chip. The kill lands at a chosen moment: as a chosen
APDU reaches the chip (before the chip acts on it), or as a chosen printer command
arrives. After the restart the card inside the printer is told by its chip: untouched, it
is used again; written and not printed, it is rejected and invalid gagal-encode. Either
way the record prints exactly once and the ledger and the register balance.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading

import pytest

from kiosk.devices.encoder.personalizers import demo_content
from kiosk.station.spool import Spool
from tests.conftest import STATION, StationProcess, wait_until
from tests.sim.test_chip import pcsc, pcsc_parts  # noqa: F401  (fixtures)
from tests.station.test_chip_e2e import ENCODER, chip_printer  # noqa: F401  (fixture)

SELECT, READ_BINARY = 0xA4, 0xB0


class ChipKiller:
    """SIGKILLs the station once: at the first APDU with instruction *ins*, or at the
    first printer command *step*, whichever is armed."""

    def __init__(self, sim, *, ins: int | None = None, step: str | None = None) -> None:
        self.ins, self.step, self.pid = ins, step, None
        self.landed = threading.Event()
        sim.on_apdu = self._on_apdu
        sim.on_command = self._on_command

    def _on_apdu(self, apdu: bytes) -> None:
        if self.ins is not None and len(apdu) > 1 and apdu[0] == 0x00 and apdu[1] == self.ins:
            self._kill()

    def _on_command(self, text: str) -> None:
        if self.step is not None and text == self.step:
            self._kill()

    def _kill(self) -> None:
        if self.pid is None or self.landed.is_set():
            return
        self.landed.set()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)


def _completed(district, rid: str) -> bool:
    return district.final_state(rid) == "completed"


def _run_with_kill(tmp_path, station_settings, district, signed, sim, killer):
    """One record, a kill at the armed moment, a restart; returns (record, blank events)."""
    station_settings["printer"]["port"] = sim.path
    station_settings["encoder"] = dict(ENCODER)
    station = StationProcess(station_settings, tmp_path).start()
    assert district.wait_for(lambda: district.availability.get(STATION) == "online", 20)
    killer.pid = station.process.pid
    record = signed(1)
    district.publish_record(STATION, record)
    assert killer.landed.wait(30), "the kill never landed"
    assert wait_until(lambda: station.process.poll() is not None, 10)
    station.start()
    try:
        assert district.wait_for(lambda: _completed(district, record["record_id"]), 40), (
            district.job_events(record["record_id"]))
        assert district.wait_for(lambda: any(
            e["outcome"] == "printed" for e in district.events_of("blank")), 10)
    finally:
        assert station.terminate() == 0
    return record, district.events_of("blank")


def _books(spool_path: str):
    spool = Spool(spool_path)
    try:
        return spool.ledger(), list(reversed(spool.blanks()))
    finally:
        spool.close()


def test_killed_before_the_chip_is_written_the_untouched_blank_is_used_again(
        tmp_path, station_settings, district, signed, chip_printer):  # noqa: F811
    killer = ChipKiller(chip_printer, ins=SELECT)  # the personalizer's first command
    record, events = _run_with_kill(tmp_path, station_settings, district, signed,
                                    chip_printer, killer)
    assert (chip_printer.picked, chip_printer.rejected, chip_printer.printed) == (1, 0, 1)
    card = chip_printer.cards[0]
    assert card.chip.content() == demo_content(record)
    assert [(e["uid"], e["outcome"]) for e in events] == [(card.uid, "printed")]
    ledger, rows = _books(station_settings["station"]["spool"])
    assert (ledger.picks, ledger.printed, ledger.spoiled) == (1, 1, 0)
    assert [(r.uid, r.outcome) for r in rows] == [(card.uid, "printed")]
    details = [e["detail"] for e in district.job_events(record["record_id"])]
    assert any("untouched" in d for d in details), details


@pytest.mark.parametrize("moment", ["verify", "print"])
def test_killed_after_the_chip_is_written_the_blank_is_rejected_as_gagal_encode(
        moment, tmp_path, station_settings, district, signed, chip_printer):  # noqa: F811
    if moment == "verify":  # the write is done; the personalizer reads it back
        killer = ChipKiller(chip_printer, ins=READ_BINARY)
    else:  # the card is at the print position, its surface about to be printed
        killer = ChipKiller(chip_printer, step="Sr")
    record, events = _run_with_kill(tmp_path, station_settings, district, signed,
                                    chip_printer, killer)
    assert (chip_printer.picked, chip_printer.rejected, chip_printer.printed) == (2, 1, 1)
    spoiled, card = chip_printer.rejected_cards[0], chip_printer.cards[0]
    assert card.chip.content() == demo_content(record)
    assert [(e["uid"], e["outcome"], e["category"]) for e in events] == [
        (spoiled.uid, "invalid", "gagal-encode"), (card.uid, "printed", None)]
    assert "found in the printer after a restart" in events[0]["detail"]
    ledger, rows = _books(station_settings["station"]["spool"])
    assert (ledger.picks, ledger.printed, ledger.spoiled) == (2, 1, 1)
    assert [(r.uid, r.category) for r in rows] == [(spoiled.uid, "gagal-encode"),
                                                    (card.uid, None)]
