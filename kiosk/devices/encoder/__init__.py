"""Chip encoders, chosen by ``[encoder] mode`` the way gpiozero chooses a pin factory.

``none`` (the default): no chip step, no encoder. ``inline``: the PC/SC reader built
into the printer, reached when the printer holds the card at its contactless position
(Evolis ``Sic``). ``desk``: a PC/SC reader on the desk, the operator lays the card on
it. Both are `kiosk.devices.encoder.pcsc.PcscEncoder` (pyscard, the `chip` extra,
imported only when chosen); they differ in how long they wait for a card
(``card_wait_s``: 10 s inline, 120 s desk) and in what the station asks of the operator.
An encoder reports facts (kiosk/devices/encoder/facts.py); the station's core decides.
"""

from __future__ import annotations

import importlib
from typing import Any

MODES: dict[str, str | None] = {
    "none": None,
    "inline": "kiosk.devices.encoder.pcsc:PcscEncoder",
    "desk": "kiosk.devices.encoder.pcsc:PcscEncoder",
}


def encoder_class(mode: str) -> type | None:
    """The encoder class for *mode* (None for ``none``); ValueError for an unknown mode."""
    try:
        target = MODES[mode]
    except KeyError:
        raise ValueError(f"unknown encoder mode {mode!r}; known: {', '.join(MODES)}") from None
    if target is None:
        return None
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)


def make_encoder(settings: Any) -> Any | None:
    """The encoder for an ``[encoder]`` section (anything with its attributes); None for
    mode ``none``."""
    cls = encoder_class(getattr(settings, "mode", "none"))
    return None if cls is None else cls.from_settings(settings)
