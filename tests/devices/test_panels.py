"""Panel wire encoding: sizes, bit packing and polarity, Dbc choice, rotation, round trips."""

from __future__ import annotations

import dataclasses
import random

import pytest
from PIL import Image

from kiosk.card.render import CARD_SIZE, PHOTO_BOX, CardImages, render_card
from kiosk.devices.printer.evolis.panels import (
    decode_card,
    encode_card,
    pack_1bit,
    pack_colour,
    render_preview,
    unpack_1bit,
    unpack_colour,
)
from kiosk.devices.printer.evolis.protocol import Geometry, compress_1bit, decompress_1bit
from tests.card.test_render import LONGEST, make_record, photo_jpeg

GEOMETRY = Geometry()
CODES = {5: 32, 6: 64, 7: 128}


@pytest.fixture(scope="module")
def card() -> CardImages:
    return render_card(make_record(**LONGEST))


def blank_card(**panels: Image.Image) -> CardImages:
    images = {name: Image.new("L" if name in "ymc" else "1", CARD_SIZE, 0) for name in "ymcko"}
    return CardImages(**{**images, **panels})


def quantized(level: int, bits: int) -> int:
    top = (1 << bits) - 1
    return (level * top + 127) // 255


def reference_pack(levels: list[int], bits: int) -> bytes:
    """Bit string by hand: each level quantized, MSB first, zero-padded to a byte."""
    stream = "".join(format(quantized(v, bits), f"0{bits}b") for v in levels)
    stream += "0" * (-len(stream) % 8)
    return bytes(int(stream[i:i + 8], 2) for i in range(0, len(stream), 8))


