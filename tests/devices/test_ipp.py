"""The IPP driver against a real, private cupsd whose queue ends in the card-printer
simulator (card-printer.md, "Testing IPP printers")."""

from __future__ import annotations

import json
import threading
import time

import pytest

from kiosk.card.render import render_card
from kiosk.contract.record import parse_record
from kiosk.devices.printer import driver_class, make_printer, pwgraster
from kiosk.devices.printer.base import CardError
from kiosk.devices.printer.ipp import FORMATS, IppPrinter
from kiosk.sim.samples import make_record
from kiosk.station.config import from_dict
from kiosk.station.core import events as ev
from tests.conftest import wait_until


def printer_stopped() -> int:
    """IPP printer-state stopped, as pycups names it (imported where cupsd_present ran)."""
    import cups

    return cups.IPP_PRINTER_STOPPED


class Hooks:
    """The worker's side of one card, recorded."""

    def __init__(self, printer: IppPrinter, record_id: str = "rec-1", allow: bool = True):
        self.record_id = record_id
        self.card = printer.prepare(render_card(parse_record(json.dumps(make_record(1)).encode())))
        self.allow = allow
        self.calls: list[object] = []

    def document(self):
        return self.card

    def may_pick(self) -> bool:
        self.calls.append("may_pick")
        return self.allow

    def picked(self, marks=None) -> None:
        self.calls.append("picked")
        self.marks = marks

    def trouble(self, reasons) -> None:
        self.calls.append(tuple(reasons))


def connected(server, **options) -> IppPrinter:
    printer = IppPrinter(server.uri, poll_s=0.05, **options)
    printer.connect()
    return printer


def test_the_config_picks_the_driver_like_a_pin_factory(cups_server):
    assert driver_class("evolis").__name__ == "EvolisPrinter"
    assert driver_class("ipp") is IppPrinter
    with pytest.raises(ValueError, match="unknown printer driver"):
        driver_class("zebra")
    config = from_dict({"station": {"district": "3210", "id": "st-1"},
                        "printer": {"driver": "ipp", "uri": cups_server.uri}})
    assert isinstance(make_printer(config.printer), IppPrinter)
    with pytest.raises(ValueError, match=r"printer\.uri"):
        from_dict({"station": {"district": "3210", "id": "st-1"}, "printer": {"driver": "ipp"}})


def test_a_card_goes_as_one_png_named_by_record_id_and_leaves_nothing_on_the_server(
        cups_server):
    printer = connected(cups_server)
    assert printer.format == "image/pwg-raster"  # the first of the contract's order it lists
    hooks = Hooks(printer, "rec-42")
    assert printer.print_card(hooks) is None
    printer.finish()
    assert hooks.calls == ["may_pick", "picked"]
    assert isinstance(hooks.marks["job-id"], int)  # kept with the card, for a restart
    assert cups_server.printer.counters == {"taken": 1, "printed": 1}
    [document] = cups_server.printer.documents()
    assert document.name.endswith("rec-42")
    page = pwgraster.decode(document.read_bytes())
    assert page.size == (637, 1011)  # ID-1 at 300 dpi, portrait as PWG raster pages are
    assert cups_server.spooled_files() == []
    assert cups_server.jobs() == {}, "the job (its name is the record_id) is still listed"


def test_a_withdrawn_pick_sends_no_job(cups_server):
    printer = connected(cups_server)
    with pytest.raises(CardError) as failed:
        printer.print_card(Hooks(printer, allow=False))
    assert failed.value.blank == ev.BLANK_UNTOUCHED
    assert cups_server.printer.counters["taken"] == 0


def test_connect_sets_the_abort_job_policy_on_a_retrying_queue(tmp_path, cupsd_present):
    from kiosk.sim.cups import CupsServer

    with CupsServer(tmp_path / "cups", error_policy="retry-job") as server:
        printer = IppPrinter(server.uri, poll_s=0.05)
        printer._use_server()
        import cups

        before = cups.Connection(host="127.0.0.1", port=server.port).getPrinterAttributes(
            "card", requested_attributes=["printer-error-policy"])
        assert before["printer-error-policy"] == "retry-job"
        printer.connect()
        assert printer._printer_attributes()["printer-error-policy"] == "abort-job"


@pytest.mark.parametrize("fault", ["media-empty-error", "marker-supply-empty-error",
                                   "door-open-error", "offline-report"])
