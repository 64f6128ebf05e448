"""E-KTP front side rendering: record -> landscape card panels (Y, M, C, K, O).

Owns the card layout (`layout()`: an inspectable list of placed text boxes),
text fitting, fonts, the static background and the decoding of the record's
photo and signature. Text and the signature go on K (1-bit resin black,
sharp); the background and the photo go on Y/M/C. Wire encoding of the panels
lives in kiosk.devices.printer.evolis.panels; to spare it work, `render_card` draws K
already turned for the wire and leaves Y/M/C as the shared background plus the photo,
building the landscape panels only when someone reads them (`CardImages`).
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import cache, cached_property, lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from kiosk.contract.record import FIELD_MAX_CHARS, Record

CARD_SIZE = (1016, 648)  # landscape CR80 at 300 dpi
MAX_IMAGE_SIDE = 4000
# Overlay varnish border left bare, px. None: the overlay protects the print to the edge,
# and a full panel goes as 1016 one-byte "black line" Dbc records (~1 KB, not ~80 KB).
OVERLAY_MARGIN = 0
MIN_FONT = 12  # px; text shrinks to this before it is refused
# K is drawn turned a quarter clockwise, as it goes on the wire by default (rotate=90 in
# kiosk.devices.printer.evolis.panels): the card's left edge, bottom to top, comes first.
TURN, UNTURN = Image.Transpose.ROTATE_270, Image.Transpose.ROTATE_90

_DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
_HAS_DEJAVU = all((_DEJAVU / f).is_file() for f in ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"))
FONT_SOURCE = (f"DejaVu Sans and DejaVu Sans Bold from {_DEJAVU}" if _HAS_DEJAVU
               else "Pillow's built-in scalable font (no bold face)")

# Text up to this many characters (letters, digits, space, .,'/()-) always fits its box.
MAX_CHARS = FIELD_MAX_CHARS  # what validation admits is what the layout can fit


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


@dataclass(frozen=True)
class Placed:
    """One text item of the layout: `lines[i]` is drawn at `origins[i]` (anchor "la",
    the left/ascender-top of the line) in the given font, its ink inside `box`."""

    field: str
    box: Box
    lines: tuple[str, ...]
    font_size: int
    bold: bool
    origins: tuple[tuple[int, int], ...]


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


@cache
def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    """The card font at `size` px; BASIC layout so output never depends on libraqm."""
    if not _HAS_DEJAVU:
        return ImageFont.load_default(size)  # type: ignore[return-value]
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    return ImageFont.truetype(str(_DEJAVU / name), size, layout_engine=ImageFont.Layout.BASIC)


@lru_cache(maxsize=4096)
def _bbox(text: str, size: int, bold: bool) -> tuple[int, int, int, int]:
    """Ink box of `text` drawn at (0, 0), anchor "la" (cached: FreeType glyph loading is slow)."""
    return font(size, bold).getbbox(text, mode="L", anchor="la")


def _fits(text: str, size: int, bold: bool, width: int) -> bool:
    """Exactly: does the ink of `text` fit `width` (overhang on the left included)?"""
    left, _, right, _ = _bbox(text, size, bold)
    return right - min(left, 0) <= width


class _Advances(dict[str, float]):
    """Glyph advances of the font at one size, each measured when first needed."""

    def __init__(self, size: int, bold: bool) -> None:
        super().__init__()
        self.font = font(size, bold)

    def __missing__(self, char: str) -> float:
        self[char] = advance = self.font.getlength(char, mode="L")
        return advance


@cache
def _advances(size: int, bold: bool) -> _Advances:
    return _Advances(size, bold)


def _about_fits(text: str, size: int, bold: bool, width: int) -> bool:
    """Cheap estimate for wrapping (sum of glyph advances); `_wrapped` checks exactly."""
    return sum(map(_advances(size, bold).__getitem__, text)) + 1 + size / 16 <= width


Wrap = Callable[[str, int, bool, int], "list[str] | None"]


def _word_wrap(text: str, size: int, bold: bool, width: int) -> list[str] | None:
    """Greedy wrap at spaces; None if one word is wider than the box."""
    lines: list[str] = []
    for word in text.split():
        if lines and _about_fits(f"{lines[-1]} {word}", size, bold, width):
            lines[-1] = f"{lines[-1]} {word}"
        elif _about_fits(word, size, bold, width):
            lines.append(word)
        else:
            return None
    return lines


def _char_wrap(text: str, size: int, bold: bool, width: int) -> list[str] | None:
    """Fill each line with as many characters as fit, breaking inside words."""
    lines, rest = [], " ".join(text.split())
    while rest:
        if not _about_fits(rest[0], size, bold, width):
            return None
        low, high = 1, len(rest)  # rest[:low] fits; find the longest prefix that does
        while low < high:
            mid = (low + high + 1) // 2
            low, high = (mid, high) if _about_fits(rest[:mid].rstrip(), size, bold, width) else (
                low, mid - 1)
        lines.append(rest[:low].rstrip())
        rest = rest[low:].lstrip()
    return lines


def _wrapped(text: str, size: int, bold: bool, box: Box, wrap: Wrap) -> list[str] | None:
    lines = wrap(text, size, bold, box.width)
    if lines is None or len(lines) * sum(font(size, bold).getmetrics()) > box.height:
        return None
    return lines if all(_fits(line, size, bold, box.width) for line in lines) else None


def _largest(text: str, size: int, bold: bool, box: Box, wrap: Wrap
             ) -> tuple[int, list[str]] | None:
    """The largest size (and its lines) from `size` down to MIN_FONT at which `text` fits."""
    lines = _wrapped(text, size, bold, box, wrap)
    if lines is not None:
        return size, lines
    best, low, high = None, MIN_FONT, size - 1
    while low <= high:  # binary search: a size that fails is taken to fail for larger ones
        mid = (low + high) // 2
        lines = _wrapped(text, mid, bold, box, wrap)
        if lines is None:
            high = mid - 1
        else:
            best, low = (mid, lines), mid + 1
    return best


@lru_cache(maxsize=4096)
def fit(field: str, text: str, box: Box, size: int, bold: bool = False,
        center: bool = False) -> Placed:
    """Place `text` in `box` at the largest size down to MIN_FONT, wrapped at spaces,
    else wrapped anywhere; RenderError if it still does not fit. Cached: labels and many
    values are the same on every card, and a Placed is immutable."""
    found = _largest(text, size, bold, box, _word_wrap) or _largest(
        text, size, bold, box, _char_wrap)
    if found is None:
        raise RenderError(f"{field} is too long to fit on the card ({len(text)} characters)")
    s, lines = found
    # one shrunk line keeps its baseline on the nominal one, beside its label
    ascent, descent = font(s, bold).getmetrics()
    drop = min(font(size, bold).getmetrics()[0] - ascent, box.height - ascent - descent)
    top = box.top + (drop if len(lines) == 1 else 0)
    return Placed(field, box, tuple(lines), s, bold, _origins(lines, s, bold, box, top, center))


def _origins(lines: list[str], size: int, bold: bool, box: Box, top: int,
             center: bool) -> tuple[tuple[int, int], ...]:
    pitch = sum(font(size, bold).getmetrics())
    out = []
    for i, line in enumerate(lines):
        left, _, right, _ = _bbox(line, size, bold)
        x = box.left + (box.width - (right - left)) // 2 - left if center else (
            box.left - min(left, 0))  # glyphs such as J overhang their origin
        out.append((x, top + i * pitch))
    return tuple(out)


@lru_cache(maxsize=1024)
def _line_mask(text: str, size: int, bold: bool) -> tuple[Image.Image, int, int]:
    """`text` as a 1-bit ink mask cropped to its glyph box, with its offset. Drawn
    anti-aliased and thresholded: evener strokes than FreeType's mono mode, and faster."""
    left, top, right, bottom = _bbox(text, size, bold)
    grey = Image.new("L", (max(1, right - left), max(1, bottom - top)), 0)
    ImageDraw.Draw(grey).text((-left, -top), text, fill=255, font=font(size, bold), anchor="la")
    return grey.convert("1", dither=Image.Dither.NONE), left, top  # ink: coverage >= 128


