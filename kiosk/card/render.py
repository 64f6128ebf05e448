"""A record drawn as its card: `render_card(record)` gives the plain landscape panels
(`CardPanels`: Y, M, C, K, O) of the document the record is, the E-KTP or the KIA.

The parts live beside this module: panels.py (the panels and their geometry), text.py
(fonts, fitting, drawing text), art.py (background, overlay), images.py (the record's
untrusted images), compose.py (parts into panels), and one module per document's layout
(ektp.py, kia.py). Names the printer drivers and tools import are re-exported here.
"""

from __future__ import annotations

from kiosk.card.art import OVERLAY_MARGIN, overlay
from kiosk.card.ektp import (
    FIXED_ITEMS,
    IMAGE_BOXES,
    MAX_CHARS,
    PHOTO_BOX,
    SIGNATURE_BOX,
    layout,
    render_ektp,
)
from kiosk.card.images import MAX_IMAGE_SIDE
from kiosk.card.kia import render_kia
from kiosk.card.panels import CARD_SIZE, Box, CardImages, CardPanels, RenderError, Shared
from kiosk.card.text import FONT_SOURCE, MIN_FONT, Placed, draw_placed, fit, font
from kiosk.contract.kia import KiaRecord
from kiosk.contract.record import Record

__all__ = [
    "CARD_SIZE", "FIXED_ITEMS", "FONT_SOURCE", "IMAGE_BOXES", "MAX_CHARS", "MAX_IMAGE_SIDE",
    "MIN_FONT", "OVERLAY_MARGIN", "PHOTO_BOX", "SIGNATURE_BOX", "Box", "CardImages",
    "CardPanels", "Placed", "RenderError", "Shared", "draw_placed", "fit", "font", "layout",
    "overlay", "render_card",
]


def render_card(record: Record | KiaRecord) -> CardPanels:
    """Draw the front side of `record` (an E-KTP or a KIA); the same record gives
    byte-identical panels."""
    if isinstance(record, KiaRecord):
        return render_kia(record)
    return render_ektp(record)
