"""Card rendering: panels, layout fit and overlap, determinism, bad images."""

from __future__ import annotations

import hashlib
import io
import struct
import subprocess
import sys
import zlib
from itertools import combinations
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from kiosk.card.render import (
    CARD_SIZE,
    IMAGE_BOXES,
    MAX_CHARS,
    MIN_FONT,
    OVERLAY_MARGIN,
    PHOTO_BOX,
    SIGNATURE_BOX,
    Box,
    RenderError,
    draw_placed,
    layout,
    render_card,
)
from kiosk.contract.record import Record

FIELDS = {
    "provinsi": "JAWA BARAT", "kabupaten": "MAJALENGKA", "nama": "SITI NURHALIZA CONTOH",
    "tempat_lahir": "MAJALENGKA", "tanggal_lahir": "1990-08-17", "jenis_kelamin": "PEREMPUAN",
    "gol_darah": "O", "alamat": "JL. KH ABDUL HALIM NO. 45", "rt_rw": "002/005",
    "kel_desa": "MAJALENGKA KULON", "kecamatan": "MAJALENGKA", "agama": "ISLAM",
    "status_perkawinan": "KAWIN", "pekerjaan": "KARYAWAN SWASTA", "kewarganegaraan": "WNI",
    "berlaku_hingga": "SEUMUR HIDUP", "tempat_terbit": "MAJALENGKA",
    "tanggal_terbit": "2024-03-12",
}
LONGEST = {  # the longest realistic values
    "nama": "RADEN AYU SITI NURHALIZA KUSUMAWARDHANI PERMATASARI CONTOH", "alamat":
    "JL. KOLONEL SOEGIONO GG. MELATI II NO. 123 BLOK C-12 PERUMAHAN GRIYA ASRI SEJAHTERA "
    "KAV. 7 DUSUN CONTOH WETAN",
    "tempat_lahir": "KOTA ADMINISTRASI JAKARTA SELATAN", "kel_desa": "SUKAMAJU KIDUL WETAN",
    "pekerjaan": "KARYAWAN BADAN USAHA MILIK NEGARA", "status_perkawinan": "CERAI MATI",
    "provinsi": "KEPULAUAN BANGKA BELITUNG", "kabupaten": "KOTA ADMINISTRASI JAKARTA SELATAN",
    "tempat_terbit": "KOTA ADMINISTRASI JAKARTA PUSAT", "kecamatan": "KEBAYORAN BARU",
}
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,'/()-"
DATES = ("tanggal_lahir", "tanggal_terbit")


def photo_jpeg(size: tuple[int, int] = (300, 400), colour=(200, 20, 40)) -> bytes:
    img = Image.new("RGB", size, colour)
    ImageDraw.Draw(img).ellipse((size[0] // 4, size[1] // 5, size[0] * 3 // 4, size[1] * 2 // 3),
                                fill=(220, 170, 130))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90)
    return out.getvalue()


def signature_png() -> bytes:
    img = Image.new("RGBA", (400, 150), (0, 0, 0, 0))  # transparent, black strokes
    ImageDraw.Draw(img).line([(20, 100), (120, 30), (220, 120), (380, 40)], fill="black", width=6)
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


PHOTO, SIGNATURE = photo_jpeg(), signature_png()


def make_record(photo: bytes = PHOTO, signature: bytes = SIGNATURE, **fields: str) -> Record:
    return Record("r-1", "3210075708900001", {**FIELDS, **fields}, photo, signature)


def ink_box(placed) -> tuple[int, int, int, int] | None:
    canvas = Image.new("1", CARD_SIZE, 0)
    draw_placed(canvas, placed)
    return canvas.getbbox()