def draw_placed(image: Image.Image, p: Placed) -> None:
    """Draw `p` as ink (set pixels, 255) on the mode "1" `image`."""
    for (x, y), line in zip(p.origins, p.lines, strict=True):
        mask, dx, dy = _line_mask(line, p.font_size, p.bold)
        image.paste(255, (x + dx, y + dy), mask)


@lru_cache(maxsize=1024)
def _turned_mask(text: str, size: int, bold: bool) -> Image.Image:
    return _line_mask(text, size, bold)[0].transpose(TURN)


def paste_turned(wire: Image.Image, mask: Image.Image, at: tuple[int, int]) -> None:
    """Set the ink of `mask` (already turned with TURN), meant for card position `at`, on
    the turned card `wire`: card pixel (x, y) is wire pixel (CARD_SIZE[1] - 1 - y, x)."""
    wire.paste(255, (CARD_SIZE[1] - at[1] - mask.width, at[0]), mask)


def _draw_turned(wire: Image.Image, p: Placed) -> int:
    """`draw_placed` on the turned card `wire`: the same ink, turned with TURN. Returns
    the leftmost card column (first wire line) it may have inked."""
    left = CARD_SIZE[0]
    for (x, y), line in zip(p.origins, p.lines, strict=True):
        _, dx, dy = _line_mask(line, p.font_size, p.bold)
        paste_turned(wire, _turned_mask(line, p.font_size, p.bold), (x + dx, y + dy))
        left = min(left, x + dx)
    return left


