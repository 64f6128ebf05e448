"""The E-KTP's front side: its layout (`layout()`: an inspectable list of placed text
boxes) and its panels (`render_ektp`).

Text and the signature go on K (1-bit resin black, sharp); the background and the photo
go on Y/M/C. The layout is the project's own (docs/card.md); the fields are mqtt.md's.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from kiosk.card.art import background
from kiosk.card.compose import compose
from kiosk.card.images import photo_ymc, signature_ink
from kiosk.card.panels import CARD_SIZE, Box, CardPanels, RenderError
from kiosk.card.text import Placed, fit, fits
from kiosk.contract.record import FIELD_MAX_CHARS, Record

# Text up to this many characters (letters, digits, space, .,'/()-) always fits its box.
MAX_CHARS = FIELD_MAX_CHARS  # what validation admits is what the layout can fit

# Geometry of the front side (px at 300 dpi).
LABEL_X, COLON_X, VALUE_X, VALUE_RIGHT = 36, 272, 288, 742
ROWS_TOP, ROW = 168, 33
COLUMN_LEFT, COLUMN_RIGHT = 752, 996  # photo / place and date of issue / signature
PHOTO_BOX = Box(770, 166, 978, 443)  # 3:4 portrait
SIGNATURE_BOX = Box(772, 526, 976, 630)
IMAGE_BOXES = {"photo": PHOTO_BOX, "signature": SIGNATURE_BOX}
LABEL_SIZE, VALUE_SIZE, HEADER_SIZE, NIK_SIZE, ISSUE_SIZE = 24, 24, 30, 44, 22
_GOL_LABEL_X, _GOL_COLON_X, _GOL_VALUE_X = 540, 676, 690

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
    top = ROWS_TOP
    for label, key, rows, indent in _ROWS:
        right = _GOL_LABEL_X - 12 if key == "jenis_kelamin" else VALUE_RIGHT
        if fits(texts[key], VALUE_SIZE, False, right - VALUE_X):
            rows = 1
        row = Box(LABEL_X + indent, top, COLON_X, top + rows * ROW)
        items += [fit(f"label:{key}", label, row, LABEL_SIZE),
                  fit(f"colon:{key}", ":", row._replace(left=COLON_X, right=VALUE_X), LABEL_SIZE),
                  fit(key, texts[key], row._replace(left=VALUE_X, right=right), VALUE_SIZE)]
        if key == "jenis_kelamin":
            gol = row._replace(left=_GOL_LABEL_X, right=_GOL_COLON_X)
            items += [fit("label:gol_darah", "Gol. Darah", gol, LABEL_SIZE),
                      fit("colon:gol_darah", ":", gol._replace(left=_GOL_COLON_X,
                                                               right=_GOL_VALUE_X), LABEL_SIZE),
                      fit("gol_darah", field_text(f, "gol_darah"),
                          gol._replace(left=_GOL_VALUE_X, right=VALUE_RIGHT), VALUE_SIZE)]
        top += rows * ROW
    return items


def render_ektp(record: Record) -> CardPanels:
    """Draw the front side of `record`; the same record gives byte-identical panels."""
    placed = layout(record)
    photo = photo_ymc(record.photo_jpeg, PHOTO_BOX)
    signature = signature_ink(record.signature_png, SIGNATURE_BOX)
    fixed = [p for p in placed if p.field.startswith(FIXED_ITEMS)]
    own = [p for p in placed if not p.field.startswith(FIXED_ITEMS)]
    return compose(background(), fixed, own, [signature], (photo, PHOTO_BOX))
