"""The card's printed art that no record changes: the guilloche background (Y/M/C) and
the overlay varnish (O). Each is drawn once per process and shared by every card."""

from __future__ import annotations

import math
from functools import cache

from PIL import Image, ImageDraw

from kiosk.card.panels import CARD_SIZE

# Overlay varnish border left bare, px. None: the overlay protects the print to the edge,
# and a full panel goes as 1016 one-byte "black line" Dbc records (~1 KB, not ~80 KB).
OVERLAY_MARGIN = 0
# RGB of the paper tint's three bands at the card's top-left; ribbons and rosette follow.
EKTP_TINT = ((-6, 3, 12), (186, 212, 238), (204, 216, 240), (196, 216, 240))


@cache
def background(tint: tuple[tuple[int, int, int], ...] = EKTP_TINT
               ) -> tuple[Image.Image, Image.Image, Image.Image]:
    """Pale guilloche (gradient, wavy ribbons, a rosette) as Y, M, C panels (shared:
    never modify them). `tint`: the gradient's per-channel offset, the two ribbon
    colours and the rosette's colour; the default is the E-KTP's pale blue."""
    (dr, dg, db), ribbon_a, ribbon_b, rosette = tint
    w, h = CARD_SIZE
    base = Image.linear_gradient("L").resize((w, h)).point(lambda v: 214 + v * 28 // 255)
    rgb = Image.merge("RGB", tuple(base.point(lambda v, d=d: max(0, min(255, v + d)))
                                   for d in (dr, dg, db)))
    draw = ImageDraw.Draw(rgb)
    for k in range(30):
        phase, amp = k * 0.45, 12 + (k % 5) * 3
        pts = [(x, 8 + k * 22 + amp * math.sin(x / 57 + phase) + 5 * math.sin(x / 13 + k))
               for x in range(0, w + 4, 4)]
        draw.line(pts, fill=ribbon_a if k % 2 else ribbon_b, width=2)
    for k in range(48):  # rosette: a ring of epitrochoid-like loops
        a0 = k * math.pi / 24
        pts = [(430 + (120 + 70 * math.cos(6 * t / 50)) * math.cos(t / 50 + a0),
                400 + (120 + 70 * math.cos(6 * t / 50)) * math.sin(t / 50 + a0) * 0.8)
               for t in range(0, 316, 2)]
        draw.line(pts, fill=rosette, width=1)
    c, m, y, _ = rgb.convert("CMYK").split()
    return y, m, c


@cache
def overlay() -> Image.Image:
    """The overlay panel of every card (shared: never modify it)."""
    o = Image.new("1", CARD_SIZE, 0)
    m = OVERLAY_MARGIN
    o.paste(255, (m, m, CARD_SIZE[0] - m, CARD_SIZE[1] - m))
    return o