# Layout fields the same on (nearly) every card of a station: labels, colons and the
# header. They are drawn once, on a cached K (keyed by the placed items themselves).
FIXED_ITEMS = ("label:", "colon:", "provinsi", "kabupaten")


@lru_cache(maxsize=8)
def _fixed_ink(fixed: tuple[Placed, ...]) -> Image.Image:
    """Turned K with only the `fixed` items drawn (shared: copy it). Keyed by the items
    themselves, so it is drawn once per row layout (Nama and Alamat take one row or two)."""
    k = Image.new("1", CARD_SIZE[::-1], 0)
    for p in fixed:
        _draw_turned(k, p)
    return k


def _field(record: Record, key: str) -> str:
    value = record.fields.get(key)
    if not isinstance(value, str):
        raise RenderError(f"field {key} is missing")
    return value


def _ddmmyyyy(record: Record, key: str, free_text: bool = False) -> str:
    try:
        return date.fromisoformat(_field(record, key)).strftime("%d-%m-%Y")
    except ValueError as exc:
        if free_text:  # berlaku_hingga may be SEUMUR HIDUP: printed as given
            return _field(record, key)
        raise RenderError(f"{key} is not a YYYY-MM-DD date") from exc


def layout(record: Record) -> list[Placed]:
    """Every text item of the card; no two boxes overlap. Nama and Alamat take a
    second row only when they do not fit one line at full size; the rows flow down."""
    texts = {key: _field(record, key) for _, key, _, _ in _ROWS if key != "ttl"}
    texts["ttl"] = f"{_field(record, 'tempat_lahir')}, {_ddmmyyyy(record, 'tanggal_lahir')}"
    texts["berlaku_hingga"] = _ddmmyyyy(record, "berlaku_hingga", free_text=True)
    header, nik = Box(LABEL_X, 14, CARD_SIZE[0] - LABEL_X, 56), Box(LABEL_X, 104, COLON_X, 160)
    issue = Box(COLUMN_LEFT, 450, COLUMN_RIGHT, 486)
    items = [fit("provinsi", f"PROVINSI {_field(record, 'provinsi')}", header, HEADER_SIZE,
                 True, True),
             fit("kabupaten", f"KABUPATEN {_field(record, 'kabupaten')}",
                 header._replace(top=56, bottom=98), HEADER_SIZE, True, True),
             fit("label:nik", "NIK", nik, NIK_SIZE - 8, True),
             fit("colon:nik", ":", nik._replace(left=COLON_X, right=VALUE_X + 12),
                 NIK_SIZE - 8, True),
             fit("nik", record.nik, nik._replace(left=VALUE_X + 12, right=COLUMN_RIGHT),
                 NIK_SIZE, True),
             fit("tempat_terbit", _field(record, "tempat_terbit"), issue, ISSUE_SIZE,
                 center=True),
             fit("tanggal_terbit", _ddmmyyyy(record, "tanggal_terbit"),
                 issue._replace(top=486, bottom=518), ISSUE_SIZE, center=True)]
    top = ROWS_TOP
    for label, key, rows, indent in _ROWS:
        right = _GOL_LABEL_X - 12 if key == "jenis_kelamin" else VALUE_RIGHT
        if _fits(texts[key], VALUE_SIZE, False, right - VALUE_X):
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
                      fit("gol_darah", _field(record, "gol_darah"),
                          gol._replace(left=_GOL_VALUE_X, right=VALUE_RIGHT), VALUE_SIZE)]
        top += rows * ROW
    return items


