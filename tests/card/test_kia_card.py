"""The KIA card (kiosk/card/kia.py): both versions, the layout's fit, the panels, the
encoding for the Evolis printer, and `kiosk render` of either record."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
from itertools import combinations
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from kiosk.card import kia as kia_card
from kiosk.card.art import overlay
from kiosk.card.kia import MAX_CHARS, PHOTO_BOX, image_boxes, layout, signature_box
from kiosk.card.panels import CARD_SIZE, Box, RenderError
from kiosk.card.render import render_card
from kiosk.card.text import MIN_FONT, draw_placed
from kiosk.contract.documents import parse_job
from kiosk.contract.kia import KiaRecord, Pejabat
from kiosk.devices.printer.evolis.panels import decode_card, encode_card
from kiosk.sim import samples

ROOT = Path(__file__).resolve().parents[2]
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,'/()-"
WITH_PHOTO, WITHOUT_PHOTO = 1, 3  # sample numbers: a child of 5, a child of 1


def kia(index: int = WITH_PHOTO, **fields: str) -> KiaRecord:
    obj = samples.make_kia_record(index)
    record = parse_job(json.dumps(obj).encode(), documents=("kia",))
    assert isinstance(record, KiaRecord)
    return dataclasses.replace(record, fields={**record.fields, **fields}) if fields else record


def ink_box(placed) -> tuple[int, int, int, int] | None:
    canvas = Image.new("1", CARD_SIZE, 0)
    draw_placed(canvas, placed)
    return canvas.getbbox()


def assert_fits(record: KiaRecord) -> list:
    items = layout(record)
    card = Box(0, 0, *CARD_SIZE)
    boxes = [(p.field, p.box) for p in items] + list(
        image_boxes(record.photo_jpeg is not None).items())
    for name, box in boxes:
        assert card.contains(box), name
    for (a, box_a), (b, box_b) in combinations(boxes, 2):
        assert not box_a.overlaps(box_b), (a, b)
    for p in items:
        assert p.font_size >= MIN_FONT
        drawn = ink_box(p)
        assert drawn is None or p.box.contains(drawn), (p.field, p.box, drawn, p.lines)
    return items


def text(items: list, field: str) -> str:
    return " ".join(next(p for p in items if p.field == field).lines)


def test_the_samples_give_both_versions() -> None:
    assert kia(WITH_PHOTO).photo_jpeg is not None
    assert kia(WITHOUT_PHOTO).photo_jpeg is None


@pytest.mark.parametrize("index", [WITH_PHOTO, WITHOUT_PHOTO])
def test_layout_prints_every_field_of_the_regulation(index: int) -> None:
    record = kia(index)
    items = assert_fits(record)
    f = record.fields
    texts = {p.field: " ".join(p.lines) for p in items}
    assert texts["title"] == "KARTU IDENTITAS ANAK"
    assert texts["provinsi"] == f"PROVINSI {f['provinsi']}"
    assert texts["kabupaten"] == f"KABUPATEN {f['kabupaten']}"
    assert texts["nik"] == record.nik
    born = f["tanggal_lahir"]
    assert texts["ttl"] == f"{f['tempat_lahir']}, {born[8:]}-{born[5:7]}-{born[:4]}"
    for key in ("nama", "jenis_kelamin", "gol_darah", "no_kk", "nama_kepala_keluarga",
                "no_akta_kelahiran", "agama", "kewarganegaraan", "alamat", "rt_rw",
                "kel_desa", "kecamatan", "tempat_terbit"):
        assert texts[key] == f[key], key
    until = f["berlaku_hingga"]
    assert texts["berlaku_hingga"] == f"{until[8:]}-{until[5:7]}-{until[:4]}"
    assert texts["signatory"] == "KEPALA DINAS DUKCAPIL"
    assert texts["pejabat.nama"] == record.pejabat.nama
    assert texts["pejabat.nip"] == f"NIP. {record.pejabat.nip}"


LONGEST = {
    "nama": "RADEN AYU SITI NURHALIZA KUSUMAWARDHANI PERMATASARI CONTOH",
    "alamat": "JL. KOLONEL SOEGIONO GG. MELATI II NO. 123 BLOK C-12 PERUMAHAN GRIYA ASRI",
    "tempat_lahir": "KOTA ADMINISTRASI JAKARTA SELATAN", "kel_desa": "SUKAMAJU KIDUL WETAN",
    "nama_kepala_keluarga": "RADEN MAS HARYO KUSUMANEGARA CONTOH",
    "provinsi": "KEPULAUAN BANGKA BELITUNG", "kabupaten": "KOTA ADMINISTRASI JAKARTA SELATAN",
    "tempat_terbit": "KOTA ADMINISTRASI JAKARTA PUSAT", "kecamatan": "KEBAYORAN BARU",
}


@pytest.mark.parametrize("index", [WITH_PHOTO, WITHOUT_PHOTO])
def test_longest_realistic_values_wrap_or_shrink_without_loss(index: int) -> None:
    items = assert_fits(kia(index, **LONGEST))
    for key in ("nama", "alamat", "kel_desa", "tempat_terbit"):
        assert text(items, key) == LONGEST[key]


FIELD_LIMITS = {k: v for k, v in MAX_CHARS.items() if k not in (
    "jenis_kelamin", "gol_darah", "pejabat.nama")}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.fixed_dictionaries({
    key: st.text(ALPHABET, min_size=1, max_size=limit).filter(str.strip)
    for key, limit in FIELD_LIMITS.items()}),
    pejabat=st.text(ALPHABET, min_size=1, max_size=MAX_CHARS["pejabat.nama"]).filter(
        str.strip),
    photo=st.booleans())
def test_any_text_up_to_max_chars_fits_its_box(texts: dict, pejabat: str, photo: bool) -> None:
    record = kia(WITH_PHOTO if photo else WITHOUT_PHOTO, **texts)
    record = dataclasses.replace(record, pejabat=dataclasses.replace(record.pejabat,
                                                                     nama=pejabat))
    items = assert_fits(record)
    for key in ("nama", "alamat", "nama_kepala_keluarga", "tempat_terbit"):
        assert text(items, key).replace(" ", "") == texts[key].replace(" ", "")


@pytest.mark.parametrize("worst", ["W", "M", "1"])
def test_the_widest_letters_at_every_limit_fit(worst: str) -> None:
    for photo in (WITH_PHOTO, WITHOUT_PHOTO):
        record = kia(photo, **{k: worst * n for k, n in FIELD_LIMITS.items()})
        assert_fits(dataclasses.replace(record, pejabat=Pejabat(
            worst * MAX_CHARS["pejabat.nama"], record.pejabat.nip,
            record.pejabat.signature_png)))


def test_the_card_with_a_photo_carries_it_and_the_card_without_shows_the_background() -> None:
    with_photo, without = render_card(kia(WITH_PHOTO)), render_card(kia(WITHOUT_PHOTO))
    for card in (with_photo, without):
        for name, mode in zip("ymcko", "LLL11", strict=True):
            img = getattr(card, name)
            assert (img.size, img.mode) == (CARD_SIZE, mode), name
        assert card.o is overlay()
    assert with_photo.k.crop(PHOTO_BOX).getbbox() is None  # no text over the photo
    centre = (PHOTO_BOX.left + 10, PHOTO_BOX.top + 10)  # the sample's red or blue backdrop
    assert max(with_photo.m.getpixel(centre), with_photo.c.getpixel(centre)) > 150
    assert max(without.m.getpixel(centre), without.c.getpixel(centre)) < 60
    assert without.shared["y"].box.width == 0  # nothing of its own on Y/M/C
    assert without.y is without.shared["y"].base


@pytest.mark.parametrize("photo", [True, False])
def test_the_signature_is_inked_in_its_box(photo: bool) -> None:
    card = render_card(kia(WITH_PHOTO if photo else WITHOUT_PHOTO))
    assert card.k.crop(signature_box(photo)).getbbox() is not None


def test_the_kia_is_told_apart_from_the_ektp_by_its_background() -> None:
    kia_card_ = render_card(kia()).preview()
    ektp = render_card(parse_job(json.dumps(samples.make_record(1)).encode())).preview()
    red_kia, _, blue_kia = kia_card_.getpixel((10, 630))
    red_ektp, _, blue_ektp = ektp.getpixel((10, 630))
    assert red_kia > blue_kia and blue_ektp > red_ektp


@pytest.mark.parametrize("rotate", [90, 270])
@pytest.mark.parametrize("index", [WITH_PHOTO, WITHOUT_PHOTO])
def test_encoded_for_the_evolis_printer_like_the_ektp(index: int, rotate: int) -> None:
    card = render_card(kia(index))
    panels = encode_card(card, rotate=rotate)
    assert [p.panel for p in panels] == list("ymcko")
    back = decode_card(panels, rotate=rotate)
    assert back.k.tobytes() == card.k.tobytes()
    assert encode_card(dataclasses.replace(card, shared={}), rotate=rotate) == panels
    (mono,) = encode_card(card, ribbon="k", rotate=rotate)
    dithered = decode_card([mono], rotate=rotate).k
    assert (dithered.tobytes() != card.k.tobytes()) == (index == WITH_PHOTO)  # photo only
    if index == WITH_PHOTO:
        assert dithered.crop(PHOTO_BOX).getbbox() is not None


def test_same_record_gives_byte_identical_panels_in_a_fresh_process() -> None:
    script = ("import hashlib\nfrom tests.card.test_kia_card import kia\n"
              "from kiosk.card.render import render_card\n"
              "card = render_card(kia())\n"
              "print(hashlib.sha256(b''.join(getattr(card, p).tobytes() for p in 'ymcko'))"
              ".hexdigest())\n")
    here = render_card(kia())
    digest = hashlib.sha256(b"".join(getattr(here, p).tobytes() for p in "ymcko")).hexdigest()
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, cwd=ROOT, timeout=60)
    assert out.stdout.strip() == digest


def test_bad_images_raise_render_error_naming_them() -> None:
    with pytest.raises(RenderError, match="photo"):
        render_card(dataclasses.replace(kia(), photo_jpeg=b"not a jpeg"))
    bad = dataclasses.replace(kia().pejabat, signature_png=b"\x89PNG\r\n\x1a\nnonsense")
    with pytest.raises(RenderError, match="pejabat signature"):
        render_card(dataclasses.replace(kia(), pejabat=bad))


def test_text_that_cannot_fit_is_refused() -> None:
    with pytest.raises(RenderError, match="nama"):
        kia_card.layout(kia(nama="W" * 300))


@pytest.mark.parametrize("record", [samples.make_record(1), samples.make_kia_record(1),
                                    samples.make_kia_record(3)],
                         ids=["ektp", "kia", "kia-without-photo"])
def test_kiosk_render_takes_either_record(tmp_path: Path, record: dict) -> None:
    source, output = tmp_path / "record.json", tmp_path / "card.png"
    source.write_text(json.dumps(record))
    done = subprocess.run([sys.executable, "-m", "kiosk.cli", "render", str(source), "-o",
                           str(output)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    with Image.open(output) as png:
        assert png.size == CARD_SIZE


def test_kiosk_render_names_the_problem_of_a_bad_record(tmp_path: Path) -> None:
    record = samples.make_kia_record(1)
    record["fields"]["no_kk"] = "123"
    source = tmp_path / "record.json"
    source.write_text(json.dumps(record))
    done = subprocess.run([sys.executable, "-m", "kiosk.cli", "render", str(source), "-o",
                           str(tmp_path / "card.png")], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert done.returncode != 0
    assert "invalid-field: fields.no_kk: not 16 digits" in done.stderr
