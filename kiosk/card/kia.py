"""The KIA's front side (Kartu Identitas Anak, Permendagri 2/2016): its layout
(`layout()`: an inspectable list of placed text boxes) and its panels (`render_kia`).

Two versions: a child of 5 or older on the day of issue has a photo at the top of the
right-hand column and the signatory's block below it; a younger child has no photo and
the block sits in the middle of that column. The layout is the project's own, not an
official template (docs/card.md); text and signatures on K, the background and photo on
Y/M/C, as on the E-KTP.
"""

from __future__ import annotations

from kiosk.card.art import background
from kiosk.card.compose import compose
from kiosk.card.ektp import RowGrid, ddmmyyyy, field_text, labelled_rows
from kiosk.card.images import photo_ymc, signature_ink
from kiosk.card.panels import CARD_SIZE, Box, CardPanels
from kiosk.card.text import Placed, fit
from kiosk.contract.kia import FIELD_MAX_CHARS, PEJABAT_NAMA_MAX_CHARS, KiaRecord

# Text up to this many characters (letters, digits, space, .,'/()-) always fits its box.
MAX_CHARS = {**FIELD_MAX_CHARS, "pejabat.nama": PEJABAT_NAMA_MAX_CHARS}

TITLE = "KARTU IDENTITAS ANAK"
SIGNATORY = "KEPALA DINAS DUKCAPIL"  # the head of the civil registry office signs
# A warm paper tint, so a KIA blank is never mistaken for an E-KTP at a glance.
KIA_TINT = ((12, -2, -16), (238, 204, 188), (242, 214, 200), (240, 208, 196))

# Geometry of the front side (px at 300 dpi).
LABEL_X, COLON_X, VALUE_X, VALUE_RIGHT = 36, 296, 312, 756
ROWS_TOP, ROW = 166, 30
COLUMN_LEFT, COLUMN_RIGHT = 766, 996  # photo, place and date of issue, signatory
PHOTO_BOX = Box(791, 116, 971, 356)  # 3:4 portrait
BLOCK_TOP = {True: 362, False: 242}  # the signatory's block, with and without photo
LABEL_SIZE, VALUE_SIZE, TITLE_SIZE, HEADER_SIZE, NIK_SIZE, ISSUE_SIZE = 21, 21, 30, 22, 40, 20
_GOL = 560, 686, 700

# (label, value key, rows, label indent); jenis_kelamin's row also carries gol_darah.
GRID = RowGrid(ROWS_TOP, ROW, LABEL_X, COLON_X, VALUE_X, VALUE_RIGHT, LABEL_SIZE, VALUE_SIZE,
               *_GOL)

_ROWS: tuple[tuple[str, str, int, int], ...] = (
    ("Nama", "nama", 2, 0), ("Tempat/Tgl Lahir", "ttl", 1, 0),
    ("Jenis Kelamin", "jenis_kelamin", 1, 0), ("No. KK", "no_kk", 1, 0),
    ("Kepala Keluarga", "nama_kepala_keluarga", 1, 0),
    ("No. Akta Kelahiran", "no_akta_kelahiran", 1, 0), ("Agama", "agama", 1, 0),
    ("Kewarganegaraan", "kewarganegaraan", 1, 0), ("Alamat", "alamat", 2, 0),
    ("RT/RW", "rt_rw", 1, 24), ("Kel/Desa", "kel_desa", 1, 24),
    ("Kecamatan", "kecamatan", 1, 24), ("Berlaku Hingga", "berlaku_hingga", 1, 0),
)

# Items the same on every card of an office (labels, header, the signatory): drawn once
# on a shared K, keyed by the placed items themselves.
FIXED_ITEMS = ("label:", "colon:", "title", "provinsi", "kabupaten", "signatory", "pejabat.")


def signature_box(photo: bool) -> Box:
    top = BLOCK_TOP[photo] + 82
    return Box(COLUMN_LEFT + 10, top, COLUMN_RIGHT - 10, top + 90)