def assert_fits(record: Record) -> list:
    items = layout(record)
    card = Box(0, 0, *CARD_SIZE)
    boxes = [(p.field, p.box) for p in items] + list(IMAGE_BOXES.items())
    for name, box in boxes:
        assert card.contains(box), name
    for (a, box_a), (b, box_b) in combinations(boxes, 2):
        assert not box_a.overlaps(box_b), (a, b)
    for p in items:
        assert p.font_size >= MIN_FONT
        drawn = ink_box(p)
        assert drawn is None or p.box.contains(drawn), (p.field, p.box, drawn, p.lines)
    return items


def value(items: list, field: str):
    return next(p for p in items if p.field == field)


def test_panels_have_the_card_geometry_and_modes():
    card = render_card(make_record())
    for name, mode in zip("ymcko", "LLL11", strict=True):
        img = getattr(card, name)
        assert (img.size, img.mode) == (CARD_SIZE, mode), name
    for name in "ko":  # Pillow's own 1-bit values only: 0 and 255
        histogram = getattr(card, name).histogram()
        assert sum(histogram) == histogram[0] + histogram[255], name


def test_text_and_signature_are_on_k_photo_and_background_on_colour():
    card = render_card(make_record())
    assert card.k.getbbox() is not None
    assert card.k.crop(PHOTO_BOX).getbbox() is None  # no text over the photo
    assert card.k.crop(SIGNATURE_BOX).getbbox() is not None
    centre = (PHOTO_BOX.left + 10, PHOTO_BOX.top + 10)  # red photo background: M and Y ink
    assert card.m.getpixel(centre) > 200 and card.y.getpixel(centre) > 170
    assert card.c.getpixel(centre) < 80
    assert 0 < card.c.getpixel((5, 5)) < 80  # a light blue background, not bare card


def test_overlay_covers_the_card_but_its_margin():  # no margin by default
    o = render_card(make_record()).o
    m = OVERLAY_MARGIN
    assert o.getbbox() == (m, m, CARD_SIZE[0] - m, CARD_SIZE[1] - m)
    assert o.histogram()[255] == (CARD_SIZE[0] - 2 * m) * (CARD_SIZE[1] - 2 * m)


def test_preview_shows_black_text_on_a_light_card():
    card = render_card(make_record())
    rgb = card.preview()
    assert (rgb.mode, rgb.size) == ("RGB", CARD_SIZE)
    x, y = next((x, y) for y in range(CARD_SIZE[1]) for x in range(CARD_SIZE[0])
                if card.k.getpixel((x, y)))
    assert rgb.getpixel((x, y)) == (0, 0, 0)
    assert min(rgb.getpixel((3, CARD_SIZE[1] - 3))) > 200


def test_layout_prints_every_field_formatted():
    items = layout(make_record())
    text = {p.field: " ".join(p.lines) for p in items}
    assert text["provinsi"] == "PROVINSI JAWA BARAT"
    assert text["kabupaten"] == "KABUPATEN MAJALENGKA"
    assert text["nik"] == "3210075708900001"
    assert text["ttl"] == "MAJALENGKA, 17-08-1990"
    assert text["tanggal_terbit"] == "12-03-2024"
    assert text["label:status_perkawinan"] == "Status Perkawinan"
    assert text["gol_darah"] == "O"
    assert {p.field for p in items} >= {
        "nama", "jenis_kelamin", "alamat", "rt_rw", "kel_desa", "kecamatan", "agama",
        "status_perkawinan", "pekerjaan", "kewarganegaraan", "berlaku_hingga", "tempat_terbit"}


def test_berlaku_hingga_date_is_day_first():
    items = layout(make_record(berlaku_hingga="2029-01-31"))
    assert value(items, "berlaku_hingga").lines == ("31-01-2029",)


def test_typical_record_fits_at_full_size():
    items = assert_fits(make_record())
    assert value(items, "nama").font_size == value(items, "agama").font_size
    assert len(value(items, "nama").lines) == 1


