"""Job and printer changes learned from the server as they happen (card-printer.md,
Pacing): IPP notifications, polling every poll_s only where the server offers none."""

from __future__ import annotations

import time

from kiosk.devices.printer.ipp import IppPrinter
from kiosk.sim.cups import CupsServer
from tests.devices.test_ipp import Hooks


def requests(server, operation: str) -> int:
    log = server.root / "log" / "access_log"
    return log.read_text().count(operation) if log.exists() else 0


def test_a_cards_end_is_learned_from_a_notification_not_a_poll(cups_server):
    printer = IppPrinter(cups_server.uri, poll_s=30.0)  # a poll would come 5 minutes late
    printer.connect()
    assert printer.events.startswith("notifications")
    started = time.monotonic()
    assert printer.print_card(Hooks(printer)) is None
    assert time.monotonic() - started < 10
    printer.finish()
    assert requests(cups_server, "Get-Notifications") >= 1
    printer.close()


def test_a_server_without_subscriptions_is_polled(tmp_path, cupsd_present):
    with CupsServer(tmp_path / "cups", card_seconds=0.1, subscriptions=False) as server:
        printer = IppPrinter(server.uri, poll_s=0.05)
        printer.connect()
        assert printer.events.startswith("polling every 0.05 s")
        assert printer.print_card(Hooks(printer)) is None
        printer.finish()
        assert requests(server, "Get-Notifications") == 0
        assert server.printer.printed == 1