def grey(levels: list[int], width: int) -> Image.Image:
    img = Image.new("L", (width, len(levels) // width))
    img.putdata(levels)
    return img


# --- 1-bit packing ---------------------------------------------------------------------

def test_pack_1bit_is_msb_first_with_ink_as_one():
    img = Image.new("1", (16, 2), 0)
    img.putpixel((0, 0), 1)  # first pixel of the first line
    img.putpixel((15, 0), 1)  # last pixel of the first line
    img.putpixel((9, 1), 1)
    assert pack_1bit(img) == bytes([0x80, 0x01, 0x00, 0x40])


def test_pack_1bit_blank_is_zeros_and_full_is_ones():
    assert pack_1bit(Image.new("1", (648, 4), 0)) == bytes(81 * 4)
    assert pack_1bit(Image.new("1", (648, 4), 1)) == b"\xff" * (81 * 4)


def test_pack_1bit_refuses_other_modes():
    with pytest.raises(ValueError, match="mode"):
        pack_1bit(Image.new("L", (8, 1)))


def test_unpack_1bit_inverts_pack_1bit():
    data = random.Random(1).randbytes(GEOMETRY.panel_bytes(1))
    img = unpack_1bit(data, GEOMETRY)
    assert (img.mode, img.size) == ("1", (648, 1016))
    assert pack_1bit(img) == data
    assert img.getpixel((0, 0)) == (255 if data[0] & 0x80 else 0)
    with pytest.raises(ValueError, match="bytes"):
        unpack_1bit(data[:-1], GEOMETRY)


# --- colour packing --------------------------------------------------------------------

def test_six_bit_packs_four_pixels_in_three_bytes():
    assert pack_colour(grey([255, 0, 255, 0], 4), 6) == bytes([0xFC, 0x0F, 0xC0])
    assert pack_colour(grey([0, 0, 0, 255], 4), 6) == bytes([0x00, 0x00, 0x3F])


def test_five_and_seven_bit_known_values():
    assert pack_colour(grey([255] * 8, 8), 5) == b"\xff" * 5
    assert pack_colour(grey([255] + [0] * 7, 8), 7) == bytes([0xFE]) + bytes(6)
    assert pack_colour(grey([0] * 7 + [255], 8), 5) == bytes(4) + bytes([0x1F])


@pytest.mark.parametrize("bits", [5, 6, 7])
def test_colour_packing_matches_a_bit_string_by_hand(bits):
    rng = random.Random(bits)
    levels = [rng.randrange(256) for _ in range(13 * 7)]  # not a multiple of 8 pixels
    packed = pack_colour(grey(levels, 13), bits)
    assert packed == reference_pack(levels, bits)
    assert len(packed) == (len(levels) * bits + 7) // 8


@pytest.mark.parametrize("bits", [5, 6, 7])
def test_colour_panel_size_and_round_trip(bits):
    levels = [i % 256 for i in range(648 * 1016)]
    packed = pack_colour(grey(levels, 648), bits)
    assert len(packed) == GEOMETRY.panel_bytes(bits)
    back = unpack_colour(packed, bits, GEOMETRY).tobytes()
    top = (1 << bits) - 1
    for level in range(256):  # each level comes back as its quantized level, spread to 0-255
        assert back[level] == round(quantized(level, bits) * 255 / top)
    assert back[0] == 0 and back[255] == 255


def test_colour_packing_refuses_bad_depth_and_mode():
    with pytest.raises(ValueError, match="depth"):
        pack_colour(Image.new("L", (8, 1)), 8)
    with pytest.raises(ValueError, match="mode"):
        pack_colour(Image.new("1", (8, 1)), 6)


# --- encode_card -----------------------------------------------------------------------

@pytest.mark.parametrize("bits", [5, 6, 7])
def test_every_panel_has_the_wire_size_and_code(card, bits):
    panels = encode_card(card, colour_bits=bits)
    assert [p.panel for p in panels] == list("ymcko")
    for p in panels[:3]:
        assert (p.code, p.compressed, len(p.data)) == (CODES[bits], False,
                                                       GEOMETRY.panel_bytes(bits))
    for p in panels[3:]:
        assert p.code == 2
        raw = decompress_1bit(p.data, GEOMETRY) if p.compressed else p.data
        assert len(raw) == GEOMETRY.panel_bytes(1) == 82_296


@pytest.mark.parametrize(("ribbon", "order"), [("ymcko", "ymcko"), ("ymck", "ymck"),
                                                ("ko", "ko"), ("k", "k")])
def test_panels_come_in_ribbon_order(card, ribbon, order):
    assert "".join(p.panel for p in encode_card(card, ribbon=ribbon)) == order


@pytest.mark.parametrize("bad", [{"ribbon": "cmyk"}, {"colour_bits": 8}, {"rotate": 180}])
def test_bad_settings_are_refused(card, bad):
    with pytest.raises(ValueError):
        encode_card(card, **bad)


def test_dbc_is_chosen_only_when_smaller():
    noise = Image.frombytes("1", CARD_SIZE, random.Random(2).randbytes(CARD_SIZE[0] * 81))
    panels = {p.panel: p for p in encode_card(blank_card(k=noise), ribbon="ko")}
    k, o = panels["k"], panels["o"]
    assert not k.compressed and len(k.data) == GEOMETRY.panel_bytes(1)
    assert len(compress_1bit(k.data, GEOMETRY)) >= len(k.data)
    assert o.compressed and o.data == b"\x00" * 1016  # blank: one white-line record per line


def test_typical_k_is_sent_compressed(card):
    k = next(p for p in encode_card(card) if p.panel == "k")
    assert k.compressed and len(k.data) < GEOMETRY.panel_bytes(1)


def test_full_overlay_is_sent_as_black_line_records(card):
    o = next(p for p in encode_card(card) if p.panel == "o")
    assert o.compressed and o.data == b"\xff" * 1016


def test_rotate_90_sends_the_left_edge_first_from_the_bottom(card):
    k = Image.new("1", CARD_SIZE, 0)
    k.putpixel((0, 0), 1)  # card top-left corner
    k.putpixel((1, CARD_SIZE[1] - 1), 1)  # second column, bottom
    data = decompress_1bit(encode_card(blank_card(k=k), ribbon="k", rotate=90)[0].data)
    wire = unpack_1bit(data, GEOMETRY)
    assert wire.getbbox() == (0, 0, 648, 2)
    assert data[80] == 0x01  # line 0 ends at the card's top-left
    assert data[81] == 0x80  # line 1 starts at the card's bottom


def test_rotate_270_sends_the_right_edge_first_from_the_top():
    k = Image.new("1", CARD_SIZE, 0)
    k.putpixel((CARD_SIZE[0] - 1, 0), 1)  # card top-right corner
    k.putpixel((0, 0), 1)  # card top-left corner: last line, first pixel
    data = decompress_1bit(encode_card(blank_card(k=k), ribbon="k", rotate=270)[0].data)
    assert data[0] == 0x80
    assert data[1015 * 81] == 0x80
    assert sum(bin(b).count("1") for b in data) == 2


@pytest.mark.parametrize("rotate", [90, 270])
@pytest.mark.parametrize("geometry", [Geometry(), Geometry(656, 1032)])
def test_decoding_what_is_sent_gives_back_the_rendered_panels(card, rotate, geometry):
    panels = encode_card(card, rotate=rotate, geometry=geometry)
    back = decode_card(panels, rotate=rotate, geometry=geometry)
    assert back.k.tobytes() == card.k.tobytes()
    assert back.o.tobytes() == card.o.tobytes()
    assert back.c.size == CARD_SIZE
    table = [round(quantized(v, 6) * 255 / 63) for v in range(256)]
    assert back.c.tobytes() == card.c.point(table).tobytes()


@pytest.mark.parametrize("rotate", [90, 270])
@pytest.mark.parametrize("bits", [5, 6, 7])
def test_reusing_the_packed_shared_parts_changes_nothing(card, rotate, bits):
    plain = dataclasses.replace(card, shared={})
    assert set(card.shared) == set("ymck")
    assert (encode_card(card, rotate=rotate, colour_bits=bits)
            == encode_card(plain, rotate=rotate, colour_bits=bits))


def test_a_card_with_its_own_overlay_sends_that_overlay(card):
    custom = dataclasses.replace(card, o=Image.new("1", CARD_SIZE, 0))
    o = next(p for p in encode_card(custom) if p.panel == "o")
    assert o.data == b"\x00" * 1016


def test_black_only_ribbon_dithers_the_photo_into_k(card):
    (k,) = encode_card(card, ribbon="k")
    mono = decode_card([k]).k
    assert mono.crop(PHOTO_BOX).getbbox() is not None
    assert card.k.crop(PHOTO_BOX).getbbox() is None
    outside = Image.new("1", CARD_SIZE, 0)
    outside.paste(mono.crop((0, 0, PHOTO_BOX.left, CARD_SIZE[1])))
    reference = Image.new("1", CARD_SIZE, 0)
    reference.paste(card.k.crop((0, 0, PHOTO_BOX.left, CARD_SIZE[1])))
    assert outside.tobytes() == reference.tobytes()  # text untouched


def test_encoding_is_deterministic():
    first = encode_card(render_card(make_record(**LONGEST)))
    second = encode_card(render_card(make_record(**LONGEST)))
    assert first == second


def test_render_preview_is_composited_from_the_wire_panels(card):
    preview = render_preview(make_record(**LONGEST))
    assert (preview.mode, preview.size) == ("RGB", CARD_SIZE)
    direct = card.preview()
    ink = card.k.getbbox()
    assert ink is not None
    x, y = next((x, y) for y in range(ink[1], ink[3]) for x in range(ink[0], ink[2])
                if card.k.getpixel((x, y)))
    assert preview.getpixel((x, y)) == (0, 0, 0)
    diff = [abs(a - b) for a, b in zip(preview.tobytes(), direct.tobytes(), strict=True)]
    assert 0 < max(diff) <= 8  # only 6-bit quantization separates them


def test_cards_encoded_out_of_order_or_after_reading_their_panels_are_unchanged():
    """Encoding takes the shared parts from its caches and the rest from each card: two
    records rendered one after another, encoded in reverse order and again once every
    panel has been read, give the bytes of encoding each fresh card."""
    records = (make_record(**LONGEST), make_record(photo=photo_jpeg(colour=(20, 90, 200)),
                                                   nama="ASEP SUHERMAN"))
    fresh = [encode_card(render_card(r)) for r in records]
    cards = [render_card(r) for r in records]
    assert [encode_card(c) for c in reversed(cards)] == fresh[::-1]
    for c in cards:
        c.preview()
    assert [encode_card(c) for c in cards] == fresh
    plain = [CardImages(**{n: getattr(c, n) for n in "ymcko"}) for c in cards]
    assert [encode_card(c) for c in plain] == fresh
