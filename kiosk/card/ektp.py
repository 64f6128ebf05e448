"""The E-KTP's front side: its layout (`layout()`: an inspectable list of placed text
boxes) and its panels (`render_ektp`).

Text and the signature go on K (1-bit resin black, sharp); the background and the photo
go on Y/M/C. The layout is the project's own (docs/card.md); the fields are mqtt.md's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import NamedTuple

from kiosk.card.art import background
from kiosk.card.compose import compose
from kiosk.card.images import photo_ymc, signature_ink
from kiosk.card.panels import CARD_SIZE, Box, CardPanels, RenderError
from kiosk.card.text import Placed, fit, fits
from kiosk.contract.record import FIELD_MAX_CHARS, Record

# Text up to this many characters (letters, digits, space, .,'/()-) always fits its box.
MAX_CHARS = FIELD_MAX_CHARS  # what validation admits is what the layout can fit

class RowGrid(NamedTuple):
    """Where a card's labelled rows go: their first top and height, the label, colon and
    value columns, the sizes, and the columns of gol_darah on jenis_kelamin's row."""

    top: int
    row: int
    label_x: int
    colon_x: int
    value_x: int
    value_right: int
    label_size: int
    value_size: int
    gol_label_x: int
    gol_colon_x: int
    gol_value_x: int


# Geometry of the front side (px at 300 dpi).
LABEL_X, COLON_X, VALUE_X, VALUE_RIGHT = 36, 272, 288, 742
ROWS_TOP, ROW = 168, 33
COLUMN_LEFT, COLUMN_RIGHT = 752, 996  # photo / place and date of issue / signature
PHOTO_BOX = Box(770, 166, 978, 443)  # 3:4 portrait
SIGNATURE_BOX = Box(772, 526, 976, 630)
IMAGE_BOXES = {"photo": PHOTO_BOX, "signature": SIGNATURE_BOX}
LABEL_SIZE, VALUE_SIZE, HEADER_SIZE, NIK_SIZE, ISSUE_SIZE = 24, 24, 30, 44, 22
_GOL = 540, 676, 690

GRID = RowGrid(ROWS_TOP, ROW, LABEL_X, COLON_X, VALUE_X, VALUE_RIGHT, LABEL_SIZE, VALUE_SIZE,
               *_GOL)

# (label, value key, rows, label indent); jenis_kelamin's row also carries gol_darah.
_ROWS: tuple[tuple[str, str, int, int], ...] = (
    ("Nama", "nama", 2, 0), ("Tempat/Tgl Lahir", "ttl", 1, 0),
    ("Jenis Kelamin", "jenis_kelamin", 1, 0), ("Alamat", "alamat", 2, 0),
    ("RT/RW", "rt_rw", 1, 24), ("Kel/Desa", "kel_desa", 1, 24),
    ("Kecamatan", "kecamatan", 1, 24), ("Agama", "agama", 1, 0),
    ("Status Perkawinan", "status_perkawinan", 1, 0), ("Pekerjaan", "pekerjaan", 1, 0),
    ("Kewarganegaraan", "kewarganegaraan", 1, 0), ("Berlaku Hingga", "berlaku_hingga", 1, 0),
)

# Layout fields the same on (nearly) every card of a station: labels, colons and the
# header. They are drawn once, on a shared K (keyed by the placed items themselves).
FIXED_ITEMS = ("label:", "colon:", "provinsi", "kabupaten")


def field_text(fields: Mapping[str, str], key: str) -> str:
    """A text field of the record, or RenderError naming it."""
    value = fields.get(key)
    if not isinstance(value, str):
        raise RenderError(f"field {key} is missing")
    return value


def ddmmyyyy(fields: Mapping[str, str], key: str, free_text: bool = False) -> str:
    """A YYYY-MM-DD field as the card prints it, DD-MM-YYYY."""
    try:
        return date.fromisoformat(field_text(fields, key)).strftime("%d-%m-%Y")
    except ValueError as exc:
        if free_text:  # berlaku_hingga may be SEUMUR HIDUP: printed as given
            return field_text(fields, key)
        raise RenderError(f"{key} is not a YYYY-MM-DD date") from exc