class Patched:
    """A panel that is `base` with `patch` pasted at `at`, built in full only when read."""

    def __init__(self, base: Image.Image, patch: Image.Image, at: tuple[int, int]) -> None:
        self.base, self.patch, self.at = base, patch, at

    @cached_property
    def image(self) -> Image.Image:
        out = self.base.copy()
        out.paste(self.patch, self.at)
        return out

    def crop(self, box: Box) -> Image.Image:
        """`image.crop(box)`, without building the whole panel."""
        out = self.base.crop(box)
        out.paste(self.patch, (self.at[0] - box.left, self.at[1] - box.top))
        return out


class Turned:
    """A panel drawn turned for the wire (`wire` is `image.transpose(TURN)`), turned back
    to landscape only when read. Optionally, `wire` equals the shared, read-only `base`
    on its first `same` lines (render_card: K drawn on the cached labels' K)."""

    def __init__(self, wire: Image.Image, base: Image.Image | None = None,
                 same: int = 0) -> None:
        self.wire, self.base, self.same = wire, base, same

    @cached_property
    def image(self) -> Image.Image:
        return self.wire.transpose(UNTURN)

    def crop(self, box: Box) -> Image.Image:
        return self.image.crop(box)


class _Panel:
    """A CardImages field that takes an image or a `Patched`/`Turned` one; reading it
    always gives the image (a deferred one is built on first read, then kept)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, card: Any, owner: type | None = None) -> Image.Image:
        if card is None:
            raise AttributeError(self.name)  # dataclass: a field without a default
        value = card.__dict__[self.name]
        return value.image if isinstance(value, Patched | Turned) else value

    def __set__(self, card: Any, value: Image.Image | Patched | Turned) -> None:
        card.__dict__[self.name] = value


@dataclass(frozen=True)
class CardImages:
    """The landscape front side (1016 x 648) as printer panels.

    y, m, c: mode "L", 0 = no ink, 255 = full ink. k, o: mode "1" where a set
    pixel (Pillow reports 255) is resin ink / overlay varnish, so `card.k.show()`
    shows ink as white: use `preview()` to see the card. The overlay covers the
    card except an OVERLAY_MARGIN border. Treat the images as read-only: `o` is
    the one shared `overlay()` image, which kiosk.devices.printer.evolis.panels encodes only once.

    `base` (optional) is a shared, read-only (y, m, c) that y, m, c equal outside
    the `changed` box: render_card draws the photo on the cached background, so
    kiosk.devices.printer.evolis.panels packs the background once and then only the
    photo's area, which it splices into the packed background.

    y, m, c and k may be given deferred, as `Patched` or `Turned`: render_card passes
    y, m, c as the background with the photo patch, and k drawn turned for the wire, and
    the encoder takes what it needs from them (`crop`, `turned`) without building the
    landscape panels. Reading `card.y` etc. builds one once; it is then kept.
    """

    y: Image.Image = _Panel()  # type: ignore[assignment]
    m: Image.Image = _Panel()  # type: ignore[assignment]
    c: Image.Image = _Panel()  # type: ignore[assignment]
    k: Image.Image = _Panel()  # type: ignore[assignment]
    o: Image.Image
    base: tuple[Image.Image, Image.Image, Image.Image] | None = None
    changed: Box | None = None

    def preview(self) -> Image.Image:
        """RGB picture of the printed card: subtractive C/M/Y with resin K on top."""
        return Image.merge("CMYK", (self.c, self.m, self.y, self.k.convert("L"))).convert("RGB")

    def crop(self, name: str, box: Box) -> Image.Image:
        """`getattr(self, name).crop(box)`, without building a deferred panel in full."""
        return self.__dict__[name].crop(box)

    def turned(self, name: str) -> Turned | None:
        """Panel `name` as drawn turned with TURN, if render_card drew it so, else None."""
        value = self.__dict__[name]
        return value if isinstance(value, Turned) else None


@cache
def _background() -> tuple[Image.Image, Image.Image, Image.Image]:
    """Pale blue guilloche (gradient, wavy ribbons, a rosette) as Y, M, C panels."""
    w, h = CARD_SIZE
    base = Image.linear_gradient("L").resize((w, h)).point(lambda v: 214 + v * 28 // 255)
    rgb = Image.merge("RGB", (base.point(lambda v: v - 6), base.point(lambda v: v + 3),
                              base.point(lambda v: min(255, v + 12))))
    draw = ImageDraw.Draw(rgb)
    for k in range(30):
        phase, amp = k * 0.45, 12 + (k % 5) * 3
        pts = [(x, 8 + k * 22 + amp * math.sin(x / 57 + phase) + 5 * math.sin(x / 13 + k))
               for x in range(0, w + 4, 4)]
        draw.line(pts, fill=(186, 212, 238) if k % 2 else (204, 216, 240), width=2)
    for k in range(48):  # rosette: a ring of epitrochoid-like loops
        a0 = k * math.pi / 24
        pts = [(430 + (120 + 70 * math.cos(6 * t / 50)) * math.cos(t / 50 + a0),
                400 + (120 + 70 * math.cos(6 * t / 50)) * math.sin(t / 50 + a0) * 0.8)
               for t in range(0, 316, 2)]
        draw.line(pts, fill=(196, 216, 240), width=1)
    c, m, y, _ = rgb.convert("CMYK").split()
    return y, m, c


@cache
def overlay() -> Image.Image:
    """The overlay panel of every card (shared: never modify it)."""
    o = Image.new("1", CARD_SIZE, 0)
    m = OVERLAY_MARGIN
    o.paste(255, (m, m, CARD_SIZE[0] - m, CARD_SIZE[1] - m))
    return o


def _open_image(data: bytes, fmt: str, what: str, size: tuple[int, int]) -> Image.Image:
    """Decode untrusted image bytes; any failure becomes RenderError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=[fmt])
            if max(img.size) > MAX_IMAGE_SIDE:
                raise RenderError(f"{what} is {img.size[0]}x{img.size[1]} px, "
                                  f"over {MAX_IMAGE_SIDE} px a side")
            img.draft("RGB", size)  # JPEG: libjpeg decodes straight to a smaller scale
            img.load()
            return img
    except RenderError:
        raise
    except UnidentifiedImageError as exc:
        raise RenderError(f"{what} is not a {fmt} image") from exc
    except Exception as exc:  # Pillow raises many exception types on malformed input
        raise RenderError(f"{what} is not a decodable {fmt} image "
                          f"({type(exc).__name__}: {exc})") from exc