def test_longest_realistic_values_wrap_or_shrink_without_loss():
    items = assert_fits(make_record(**LONGEST))
    for key in ("nama", "alamat", "pekerjaan", "kel_desa"):
        assert " ".join(value(items, key).lines) == LONGEST[key]
    assert len(value(items, "nama").lines) == 2
    assert len(value(items, "alamat").lines) >= 2


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries({
    key: st.text(ALPHABET, min_size=1, max_size=limit).filter(str.strip)
    for key, limit in MAX_CHARS.items()}))
def test_any_text_up_to_max_chars_fits_its_box(texts):
    items = assert_fits(make_record(**texts))
    for key in ("nama", "alamat", "pekerjaan", "kewarganegaraan"):
        printed = "".join(value(items, key).lines).replace(" ", "")
        assert printed == texts[key].replace(" ", "")  # nothing cut off


def test_text_that_cannot_fit_is_refused():
    with pytest.raises(RenderError, match="nama"):
        render_card(make_record(nama="W" * 200))


@pytest.mark.parametrize(("key", "bad"), [("tanggal_lahir", "17-08-1990"),
                                          ("tanggal_terbit", "2024-02-30")])
def test_bad_dates_are_refused(key, bad):
    with pytest.raises(RenderError, match=key):
        render_card(make_record(**{key: bad}))


def test_missing_field_is_refused():
    record = make_record()
    fields = dict(record.fields)
    del fields["agama"]
    with pytest.raises(RenderError, match="agama"):
        render_card(Record("r", record.nik, fields, PHOTO, SIGNATURE))


def test_same_record_gives_byte_identical_panels():
    first, second = render_card(make_record()), render_card(make_record())
    for name in "ymcko":
        assert getattr(first, name).tobytes() == getattr(second, name).tobytes()