def image_boxes(photo: bool) -> dict[str, Box]:
    """The boxes the images fill: the signature's always, the photo's from 5 years old."""
    boxes = {"signature": signature_box(photo)}
    return {"photo": PHOTO_BOX, **boxes} if photo else boxes


def _column(record: KiaRecord) -> list[Placed]:
    """Place and date of issue, the signatory's office, name and NIP (the right column)."""
    top, f = BLOCK_TOP[record.photo_jpeg is not None], record.fields
    column = Box(COLUMN_LEFT, top, COLUMN_RIGHT, top + 30)
    sig = signature_box(record.photo_jpeg is not None)
    return [
        fit("tempat_terbit", field_text(f, "tempat_terbit"), column, ISSUE_SIZE, center=True),
        fit("tanggal_terbit", ddmmyyyy(f, "tanggal_terbit"),
            column._replace(top=top + 30, bottom=top + 54), ISSUE_SIZE, center=True),
        fit("signatory", SIGNATORY, column._replace(top=top + 58, bottom=top + 80), 17,
            True, True),
        fit("pejabat.nama", record.pejabat.nama,
            column._replace(top=sig.bottom + 2, bottom=sig.bottom + 52), 17, True, True),
        fit("pejabat.nip", f"NIP. {record.pejabat.nip}",
            column._replace(top=sig.bottom + 54, bottom=sig.bottom + 76), 16, center=True),
    ]


def layout(record: KiaRecord) -> list[Placed]:
    """Every text item of the card; no two boxes overlap. Nama and Alamat take a
    second row only when they do not fit one line at full size; the rows flow down."""
    f = record.fields
    texts = {key: field_text(f, key) for _, key, _, _ in _ROWS if key != "ttl"}
    texts["ttl"] = f"{field_text(f, 'tempat_lahir')}, {ddmmyyyy(f, 'tanggal_lahir')}"
    texts["berlaku_hingga"] = ddmmyyyy(f, "berlaku_hingga")
    header = Box(LABEL_X, 8, CARD_SIZE[0] - LABEL_X, 48)
    nik = Box(LABEL_X, 112, COLON_X, 160)
    items = [fit("title", TITLE, header, TITLE_SIZE, True, True),
             fit("provinsi", f"PROVINSI {field_text(f, 'provinsi')}",
                 Box(LABEL_X, 50, COLUMN_LEFT - 10, 80), HEADER_SIZE, True),
             fit("kabupaten", f"KABUPATEN {field_text(f, 'kabupaten')}",
                 Box(LABEL_X, 80, COLUMN_LEFT - 10, 110), HEADER_SIZE, True),
             fit("label:nik", "NIK", nik, NIK_SIZE - 8, True),
             fit("colon:nik", ":", nik._replace(left=COLON_X, right=VALUE_X), NIK_SIZE - 8,
                 True),
             fit("nik", record.nik, nik._replace(left=VALUE_X, right=COLUMN_LEFT - 10),
                 NIK_SIZE, True),
             *_column(record)]
    texts["gol_darah"] = field_text(f, "gol_darah")
    return items + labelled_rows(GRID, _ROWS, texts)


def render_kia(record: KiaRecord) -> CardPanels:
    """Draw the front side of `record`; the same record gives byte-identical panels."""
    placed = layout(record)
    photo = None if record.photo_jpeg is None else (
        photo_ymc(record.photo_jpeg, PHOTO_BOX), PHOTO_BOX)
    signature = signature_ink(record.pejabat.signature_png,
                              signature_box(photo is not None), "pejabat signature")
    fixed = [p for p in placed if p.field.startswith(FIXED_ITEMS)]
    own = [p for p in placed if not p.field.startswith(FIXED_ITEMS)]
    return compose(background(KIA_TINT), fixed, own, [signature], photo)
