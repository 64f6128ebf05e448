"""The card printer's serial link failing at every step of the protocol, and a slow printer.

One station runs through a whole list of faults without a restart. Each fault is armed
for one command of the card sequence (or of the connect/check sequence) through the
printer simulator's ``on_command`` hook, which injects it into that very command: the port
closing and reappearing ("vanish"), a reply that never comes ("no-reply"), garbage after
the reply, a reply split across reads. After each fault the record completes (a card the
station cannot vouch for waits as ``uncertain`` and the district, looking at the printer's
output, confirms or reprints it), and at the end every record was printed exactly once,
the ledger balances and nothing waits in the outbox.
"""

from __future__ import annotations

import threading
import time

import pytest
import serial

from kiosk.devices.printer.evolis import protocol as evolis
from kiosk.sim.printer import PrinterSimulator
from kiosk.station.spool import Spool
from tests.conftest import STATION, StationThread, wait_until
from tests.support.rigs import CARD, CONNECT, k_panel, once_each, step_of

VANISH_S = 0.3
IDLE_CHECK_S = 5.0  # kiosk/station/printing.py: PrintWorker(idle_check_s=5.0)


class FaultPlan:
    """Arms faults, each for the next command of its step (the simulator's on_command)."""

    def __init__(self, printer: PrinterSimulator) -> None:
        self.printer = printer
        self.armed: list[tuple[str, str]] = []
        self.previous = ""
        self.fired: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        printer.on_command = self

    def arm(self, step: str, fault: str) -> None:
        with self.lock:
            self.armed.append((step, fault))

    def __call__(self, text: str) -> None:
        step = step_of(text, self.previous)
        self.previous = text.split(";")[0]
        with self.lock:
            match = next((armed for armed in self.armed if armed[0] == step), None)
            if match is None:
                return
            self.armed.remove(match)
        self.printer.inject(text.split(";")[0], match[1], seconds=VANISH_S)
        self.fired.append(match)


class Run:
    """One station, records sent one at a time, each fault's outcome checked."""

    def __init__(self, station, district, printer, signed) -> None:
        self.station, self.district, self.printer = station, district, printer
        self.signed = signed
        self.records: list[dict] = []
        self.uncertain: list[str] = []
        self.spoiled: dict[tuple[str, str], int] = {}

    def card(self, label: tuple[str, str], *, timeout: float = 30.0) -> None:
        """Send one record and see it through to a completed job."""
        record = self.signed(len(self.records) + 1)
        self.records.append(record)
        rid = record["record_id"]
        before = self.station.spool.ledger().spoiled
        self.district.publish_record(STATION, record)
        assert self.district.wait_for(lambda: self.ended(rid), timeout), (label, self.states(rid))
        last = self.district.job_events(rid)[-1]
        assert last["job_state"] not in ("aborted", "canceled"), (label, last["detail"])
        if last["job_state"] != "completed":
            self.resolve(record)
        assert self.district.wait_for(lambda: self.states(rid)[-1:] == ["completed"], timeout)
        assert wait_until(lambda: self.station.core.state.printer == "idle", timeout), label
        ledger = self.station.spool.ledger()
        assert ledger.balanced, (label, ledger)
        self.spoiled[label] = ledger.spoiled - before

    def states(self, rid: str) -> list[str]:
        return once_each(self.district.job_events(rid))

    def ended(self, rid: str) -> bool:
        events = self.district.job_events(rid)
        last = events[-1] if events else {}
        final = last.get("job_state") in ("completed", "aborted", "canceled")
        return final or last.get("reasons") == ["uncertain"]

    def resolve(self, record: dict) -> None:
        """The district looks at the printer's output and decides."""
        rid = record["record_id"]
        self.uncertain.append(rid)
        came_out = any(card.panels.get("k") == k_panel(record) for card in self.printer.cards)
        name, args = ("confirm", {}) if came_out else ("reprint", {"reason": "not out"})
        assert self.district.command(STATION, name, {"record_id": rid, **args})["ok"] is True

    def check_end(self, spool_path: str) -> None:
        by_panel = {k_panel(r): r["record_id"] for r in self.records}
        printed = [by_panel[card.panels["k"]] for card in self.printer.cards]
        assert sorted(printed) == sorted(r["record_id"] for r in self.records)
        reader = Spool(spool_path)
        try:
            assert wait_until(lambda: reader.outbox() == [], 10)
            assert reader.ledger().balanced
        finally:
            reader.close()


