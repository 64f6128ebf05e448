"""A stopped queue is never left stopped (card-printer.md): a private cupsd whose backend
stops the queue as vendors' do (exit 4, ``STATE: +reason``), once per reason."""

from __future__ import annotations

import time

import pytest

from kiosk.devices.printer.base import CardError
from kiosk.devices.printer.ipp import HARMLESS, NO_BLANK_TAKEN, RETRY_POLLS, IppPrinter
from kiosk.station.core import events as ev
from tests.devices.test_ipp import Hooks, connected, printer_stopped

# Those the simulated backend stops the queue for (an offline printer is waited for).
SIM_HARMLESS = sorted(HARMLESS - {"connecting-to-device", "offline-report"})


def stopped_by(server, printer: IppPrinter, reason: str) -> tuple[str, ...]:
    """Print one card into *reason* with a vendor-like backend: the queue stops."""
    server.printer.stop_on_fault()
    if reason == "media-jam-error":
        server.printer.jam_next_card()
    else:
        server.printer.raise_fault(reason)
    hooks = Hooks(printer)
    with pytest.raises(CardError) as failed:
        printer.print_card(hooks)
    if reason in NO_BLANK_TAKEN:  # the printer could not reach a blank: none was taken
        assert failed.value.blank == ev.BLANK_UNTOUCHED and "picked" not in hooks.calls
    else:  # it was processing: a blank may be gone, a person decides
        assert failed.value.blank == ev.BLANK_UNKNOWN and "picked" not in hooks.calls
    assert reason in failed.value.reasons
    attributes = printer._printer_attributes()
    assert attributes["printer-state"] == printer_stopped(), "exit 4 did not stop it"
    assert server.jobs() == {}, "the put-back job was left for the server to print again"
    return failed.value.reasons


def check_until_resumed(printer: IppPrinter, timeout: float) -> tuple[float, list]:
    """Call check() as the station does until it says the printer can take a card."""
    started, seen = time.monotonic(), []
    while time.monotonic() - started < timeout:
        reasons = printer.check()
        seen.append(reasons)
        if reasons == ():
            return time.monotonic() - started, seen
        time.sleep(printer.poll_s)
    raise AssertionError(f"not resumed within {timeout} s: {seen[-1]}")


@pytest.mark.parametrize("reason", SIM_HARMLESS)
def test_a_harmless_reason_is_retried_after_ten_polls_and_the_card_prints_once_fixed(
        cups_server, reason):
    printer = connected(cups_server)  # poll_s 0.05: retried after 0.5 s
    stopped_by(cups_server, printer, reason)
    assert printer.check() == (reason,)  # right after the stop: the reason stands
    waited, _ = check_until_resumed(printer, 10)
    assert waited >= printer.poll_s * (RETRY_POLLS - 1)
    assert printer._printer_attributes()["printer-state"] != printer_stopped()
    # Still there: the next card's backend says so and stops the queue again, no blank taken.
    stopped_by(cups_server, printer, reason)
    cups_server.printer.clear()
    check_until_resumed(printer, 10)
    assert printer.print_card(Hooks(printer, "rec-2")) is None
    printer.finish()
    assert cups_server.printer.printed == 1


@pytest.mark.parametrize("reason", ["media-jam-error", "door-open-error",
                                    "marker-supply-empty-error"])
def test_a_jam_or_a_reason_not_known_harmless_waits_for_a_person(cups_server, reason):
    printer = connected(cups_server)
    stopped_by(cups_server, printer, reason)
    cups_server.printer.clear()  # fixed, but nobody told the station
    retry_at = time.monotonic() + printer.poll_s * RETRY_POLLS
    seen = []
    while time.monotonic() < retry_at + 3 * printer.poll_s:  # the retry had its chance
        seen.append(printer.check())
        time.sleep(printer.poll_s)
    assert set(seen) == {(reason,)}
    printer.fault_gone("refill")  # a refill does not clear a jam or an open door
    assert printer.check() == (reason,)
    printer.fault_gone("operator")  # a person says it is fixed
    assert printer.check() == ()
    assert printer.print_card(Hooks(printer, "rec-2")) is None
    printer.finish()


@pytest.mark.parametrize("kind", ["refill", "tray", "operator", "resume"])
def test_evidence_of_a_refill_resumes_an_empty_feeder_at_once(tmp_path, cupsd_present, kind):
    from kiosk.sim.cups import CupsServer

    with CupsServer(tmp_path / "cups", card_seconds=0.05) as server:
        printer = IppPrinter(server.uri, poll_s=2.0)  # the timed retry is 20 s away
        printer.connect()
        stopped_by(server, printer, "media-empty-error")
        assert printer.check() == ("media-empty-error",)
        server.printer.clear()
        printer.fault_gone(kind)
        assert printer.check() == ()
        assert printer._printer_attributes()["printer-state"] != printer_stopped()


def test_unknown_evidence_is_refused(cups_server):
    with pytest.raises(ValueError, match="unknown evidence"):
        connected(cups_server).fault_gone("rumour")
