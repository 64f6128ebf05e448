"""A layout's parts drawn into plain `CardPanels`: a shared background with the photo on
Y/M/C, the labels' shared K with the record's own text and signatures on it, the overlay.

The parts every card shares (the background, the K of the fixed labels, the overlay) are
drawn once and named in `CardPanels.shared`, with the box the card's own content lies in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from types import MappingProxyType

from PIL import Image

from kiosk.card.art import overlay
from kiosk.card.panels import CARD_SIZE, Box, CardPanels, Shared
from kiosk.card.text import Placed, draw_placed

YMC = tuple[Image.Image, Image.Image, Image.Image]


@lru_cache(maxsize=16)
def fixed_ink(fixed: tuple[Placed, ...]) -> Image.Image:
    """K with only the `fixed` items drawn (shared: copy it). Keyed by the items
    themselves, so it is drawn once per row layout (a value on one row or two)."""
    k = Image.new("1", CARD_SIZE, 0)
    for p in fixed:
        draw_placed(k, p)
    return k


def compose(background: YMC, fixed: Iterable[Placed], own: Iterable[Placed],
            signatures: Sequence[tuple[Image.Image, Box]],
            photo: tuple[YMC, Box] | None = None) -> CardPanels:
    """The card's panels: `photo` (Y/M/C filling its box) on `background`; on K, the
    `fixed` items (shared by many cards), then the record's `own` items and signature
    masks (each with the box it fills)."""
    base = fixed_ink(tuple(fixed))
    k, touched = base.copy(), None
    for ink, at in signatures:
        k.paste(255, at[:2], ink)
        touched = at.union(touched)
    for p in own:
        drawn = draw_placed(k, p)
        touched = drawn.union(touched) if drawn else touched
    shared = {"k": Shared(base, touched or Box(0, 0, 0, 0))}
    ymc = list(background)
    if photo is not None:
        patch, box = photo
        for i, (panel, part) in enumerate(zip(background, patch, strict=True)):
            ymc[i] = panel.copy()
            ymc[i].paste(part, box[:2])
            shared["ymc"[i]] = Shared(panel, box)
    else:
        shared.update({name: Shared(panel, Box(0, 0, 0, 0))
                       for name, panel in zip("ymc", background, strict=True)})
    y, m, c = ymc
    return CardPanels(y=y, m=m, c=c, k=k, o=overlay(), shared=MappingProxyType(shared))