def run_faults(station_settings, district, signed, printer_sim, faults, steps) -> Run:
    plan = FaultPlan(printer_sim)
    with StationThread(station_settings, district) as station:
        run = Run(station, district, printer_sim, signed)
        run.card(("none", "none"))
        for fault in faults:
            for step in steps:
                if step in CONNECT:  # only a reconnect sends these: pull the cable first
                    plan.arm("Pem;2", "vanish")
                plan.arm(step, fault)
                run.card((step, fault))
                assert plan.fired[-1:] == [(step, fault)], f"{step} never came"
        assert station.core.state.printer == "idle"
        run.check_end(station_settings["station"]["spool"])
    return run


def test_port_pulled_while_idle_then_back_costs_no_record_and_no_restart(
    station_settings, district, signed, printer_sim
):
    """The cable is pulled and plugged back between cards (no command in flight): the
    next card must print, and so must a card after the idle check (every 5 s) found the
    old port dead."""
    with StationThread(station_settings, district) as station:
        run = Run(station, district, printer_sim, signed)
        run.card(("none", "none"))
        printer_sim.vanish()
        printer_sim.reappear()
        run.card(("pulled while idle", "next card"))
        connects = printer_sim.commands.count("Rtp")
        printer_sim.vanish()
        printer_sim.reappear()
        wait_until(lambda: printer_sim.commands.count("Rtp") > connects, IDLE_CHECK_S + 15,
                   what="the idle check found the old port dead and connected again")
        run.card(("pulled while idle", "after the idle check"))
        run.check_end(station_settings["station"]["spool"])
    assert run.uncertain == []


def test_garbage_and_split_replies_at_every_step_cost_nothing(
    station_settings, district, signed, printer_sim
):
    run = run_faults(station_settings, district, signed, printer_sim,
                     ["garbage", "split"], CONNECT + CARD)
    assert run.uncertain == []
    assert set(run.spoiled.values()) == {0}


@pytest.mark.slow
def test_port_vanishing_at_every_step_recovers_without_a_restart(
    station_settings, district, signed, printer_sim
):
    run = run_faults(station_settings, district, signed, printer_sim, ["vanish"],
                     CONNECT + CARD)
    report(run)
    picked = CARD[CARD.index("Ss"):CARD.index("Se")]
    for step in picked:  # a blank in the printer when the link went: spoiled, printed again
        assert run.spoiled[(step, "vanish")] == 1, step
    assert len(run.uncertain) == 1  # Se unanswered: did it print? A person decides


@pytest.mark.slow
def test_replies_that_never_come_at_every_step_recover_without_a_restart(
    station_settings, district, signed, printer_sim
):
    station_settings["printer"]["print_seconds"] = 0.5  # Se waits print_seconds + 10 s
    run = run_faults(station_settings, district, signed, printer_sim, ["no-reply"],
                     CONNECT + CARD)
    report(run)
    for step in CONNECT + CARD[:CARD.index("Ss")]:
        assert run.spoiled[(step, "no-reply")] == 0, step
    assert len(run.uncertain) == 1


def report(run: Run) -> None:
    print(f"\n{len(run.records)} records, uncertain {run.uncertain}, spoiled per step: "
          + ", ".join(f"{step}/{fault}={n}" for (step, fault), n in run.spoiled.items() if n))


@pytest.mark.slow
def test_a_slow_printer_is_waited_for_not_faulted(
    station_settings, district, signed, tmp_path
):
    """Replies come late (0.35 s, the setting timeout is 0.5 s) and each card takes 2.5 s,
    longer than the configured 1 s: every card completes, none is spoiled or uncertain."""
    late = PrinterSimulator(str(tmp_path / "late"), card_seconds=2.5, receive_timeout=0.8,
                            on_command=lambda text: time.sleep(0.35))
    late.start()
    try:
        station_settings["printer"].update(port=late.path, print_seconds=1.0)
        with StationThread(station_settings, district) as station:
            run = Run(station, district, late, signed)
            for number in range(3):
                run.card(("slow", str(number)), timeout=60)
            run.check_end(station_settings["station"]["spool"])
        assert run.uncertain == [] and set(run.spoiled.values()) == {0}
        alerts = {a["reason"] for a in district.events_of("alert")}
        assert "timed-out-error" not in alerts
    finally:
        late.stop()


def test_on_command_sees_each_command_before_it_is_served(tmp_path):
    seen: list[str] = []

    def hold(text: str) -> None:
        seen.append(text)
        time.sleep(0.2)

    printer = PrinterSimulator(str(tmp_path / "p"), on_command=hold)
    with printer:
        port = serial.serial_for_url(printer.path, 115200, timeout=2)
        try:
            for frame in (evolis.command("Pem", 2), evolis.command("Ss")):
                sent = time.monotonic()
                port.write(frame)
                assert port.read_until(b"\r") == b"OK\r"
                assert time.monotonic() - sent >= 0.2  # the hook ran before the reply
        finally:
            port.close()
    assert seen == ["Pem;2", "Ss"]
    assert printer.picked == 1