def test_a_fault_before_the_pick_is_shown_and_printing_resumes_when_it_clears(
        cups_server, fault):
    printer = connected(cups_server)
    cups_server.printer.raise_fault(fault)
    hooks = Hooks(printer)
    outcome: list[object] = []
    worker = threading.Thread(target=lambda: outcome.append(printer.print_card(hooks)),
                              daemon=True)
    worker.start()
    assert wait_until(lambda: (fault,) in hooks.calls, 10), hooks.calls
    assert cups_server.printer.counters["taken"] == 0  # the backend waits, no blank taken
    cups_server.printer.clear(fault)
    worker.join(timeout=10)
    assert outcome == [None] and cups_server.printer.printed == 1
    assert hooks.calls[-2:] == [(), "picked"]  # the reason went away, then the card came


def test_a_jam_after_processing_leaves_the_card_uncertain(cups_server):
    printer = connected(cups_server)
    cups_server.printer.jam_next_card()
    hooks = Hooks(printer)
    with pytest.raises(CardError) as failed:
        printer.print_card(hooks)
    assert failed.value.blank == ev.BLANK_UNKNOWN
    assert "media-jam-error" in failed.value.reasons
    assert "picked" not in hooks.calls  # the core keeps it picking: uncertain, a person decides
    assert cups_server.printer.counters == {"taken": 1, "printed": 0}
    assert cups_server.spooled_files() == []
    # Cleared by a person: the next card prints, and the reason is gone.
    cups_server.printer.clear()
    assert printer.print_card(Hooks(printer, "rec-2")) is None
    printer.finish()
    assert printer.check() == ()


def test_a_stopped_queue_without_errors_is_resumed(cups_server):
    printer = connected(cups_server)
    cups_server.lp("cupsdisable", "card")
    cups_server.lp("cupsreject", "card")
    assert printer.check() == ()
    attributes = printer._printer_attributes()
    assert attributes["printer-state"] != printer_stopped()
    assert attributes["printer-is-accepting-jobs"]


def test_marker_levels_from_the_backend_are_read(cups_server):
    printer = connected(cups_server)
    cups_server.printer.set_ribbon_level(37)
    printer.print_card(Hooks(printer))
    printer.finish()
    deadline = time.monotonic() + 5
    while printer.markers.get("ribbon") != 37 and time.monotonic() < deadline:
        printer.check()
        time.sleep(0.05)
    assert printer.markers == {"ribbon": 37}


def test_an_unreachable_server_is_connecting_to_device(cups_server):
    cups_server.stop()
    with pytest.raises(Exception) as failed:
        IppPrinter(cups_server.uri).connect()
    assert getattr(failed.value, "reasons", None) in (("connecting-to-device",),
                                                      ("timed-out-error",))


MAGIC = {"image/pwg-raster": b"RaS2", "image/png": b"\x89PNG", "application/pdf": b"%PDF"}


@pytest.mark.parametrize("formats", [("image/png", "application/pdf"), ("application/pdf",)])
def test_the_first_format_the_queue_takes_is_sent(tmp_path, cupsd_present, formats):
    """The queue's PPD names *formats*; CUPS adds what the machine's filters convert to
    (with cups-filters, image/pwg-raster): the expectation is read from the queue."""
    from kiosk.sim.cups import CupsServer

    with CupsServer(tmp_path / "cups", card_seconds=0.05, formats=formats) as server:
        printer = connected(server)
        listed = printer._printer_attributes()["document-format-supported"]
        assert set(formats) <= set(listed)
        chosen = next(f for f in FORMATS if f in listed)
        assert printer.format == chosen
        printer.print_card(Hooks(printer))
        printer.finish()
        [document] = server.printer.documents()
        # What reaches the backend is a format of the queue's own (converted by CUPS
        # where the station's was not one).
        assert document.read_bytes()[:4] in {MAGIC[f] for f in formats}


def test_manual_feed_asks_the_queue_for_its_manual_slot(tmp_path, cupsd_present):
    """Desk mode (chip.md): every card from the manual slot; cupsd hands the backend (the
    vendor's driver, on a real queue) the job's media-source."""
    from kiosk.sim.cups import CupsServer

    with CupsServer(tmp_path / "cups", manual_slot=True) as server:
        printer = connected(server)
        printer.use_manual_feed(30)
        printer.print_card(Hooks(printer))
        printer.finish()
        plain = connected(server)
        plain.print_card(Hooks(plain, "rec-2"))
        plain.finish()
        manual, feeder = server.printer.job_options()
    assert "media-source=manual" in manual.split(), manual
    assert "media-source=manual" not in feeder.split(), feeder
