"""Simulation: the devices on pseudo-terminals, a private Mosquitto, sample records, the demo.

The simulators (printer, tray, receipt) speak the devices' own wire protocols and import
nothing of the station; only `demo` joins them to a real station.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from kiosk.signals import stopped_by_signals


def serve_until_signalled(device: AbstractContextManager[Any],
                          farewell: Callable[[], str] | None = None) -> int:
    """Run a simulator until SIGINT or SIGTERM, for ``kiosk sim ...``.

    Its port path is the first line on stdout (what a test harness or a person
    opens); *farewell* may add a last line when it stops.
    """
    stop = threading.Event()
    with stopped_by_signals(stop.set), device as running:  # nothing runs in the handler
        print(running.path, flush=True)
        while not stop.wait(0.5):
            pass
        if farewell:
            print(farewell(), flush=True)
    return 0
