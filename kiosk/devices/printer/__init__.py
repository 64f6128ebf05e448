"""Card-printer drivers, chosen by name the way gpiozero chooses a pin factory.

``[printer] driver = "evolis" | "ipp"`` names an entry of `DRIVERS`; the class
is imported only when chosen (the IPP client library is an optional extra) and
built from the ``[printer]`` section with its ``from_settings``. A third
family is one more entry here and one more class.
"""

from __future__ import annotations

import importlib
from typing import Any

from kiosk.devices.printer.base import CardPrinter

DRIVERS = {
    "evolis": "kiosk.devices.printer.evolis.driver:EvolisPrinter",
    "ipp": "kiosk.devices.printer.ipp:IppPrinter",
}


def driver_class(name: str) -> type:
    """The driver class registered as *name*; ValueError for an unknown name."""
    try:
        module_name, class_name = DRIVERS[name].split(":")
    except KeyError:
        raise ValueError(f"unknown printer driver {name!r}; known: {', '.join(DRIVERS)}") from None
    return getattr(importlib.import_module(module_name), class_name)


def make_printer(settings: Any) -> CardPrinter:
    """The driver for a ``[printer]`` section (anything with its attributes)."""
    return driver_class(getattr(settings, "driver", "evolis")).from_settings(settings)
