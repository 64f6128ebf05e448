"""Wire encoding of card panels for the Evolis printer (card-printer.md, `Db` / `Dbc`).

Owns the way from the card's plain landscape panels (`CardPanels`) to the panel bytes
the printer receives -- the quarter turn, 1-bit and 5/6/7-bit colour packing, the choice
of `Dbc` compression -- and the way back (`decode_card`, `render_preview`) so operators
and tests see exactly what is sent. Its caches: what a card shares with others
(`CardPanels.shared`: the background, the labels' K, the overlay) is turned and packed
once; per card only the box holding the card's own content is turned and packed again.

Orientation: `rotate=90` turns the card a quarter clockwise, as Evolis's own driver
does (tests/fixtures/evolis-card-text.prn): the card's left edge is the first wire
line, scanned from the card's bottom-left corner up to its top-left corner.
`rotate=270` turns it counter-clockwise: the right edge comes first, top to bottom.
If the geometry is larger (or smaller) than the turned card, the card is centred
on the panel (or cropped to it).

Ribbons: "ymcko" (y, m, c, k, o), "ymck" (no overlay), "ko" and "k" (black only).
Without colour panels the photo is dithered into K so the card still carries it.
"""

from __future__ import annotations

import binascii
import math
from dataclasses import dataclass, field
from functools import cache

from PIL import Image

from kiosk.card.panels import CARD_SIZE, Box, CardPanels, Shared
from kiosk.card.render import PHOTO_BOX, overlay, render_card
from kiosk.contract.kia import KiaRecord
from kiosk.contract.record import Record
from kiosk.devices.printer.evolis.protocol import (
    COLOUR_BITS,
    MONO_CODE,
    Geometry,
    bits_per_pixel,
    compress_1bit,
    decompress_1bit,
)

RIBBONS = ("ymcko", "ymck", "ko", "k")
COLOUR_CODES = {bits: code for code, bits in COLOUR_BITS.items()}  # 5 -> 32, 6 -> 64, 7 -> 128
ROTATIONS = {90: Image.Transpose.ROTATE_270, 270: Image.Transpose.ROTATE_90}  # Pillow: CCW
GEOMETRY = Geometry()  # 648 x 1016, card-printer.md
_BASE64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


@dataclass(frozen=True)
class PanelData:
    """One panel as sent: `Dbc;<panel>;2;<len>;<data>` if compressed, else
    `Db;<panel>;<code>;<data>`."""

    panel: str
    code: int
    data: bytes = field(repr=False)
    compressed: bool


def pack_1bit(img: Image.Image) -> bytes:
    """A mode "1" image as lines of bits, MSB first, 1 = ink (a set pixel).

    Pillow's raw "1" packer already writes a set (255, white-looking) pixel as 1:
    our K/O images store ink as set pixels, so no inversion is needed.
    """
    if img.mode != "1":
        raise ValueError(f"1-bit panel must be mode '1', not {img.mode!r}")
    return img.tobytes()


def unpack_1bit(data: bytes, geometry: Geometry = GEOMETRY) -> Image.Image:
    """The wire-oriented mode "1" image of a raw 1-bit panel (set pixel = ink)."""
    if len(data) != geometry.panel_bytes(1):
        raise ValueError(f"1-bit panel is {len(data)} bytes, not {geometry.panel_bytes(1)}")
    return Image.frombytes("1", (geometry.width, geometry.height), data)


def _or(parts: list[bytes]) -> bytes:
    """Bitwise OR of equal-length byte strings (their set bits never collide here)."""
    if len(parts) == 1:
        return parts[0]
    acc = 0
    for part in parts:
        acc |= int.from_bytes(part, "big")
    return acc.to_bytes(len(parts[0]), "big")


@cache
def _plan(bits: int) -> tuple[tuple[tuple[int, int], ...], ...]:
    """8 pixels of `bits` bits make `bits` bytes. For each byte j: the (pixel i, shift)
    pairs that touch it, shift being where pixel i's least significant bit lands in
    byte j (negative: below the byte, i.e. the pixel goes on into byte j + 1)."""
    plan = []
    for j in range(bits):
        plan.append(tuple((i, 8 * j + 8 - (i + 1) * bits) for i in range(8)
                          if i * bits < 8 * j + 8 and (i + 1) * bits > 8 * j))
    return tuple(plan)


@cache
def _pack_table(bits: int, shift: int) -> bytes:
    """Grey level (0-255) -> its quantized value's bits as they sit in one byte."""
    top = (1 << bits) - 1
    table = []
    for v in range(256):
        q = (v * top + 127) // 255
        table.append((q << shift) & 0xFF if shift >= 0 else q >> -shift)
    return bytes(table)


