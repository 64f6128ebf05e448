"""The record's images made ready for the card: untrusted bytes decoded under limits,
the photo fitted to its box as Y/M/C, a signature fitted to its box as 1-bit K ink.

Every failure to decode becomes `RenderError` naming the image, never a crash.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from kiosk.card.panels import Box, RenderError

MAX_IMAGE_SIDE = 4000


def open_image(data: bytes, fmt: str, what: str, size: tuple[int, int]) -> Image.Image:
    """Decode untrusted image bytes (drafted towards `size`); any failure is RenderError."""
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


def photo_ymc(jpeg: bytes, box: Box) -> tuple[Image.Image, Image.Image, Image.Image]:
    """The photo cropped to fill `box` exactly, as Y, M, C ink."""
    size = (box.width, box.height)
    photo = open_image(jpeg, "JPEG", "photo", size).convert("RGB")
    c, m, y, _ = ImageOps.fit(photo, size, Image.Resampling.BILINEAR).convert("CMYK").split()
    return y, m, c


def signature_ink(png: bytes, box: Box, what: str = "signature") -> tuple[Image.Image, Box]:
    """A signature as a 1-bit ink mask fitted inside `box`, and where it goes (centred)."""
    size = (box.width, box.height)
    sig = open_image(png, "PNG", what, size)
    if sig.mode in ("L", "RGB") and "transparency" not in sig.info:
        # opaque: the very grey levels that compositing it on white gives, in one band
        grey = ImageOps.contain(sig, size, Image.Resampling.BILINEAR).convert("L")
    else:
        sig = ImageOps.contain(sig.convert("RGBA"), size, Image.Resampling.BILINEAR)
        grey = Image.alpha_composite(Image.new("RGBA", sig.size, "white"), sig).convert("L")
    ink = ImageOps.invert(grey).convert("1", dither=Image.Dither.NONE)  # ink: darker than 128
    left = box.left + (box.width - ink.width) // 2
    top = box.top + (box.height - ink.height) // 2
    return ink, Box(left, top, left + ink.width, top + ink.height)
