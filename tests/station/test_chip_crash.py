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
    """SIGKILLs the station once: at the *nth* APDU with instruction *ins*, or at the
    first printer command *step*, whichever is armed."""

    def __init__(self, sim, *, ins: int | None = None, nth: int = 1,
                 step: str | None = None) -> None:
        self.ins, self.nth, self.step, self.pid = ins, nth, step, None
        self.seen = 0
        self.landed = threading.Event()
        sim.on_apdu = self._on_apdu
        sim.on_command = self._on_command

    def _on_apdu(self, apdu: bytes) -> None:
        if self.ins is not None and len(apdu) > 1 and apdu[1] == self.ins:
            self.seen += 1
            if self.seen == self.nth:
                self._kill()

    def _on_command(self, text: str) -> None:
        if self.step is not None and (text == self.step or text.startswith(self.step + ";")):
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


GET_DATA, CREATE, UPDATE_BINARY = 0xCA, 0xE0, 0xD6

# Each moment of a card's life with a chip, and what the blank then was: "untouched" (used
# again for the same job), "written" (rejected, gagal-encode, the job on a new blank) or
# "out" (the printer finished it: its counters say printed). A moment is an APDU reaching
# the chip (instruction, which one of them) or a printer command arriving; the chip and the
# printer act on it after the kill.
MOMENTS = [
    ("Sic", None, "untouched"),
    ((GET_DATA, 1), None, "untouched"),  # the UID read
    ((GET_DATA, 2), None, "untouched"),  # read again before the personalizer runs
    ((SELECT, 1), None, "untouched"),
    ((CREATE, 1), None, "untouched"),  # a file of zeros holds no record
    ((UPDATE_BINARY, 1), None, "written"),
    ((READ_BINARY, 1), None, "written"),  # the personalizer's verify
    ((GET_DATA, 3), None, "written"),  # the UID read again before printing
    ("Ss", None, "written"),
    ("Sr", None, "written"),
    ("Dbc;k", None, "written"),
    ("Se", None, "out"),
]


def _killer(sim, moment) -> ChipKiller:
    if isinstance(moment, tuple):
        return ChipKiller(sim, ins=moment[0], nth=moment[1])
    return ChipKiller(sim, step=moment)


@pytest.mark.parametrize(("moment", "_", "blank"), MOMENTS,
                         ids=[str(m[0]) for m in MOMENTS])
def test_kill_9_at_each_step_of_the_chip_prints_once_and_books_every_blank(
        moment, _, blank, tmp_path, station_settings, district, signed,
        chip_printer):  # noqa: F811
    record, events = _run_with_kill(tmp_path, station_settings, district, signed,
                                    chip_printer, _killer(chip_printer, moment))
    card = chip_printer.cards[0]
    assert chip_printer.printed == 1 and card.chip.content() == demo_content(record)
    ledger, rows = _books(station_settings["station"]["spool"])
    if blank == "written":
        spoiled = chip_printer.rejected_cards[0]
        assert (chip_printer.picked, chip_printer.rejected) == (2, 1)
        assert [(e["uid"], e["outcome"], e["category"]) for e in events] == [
            (spoiled.uid, "invalid", "gagal-encode"), (card.uid, "printed", None)]
        assert "found in the printer after a restart" in events[0]["detail"]
        assert (ledger.picks, ledger.printed, ledger.spoiled) == (2, 1, 1)
    else:
        assert (chip_printer.picked, chip_printer.rejected) == (1, 0)
        assert [(e["uid"], e["outcome"]) for e in events] == [(card.uid, "printed")]
        assert (ledger.picks, ledger.printed, ledger.spoiled) == (1, 1, 0)
    assert [(r.uid, r.outcome) for r in rows] == [(e["uid"], e["outcome"]) for e in events]
    details = " ".join(e["detail"] for e in district.job_events(record["record_id"]))
    if blank == "untouched":
        assert "untouched" in details
    if blank == "out":
        assert "decided by the printer's counters" in details