@cache
def _unpack_table(bits: int, shift: int) -> bytes:
    """Byte -> the bits of one pixel it holds, in their place within the pixel value."""
    top = (1 << bits) - 1
    return bytes((b >> shift) & top if shift >= 0 else (b << -shift) & top for b in range(256))


@cache
def _grey_table(bits: int) -> bytes:
    top = (1 << bits) - 1
    return bytes((q * 255 + top // 2) // top if q <= top else 255 for q in range(256))


@cache
def _base64_tables() -> tuple[bytes, bytes]:
    """Grey level -> base64 digit of its 6-bit level, and base64 digit -> grey level."""
    to_digit = bytes(_BASE64[(v * 63 + 127) // 255] for v in range(256))
    to_grey = bytearray(256)
    for q, digit in enumerate(_BASE64):
        to_grey[digit] = (q * 255 + 31) // 63
    return to_digit, bytes(to_grey)


def pack_colour(img: Image.Image, bits: int) -> bytes:
    """A mode "L" ink image quantized to `bits` per pixel (5-7) as one MSB-first bit
    stream, line after line (6 bits: 4 pixels -> 3 bytes). 0 = no ink."""
    if img.mode != "L":
        raise ValueError(f"colour panel must be mode 'L', not {img.mode!r}")
    if bits not in COLOUR_CODES:
        raise ValueError(f"colour depth must be one of {sorted(COLOUR_CODES)}, not {bits}")
    raw = img.tobytes()
    size = (len(raw) * bits + 7) // 8
    if bits == 6:  # base64 decoding is a C packer of 6-bit values, MSB first
        raw += bytes(-len(raw) % 4)
        return binascii.a2b_base64(raw.translate(_base64_tables()[0]))[:size]
    return _pack_lanes(raw, bits)[:size]


def _pack_lanes(raw: bytes, bits: int) -> bytes:
    """Any depth: pixel lanes i mod 8, shifted by table lookups and OR-ed into bytes."""
    raw += bytes(-len(raw) % 8)
    lanes = [raw[i::8] for i in range(8)]
    out = bytearray(len(lanes[0]) * bits)
    for j, terms in enumerate(_plan(bits)):
        out[j::bits] = _or([lanes[i].translate(_pack_table(bits, s)) for i, s in terms])
    return bytes(out)


def unpack_colour(data: bytes, bits: int, geometry: Geometry = GEOMETRY) -> Image.Image:
    """The wire-oriented mode "L" image of a packed colour panel (levels spread to 0-255)."""
    if len(data) != geometry.panel_bytes(bits):
        raise ValueError(f"{bits}-bit panel is {len(data)} bytes, "
                         f"not {geometry.panel_bytes(bits)}")
    pixels = geometry.width * geometry.height
    size = (geometry.width, geometry.height)
    if bits == 6:
        digits = binascii.b2a_base64(data, newline=False).translate(_base64_tables()[1])
        return Image.frombytes("L", size, digits[:pixels])
    data += bytes(-len(data) % bits)
    lanes = [data[j::bits] for j in range(bits)]
    parts: list[list[bytes]] = [[] for _ in range(8)]
    for j, terms in enumerate(_plan(bits)):
        for i, s in terms:
            parts[i].append(lanes[j].translate(_unpack_table(bits, s)))
    out = bytearray(len(lanes[0]) * 8)
    for i in range(8):
        out[i::8] = _or(parts[i]).translate(_grey_table(bits))
    return Image.frombytes("L", size, bytes(out[:pixels]))


def to_wire(img: Image.Image, rotate: int, geometry: Geometry) -> Image.Image:
    """The landscape panel turned a quarter and centred on a geometry-sized panel."""
    turned = img.transpose(ROTATIONS[rotate])
    size = (geometry.width, geometry.height)
    if turned.size == size:
        return turned
    panel = Image.new(img.mode, size, 0)
    panel.paste(turned, ((size[0] - turned.width) // 2, (size[1] - turned.height) // 2))
    return panel


def from_wire(panel: Image.Image, rotate: int) -> Image.Image:
    """The inverse of `to_wire`: the landscape card panel."""
    w, h = CARD_SIZE[1], CARD_SIZE[0]  # the turned card
    left, top = (panel.width - w) // 2, (panel.height - h) // 2
    turned = panel.crop((left, top, left + w, top + h))
    return turned.transpose(ROTATIONS[270 if rotate == 90 else 90])


def _mono_k(card: CardPanels, rotate: int, geometry: Geometry) -> Image.Image:
    """K with the photo dithered in, for ribbons without colour panels, turned for the wire.
    The photo is the card's own colour (`shared["y"].box`: none on a KIA under 5); a card
    that names no shared parts is taken to have the E-KTP's photo box."""
    k = card.k.copy()
    photo = card.shared["y"].box if "y" in card.shared else PHOTO_BOX
    if photo.width > 0 and photo.height > 0:
        black = Image.new("L", (photo.width, photo.height), 0)
        grey = Image.merge("CMYK", (*(getattr(card, n).crop(photo) for n in "cmy"), black)
                           ).convert("L")
        ink = grey.point(lambda v: 255 - v).convert("1")  # Floyd-Steinberg; set = ink
        k.paste(255, photo[:2], ink)
    return to_wire(k, rotate, geometry)


def _encode_1bit(panel: str, img: Image.Image, geometry: Geometry) -> PanelData:
    raw = pack_1bit(img)
    packed = compress_1bit(raw, geometry)
    if len(packed) < len(raw):
        return PanelData(panel, MONO_CODE, packed, True)
    return PanelData(panel, MONO_CODE, raw, False)


_PACKED_BASES: dict[tuple[int, int, int], tuple[Image.Image, bytes, Image.Image]] = {}


def _packed_base(img: Image.Image, bits: int, rotate: int) -> tuple[bytes, Image.Image]:
    """A shared base panel, packed once (keyed by identity: bases are never modified), and
    the same bytes as a mode "L" image one wire line per row, to splice patches into."""
    key = (id(img), bits, rotate)
    hit = _PACKED_BASES.get(key)
    if hit is None or hit[0] is not img:
        if len(_PACKED_BASES) >= 32:
            _PACKED_BASES.clear()
        packed = pack_colour(to_wire(img, rotate, GEOMETRY), bits)
        grid = Image.frombytes("L", (GEOMETRY.width * bits // 8, GEOMETRY.height), packed)
        hit = _PACKED_BASES[key] = (img, packed, grid)
    return hit[1], hit[2]


def _patch_area(changed: Box, rotate: int, bits: int) -> tuple[Box, int, int]:
    """The card area to pack again for `changed`, its first wire line and its first byte
    in each wire line. The area is `changed` with its rows widened so that on the wire it
    starts and ends on a byte boundary (6 bits: 4 pixels make 3 bytes; 5 and 7: 8 pixels)."""
    height, group = CARD_SIZE[1], 8 // math.gcd(bits, 8)
    # rotate 90: wire pixel p is card row height - 1 - p; rotate 270: card row p
    low, high = ((height - changed.bottom, height - changed.top) if rotate == 90
                 else (changed.top, changed.bottom))
    low, high = low - low % group, -(-high // group) * group
    top, bottom = (height - high, height - low) if rotate == 90 else (low, high)
    # rotate 90: wire line n is card column n; rotate 270: column CARD_SIZE[0] - 1 - n
    first = changed.left if rotate == 90 else CARD_SIZE[0] - changed.right
    return changed._replace(top=top, bottom=bottom), first, low * bits // 8


def _pack_colour_panel(card: CardPanels, name: str, bits: int, rotate: int,
                       geometry: Geometry) -> bytes:
    """pack_colour(to_wire(panel)): the packed shared base with only the card's own box
    packed again and spliced in (each wire line crossing it keeps its base bytes around it)."""
    shared = card.shared.get(name)
    if shared is None or geometry != GEOMETRY:
        return pack_colour(to_wire(getattr(card, name), rotate, geometry), bits)
    packed, grid = _packed_base(shared.base, bits, rotate)
    if shared.box.width <= 0 or shared.box.height <= 0:
        return packed
    area, first, offset = _patch_area(shared.box, rotate, bits)
    patch = pack_colour(getattr(card, name).crop(area).transpose(ROTATIONS[rotate]), bits)
    line, lines = grid.width, area.width
    strip = grid.crop((0, first, line, first + lines))
    strip.paste(Image.frombytes("L", (len(patch) // lines, lines), patch), (offset, 0))
    return b"".join((packed[:first * line], strip.tobytes(), packed[(first + lines) * line:]))


_BASE_LINES: dict[tuple[int, int], tuple[Image.Image, tuple[bytes, ...]]] = {}


def _line_records(wire: Image.Image) -> tuple[bytes, ...]:
    """The `Dbc` record of each line of the wire-oriented 1-bit `wire`."""
    raw, line = pack_1bit(wire), Geometry(wire.width, 1)
    width = line.line_bytes
    return tuple(compress_1bit(raw[i:i + width], line) for i in range(0, len(raw), width))


def _base_lines(base: Image.Image, rotate: int) -> tuple[bytes, ...]:
    """A shared K base's `Dbc` records line by line, made once (keyed by identity)."""
    key = (id(base), rotate)
    hit = _BASE_LINES.get(key)
    if hit is None or hit[0] is not base:
        if len(_BASE_LINES) >= 8:  # each holds its base, a full K panel
            _BASE_LINES.clear()
        hit = _BASE_LINES[key] = (base, _line_records(to_wire(base, rotate, GEOMETRY)))
    return hit[1]


def _encode_shared_1bit(name: str, panel: Image.Image, shared: Shared, rotate: int
                        ) -> PanelData:
    """`_encode_1bit` of a panel that equals its shared base outside `shared.box`: the
    wire lines (card columns) outside the box are the base's records, made once; only
    the columns of the box are turned and compressed."""
    box, width = shared.box, CARD_SIZE[0]
    left, right = (box.left, box.right) if box.width > 0 else (0, 0)
    first = left if rotate == 90 else width - right  # wire line n: card column n (or W-1-n)
    lines = _base_lines(shared.base, rotate)
    own = b""
    if right > left:
        part = panel.crop((left, 0, right, CARD_SIZE[1])).transpose(ROTATIONS[rotate])
        own = compress_1bit(pack_1bit(part), Geometry(part.width, part.height))
    packed = b"".join((*lines[:first], own, *lines[first + right - left:]))
    if len(packed) < GEOMETRY.panel_bytes(1):
        return PanelData(name, MONO_CODE, packed, True)
    return PanelData(name, MONO_CODE, pack_1bit(to_wire(panel, rotate, GEOMETRY)), False)


def _encode_1bit_panel(card: CardPanels, name: str, rotate: int, geometry: Geometry
                       ) -> PanelData:
    """The 1-bit panel `name` (k or o), from its shared base's records where it has one."""
    shared = card.shared.get(name)
    if shared is not None and geometry == GEOMETRY:
        return _encode_shared_1bit(name, getattr(card, name), shared, rotate)
    return _encode_1bit(name, to_wire(getattr(card, name), rotate, geometry), geometry)


@cache
def _standard_overlay(rotate: int, geometry: Geometry) -> PanelData:
    """The overlay every card shares, encoded once per setting."""
    return _encode_1bit("o", to_wire(overlay(), rotate, geometry), geometry)


def encode_card(card: CardPanels, *, ribbon: str = "ymcko", colour_bits: int = 6,
                rotate: int = 90, geometry: Geometry = GEOMETRY) -> list[PanelData]:
    """The card's panels in the printer's order for `ribbon`, ready for `Db`/`Dbc`."""
    if ribbon not in RIBBONS:
        raise ValueError(f"ribbon must be one of {', '.join(RIBBONS)}, not {ribbon!r}")
    if colour_bits not in COLOUR_CODES:
        raise ValueError(f"colour_bits must be one of {sorted(COLOUR_CODES)}")
    if rotate not in ROTATIONS:
        raise ValueError(f"rotate must be 90 or 270, not {rotate!r}")
    out = []
    for name in ribbon:
        if name == "o" and card.o is overlay():
            out.append(_standard_overlay(rotate, geometry))
        elif name == "k" and "y" not in ribbon:
            out.append(_encode_1bit(name, _mono_k(card, rotate, geometry), geometry))
        elif name in "ko":
            out.append(_encode_1bit_panel(card, name, rotate, geometry))
        else:
            data = _pack_colour_panel(card, name, colour_bits, rotate, geometry)
            out.append(PanelData(name, COLOUR_CODES[colour_bits], data, False))
    return out


def decode_card(panels: list[PanelData], *, rotate: int = 90,
                geometry: Geometry = GEOMETRY) -> CardPanels:
    """The landscape panels the printer will print; absent panels are blank."""
    images = {name: Image.new("L" if name in "ymc" else "1", CARD_SIZE, 0) for name in "ymcko"}
    for p in panels:
        data = decompress_1bit(p.data, geometry) if p.compressed else p.data
        bits = bits_per_pixel(p.code)
        wire = unpack_1bit(data, geometry) if bits == 1 else unpack_colour(data, bits, geometry)
        images[p.panel] = from_wire(wire, rotate)
    return CardPanels(**images)


def render_preview(record: Record | KiaRecord, *, ribbon: str = "ymcko", colour_bits: int = 6,
                   rotate: int = 90, geometry: Geometry = GEOMETRY) -> Image.Image:
    """RGB picture of the card composited from the encoded panels the printer gets."""
    panels = encode_card(render_card(record), ribbon=ribbon, colour_bits=colour_bits,
                         rotate=rotate, geometry=geometry)
    return decode_card(panels, rotate=rotate, geometry=geometry).preview()