def test_panels_are_identical_in_a_fresh_process(tmp_path: Path):
    """No cache or process state changes the output."""
    script = (
        "import hashlib, sys\n"
        "from tests.card.test_render import make_record, LONGEST\n"
        "from kiosk.card.render import render_card\n"
        "card = render_card(make_record(**LONGEST))\n"
        "print(hashlib.sha256(b''.join(getattr(card, p).tobytes() for p in 'ymcko'))"
        ".hexdigest())\n")
    here = render_card(make_record(**LONGEST))
    digest = hashlib.sha256(b"".join(getattr(here, p).tobytes() for p in "ymcko")).hexdigest()
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).parents[2], timeout=60)
    assert out.stdout.strip() == digest


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but holds almost no data (a bomb)."""
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height,
                                                                  8, 0, 0, 0, 0))
            + png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + png_chunk(b"IEND", b""))


BAD_PHOTOS = {
    "garbage": b"not an image at all",
    "png instead of jpeg": signature_png(),
    "truncated": PHOTO[: len(PHOTO) // 2],
    "too wide": photo_jpeg((4100, 16)),
    "empty": b"",
}
BAD_SIGNATURES = {
    "garbage": b"\x89PNG\r\n\x1a\nnonsense",
    "truncated": png_claiming(300, 100),
    "jpeg instead of png": PHOTO,
    "bomb header": png_claiming(100_000, 100_000),
    "bomb warning": png_claiming(9500, 9500),  # over Pillow's warning limit
    "too tall": png_claiming(16, 4001),
}


@pytest.mark.parametrize("data", BAD_PHOTOS.values(), ids=BAD_PHOTOS.keys())
def test_bad_photo_raises_render_error(data):
    with pytest.raises(RenderError, match="photo"):
        render_card(make_record(photo=data))


def test_oversized_image_error_says_why():
    with pytest.raises(RenderError, match=r"4100x16 px, over 4000"):
        render_card(make_record(photo=BAD_PHOTOS["too wide"]))
    with pytest.raises(RenderError, match=r"16x4001 px, over 4000"):
        render_card(make_record(signature=BAD_SIGNATURES["too tall"]))


@pytest.mark.parametrize("data", BAD_SIGNATURES.values(), ids=BAD_SIGNATURES.keys())
def test_bad_signature_raises_render_error(data):
    with pytest.raises(RenderError, match="signature"):
        render_card(make_record(signature=data))


def test_render_error_is_a_value_error():
    assert issubclass(RenderError, ValueError)


def test_opaque_greyscale_signature_and_cmyk_photo_are_accepted():
    sig = Image.new("L", (300, 100), 255)
    ImageDraw.Draw(sig).line([(10, 50), (290, 60)], fill=0, width=5)
    sig_png, photo = io.BytesIO(), io.BytesIO()
    sig.save(sig_png, "PNG")
    Image.new("CMYK", (120, 160), (0, 200, 200, 0)).save(photo, "JPEG")
    card = render_card(make_record(photo=photo.getvalue(), signature=sig_png.getvalue()))
    assert card.k.crop(SIGNATURE_BOX).getbbox() is not None


def png_bytes(img: Image.Image, **params) -> bytes:
    out = io.BytesIO()
    img.save(out, "PNG", **params)
    return out.getvalue()


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_opaque_signature_inks_k_as_its_rgba_form_does(mode):
    """Opaque greyscale and RGB signatures skip the RGBA round trip, with the same ink."""
    sig = Image.new(mode, (400, 150), "white")
    ImageDraw.Draw(sig).line([(20, 100), (120, 30), (220, 120), (380, 40)], fill="grey", width=7)
    direct = render_card(make_record(signature=png_bytes(sig))).k
    via_rgba = render_card(make_record(signature=png_bytes(sig.convert("RGBA")))).k
    assert direct.tobytes() == via_rgba.tobytes()


def test_greyscale_signature_with_a_transparent_key_keeps_it_transparent():
    sig = Image.new("L", (400, 150), 7)  # 7 is the transparent key: black if it were opaque
    ImageDraw.Draw(sig).line([(20, 100), (380, 40)], fill=0, width=7)
    keyed = render_card(make_record(signature=png_bytes(sig, transparency=7))).k
    assert keyed.tobytes() == render_card(make_record(signature=png_bytes(
        Image.open(io.BytesIO(png_bytes(sig, transparency=7))).convert("RGBA")))).k.tobytes()
    assert keyed.crop(SIGNATURE_BOX).getbbox() != (render_card(
        make_record(signature=png_bytes(sig))).k.crop(SIGNATURE_BOX).getbbox())


def test_k_from_the_cached_labels_equals_k_drawn_item_by_item():
    """Labels come from a K drawn once per row layout: records that shift the rows
    (a two-row Nama and Alamat), one after another, still get their own labels."""
    for record in (make_record(), make_record(**LONGEST), make_record(nama="SITI " * 9),
                   make_record()):
        expected = Image.new("1", CARD_SIZE, 0)
        for p in layout(record):
            draw_placed(expected, p)
        k = render_card(record).k.copy()
        for img in (expected, k):
            img.paste(0, SIGNATURE_BOX)
        assert k.tobytes() == expected.tobytes()


def test_panels_are_plain_images_equal_to_their_shared_base_outside_its_box():
    """A driver may take what lies outside `shared[name].box` from the shared base
    (packed once): the record's own ink and photo must all lie inside the box, whatever
    the record (header changes, one- or two-row values, a J overhanging its origin)."""
    for record in (make_record(**LONGEST), make_record(), make_record(provinsi="ACEH"),
                   make_record(kabupaten="JAYAWIJAYA", nama="J " * 20)):
        card = render_card(record)
        assert set(card.shared) == set("ymck")
        for name, shared in card.shared.items():
            panel = getattr(card, name)
            assert type(panel) is Image.Image and panel.size == CARD_SIZE
            assert shared.base is not panel and shared.base.size == CARD_SIZE
            outside_a, outside_b = panel.copy(), shared.base.copy()
            for img in (outside_a, outside_b):
                img.paste(0, shared.box)
            assert outside_a.tobytes() == outside_b.tobytes(), name
        assert card.shared["y"].box == PHOTO_BOX
