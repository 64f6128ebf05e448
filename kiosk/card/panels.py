"""The card as plain panels: what every card layout produces and every printer driver reads.

Owns the card's size, the `Box` geometry the layouts place things with, `RenderError`, and
`CardPanels`: the landscape front side (1016 x 648) as five named images, Y/M/C/K/O. It
says nothing of any printer's wire (turning, packing, compression belong to the driver).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

from PIL import Image

CARD_SIZE = (1016, 648)  # landscape CR80 at 300 dpi
PANEL_NAMES = "ymcko"


class RenderError(ValueError):
    """The record cannot be drawn: an undecodable image or text that cannot fit."""


class Box(NamedTuple):
    """A rectangle in card pixels; right and bottom are exclusive."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    def contains(self, bbox: tuple[int, int, int, int]) -> bool:
        return (self.left <= bbox[0] and self.top <= bbox[1]
                and bbox[2] <= self.right and bbox[3] <= self.bottom)

    def overlaps(self, other: Box) -> bool:
        return (self.left < other.right and other.left < self.right
                and self.top < other.bottom and other.top < self.bottom)

    def union(self, other: Box | None) -> Box:
        if other is None:
            return self
        return Box(min(self.left, other.left), min(self.top, other.top),
                   max(self.right, other.right), max(self.bottom, other.bottom))


WHOLE_CARD = Box(0, 0, *CARD_SIZE)


@dataclass(frozen=True)
class Shared:
    """A panel equals `base` (an image many cards share; never modify it) outside `box`:
    the card's own content (its photo, its holder's text) lies inside `box`."""

    base: Image.Image
    box: Box


@dataclass(frozen=True)
class CardPanels:
    """The landscape front side (1016 x 648) as printer panels.

    y, m, c: mode "L", 0 = no ink, 255 = full ink. k, o: mode "1" where a set
    pixel (Pillow reports 255) is resin ink / overlay varnish, so `card.k.show()`
    shows ink as white: use `preview()` to see the card. Treat the images as read-only:
    `o` is usually the one shared overlay of every card (kiosk.card.art.overlay()).

    `shared` (optional) names, per panel, the shared image the panel equals outside a
    box (`Shared`): the background and the labels are the same on every card. A driver
    may use it to do once what is the same on every card; ignoring it changes nothing.
    """

    y: Image.Image
    m: Image.Image
    c: Image.Image
    k: Image.Image
    o: Image.Image
    shared: Mapping[str, Shared] = field(default_factory=lambda: MappingProxyType({}))

    def preview(self) -> Image.Image:
        """RGB picture of the printed card: subtractive C/M/Y with resin K on top."""
        return Image.merge("CMYK", (self.c, self.m, self.y, self.k.convert("L"))).convert("RGB")


CardImages = CardPanels  # the name the printer drivers knew it by
