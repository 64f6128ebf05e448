"""Text on the card: the fonts, fitting a value into its box (shrinking, then wrapping at
spaces, then anywhere) and drawing placed text as 1-bit ink.

Every layout places its text with `fit` and draws it with `draw_placed`; the measured
glyph boxes and the drawn lines are cached, since labels and many values repeat.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from kiosk.card.panels import Box, RenderError

MIN_FONT = 12  # px; text shrinks to this before it is refused

_DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
_HAS_DEJAVU = all((_DEJAVU / f).is_file() for f in ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"))
FONT_SOURCE = (f"DejaVu Sans and DejaVu Sans Bold from {_DEJAVU}" if _HAS_DEJAVU
               else "Pillow's built-in scalable font (no bold face)")


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


def fits(text: str, size: int, bold: bool, width: int) -> bool:
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
    return lines if all(fits(line, size, bold, box.width) for line in lines) else None


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


def draw_placed(image: Image.Image, p: Placed) -> Box | None:
    """Draw `p` as ink (set pixels, 255) on the mode "1" `image`; the box it touched."""
    touched = None
    for (x, y), line in zip(p.origins, p.lines, strict=True):
        mask, dx, dy = _line_mask(line, p.font_size, p.bold)
        image.paste(255, (x + dx, y + dy), mask)
        touched = Box(x + dx, y + dy, x + dx + mask.width, y + dy + mask.height).union(touched)
    return touched