def labelled_rows(grid: RowGrid, rows: Sequence[tuple[str, str, int, int]],
                  texts: Mapping[str, str]) -> list[Placed]:
    """Label, colon and value of each row, flowing down: a row given two lines takes one
    when its value fits one at full size. jenis_kelamin's row also carries gol_darah."""
    g, items, top = grid, [], grid.top
    for label, key, lines, indent in rows:
        right = g.gol_label_x - 12 if key == "jenis_kelamin" else g.value_right
        if fits(texts[key], g.value_size, False, right - g.value_x):
            lines = 1
        row = Box(g.label_x + indent, top, g.colon_x, top + lines * g.row)
        items += [fit(f"label:{key}", label, row, g.label_size),
                  fit(f"colon:{key}", ":", row._replace(left=g.colon_x, right=g.value_x),
                      g.label_size),
                  fit(key, texts[key], row._replace(left=g.value_x, right=right), g.value_size)]
        if key == "jenis_kelamin":
            gol = row._replace(left=g.gol_label_x, right=g.gol_colon_x)
            items += [fit("label:gol_darah", "Gol. Darah", gol, g.label_size),
                      fit("colon:gol_darah", ":", gol._replace(left=g.gol_colon_x,
                                                               right=g.gol_value_x),
                          g.label_size),
                      fit("gol_darah", texts["gol_darah"],
                          gol._replace(left=g.gol_value_x, right=g.value_right), g.value_size)]
        top += lines * g.row
    return items


def layout(record: Record) -> list[Placed]:
    """Every text item of the card; no two boxes overlap. Nama and Alamat take a
    second row only when they do not fit one line at full size; the rows flow down."""
    f = record.fields
    texts = {key: field_text(f, key) for _, key, _, _ in _ROWS if key != "ttl"}
    texts["ttl"] = f"{field_text(f, 'tempat_lahir')}, {ddmmyyyy(f, 'tanggal_lahir')}"
    texts["berlaku_hingga"] = ddmmyyyy(f, "berlaku_hingga", free_text=True)
    header, nik = Box(LABEL_X, 14, CARD_SIZE[0] - LABEL_X, 56), Box(LABEL_X, 104, COLON_X, 160)
    issue = Box(COLUMN_LEFT, 450, COLUMN_RIGHT, 486)
    items = [fit("provinsi", f"PROVINSI {field_text(f, 'provinsi')}", header, HEADER_SIZE,
                 True, True),
             fit("kabupaten", f"KABUPATEN {field_text(f, 'kabupaten')}",
                 header._replace(top=56, bottom=98), HEADER_SIZE, True, True),
             fit("label:nik", "NIK", nik, NIK_SIZE - 8, True),
             fit("colon:nik", ":", nik._replace(left=COLON_X, right=VALUE_X + 12),
                 NIK_SIZE - 8, True),
             fit("nik", record.nik, nik._replace(left=VALUE_X + 12, right=COLUMN_RIGHT),
                 NIK_SIZE, True),
             fit("tempat_terbit", field_text(f, "tempat_terbit"), issue, ISSUE_SIZE,
                 center=True),
             fit("tanggal_terbit", ddmmyyyy(f, "tanggal_terbit"),
                 issue._replace(top=486, bottom=518), ISSUE_SIZE, center=True)]
    texts["gol_darah"] = field_text(f, "gol_darah")
    return items + labelled_rows(GRID, _ROWS, texts)


def render_ektp(record: Record) -> CardPanels:
    """Draw the front side of `record`; the same record gives byte-identical panels."""
    placed = layout(record)
    photo = photo_ymc(record.photo_jpeg, PHOTO_BOX)
    signature = signature_ink(record.signature_png, SIGNATURE_BOX)
    fixed = [p for p in placed if p.field.startswith(FIXED_ITEMS)]
    own = [p for p in placed if not p.field.startswith(FIXED_ITEMS)]
    return compose(background(), fixed, own, [signature], (photo, PHOTO_BOX))