def _photo_ymc(record: Record) -> tuple[Image.Image, ...]:
    size = (PHOTO_BOX.width, PHOTO_BOX.height)
    photo = _open_image(record.photo_jpeg, "JPEG", "photo", size).convert("RGB")
    c, m, y, _ = ImageOps.fit(photo, size, Image.Resampling.BILINEAR).convert("CMYK").split()
    return y, m, c


def _signature_ink(record: Record) -> Image.Image:
    """The signature as a 1-bit ink mask fitted to SIGNATURE_BOX."""
    size = (SIGNATURE_BOX.width, SIGNATURE_BOX.height)
    sig = _open_image(record.signature_png, "PNG", "signature", size)
    if sig.mode in ("L", "RGB") and "transparency" not in sig.info:
        # opaque: the very grey levels that compositing it on white gives, in one band
        grey = ImageOps.contain(sig, size, Image.Resampling.BILINEAR).convert("L")
    else:
        sig = ImageOps.contain(sig.convert("RGBA"), size, Image.Resampling.BILINEAR)
        grey = Image.alpha_composite(Image.new("RGBA", sig.size, "white"), sig).convert("L")
    return ImageOps.invert(grey).convert("1", dither=Image.Dither.NONE)  # ink: darker than 128


def render_card(record: Record) -> CardImages:
    """Draw the front side of `record`; the same record gives byte-identical panels."""
    placed = layout(record)
    y, m, c = (Patched(panel, photo, PHOTO_BOX[:2])
               for panel, photo in zip(_background(), _photo_ymc(record), strict=True))
    fixed = _fixed_ink(tuple(p for p in placed if p.field.startswith(FIXED_ITEMS)))
    sig, box = _signature_ink(record), SIGNATURE_BOX
    at = (box.left + (box.width - sig.width) // 2, box.top + (box.height - sig.height) // 2)
    k, same = fixed.copy(), at[0]  # wire lines before `same` keep the fixed K's ink
    paste_turned(k, sig.transpose(TURN), at)
    for p in placed:
        if not p.field.startswith(FIXED_ITEMS):
            same = min(same, _draw_turned(k, p))
    same -= same % 16  # fewer lines, but the same count on most cards (the encoder's cache)
    return CardImages(y=y, m=m, c=c, k=Turned(k, fixed, max(same, 0)), o=overlay(),
                      base=_background(), changed=PHOTO_BOX)
