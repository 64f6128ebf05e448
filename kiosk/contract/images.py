"""The photo's and the signature's pixels: a header read, and a decode of every pixel.

Only the station loads this module (through a record's image check): it brings Pillow and
simplejpeg, which the district's processes never need.
"""

from __future__ import annotations

import io

import simplejpeg
from PIL import Image


class Unreadable(ValueError):
    """An image whose header cannot be read; the message names the decoder's complaint."""


def size(data: bytes, fmt: str) -> tuple[int, int]:
    """Width and height from the header of *data* as *fmt* ("JPEG" or "PNG")."""
    try:
        with Image.open(io.BytesIO(data), formats=(fmt,)) as img:
            return img.size
    except Exception as exc:  # Pillow raises many types on hostile headers
        raise Unreadable(type(exc).__name__) from None


def decode_problem(data: bytes, fmt: str) -> str | None:
    """Why *data* does not decode in full as *fmt*, or None: every pixel its header promises.

    A JPEG cut short, or whose header promises more than its data holds, decodes "fine"
    in Pillow (libjpeg warns, Pillow does not listen, the rest is grey): simplejpeg's
    strict mode turns libjpeg's warnings into errors. Pillow's PNG decoder refuses a
    short or corrupt stream by itself (unless ``ImageFile.LOAD_TRUNCATED_IMAGES``, never
    set here).
    """
    try:
        if fmt == "JPEG":
            simplejpeg.decode_jpeg(data, colorspace=_jpeg_output(data), strict=True)
        else:
            with Image.open(io.BytesIO(data), formats=(fmt,)) as img:
                img.load()
    except Exception as exc:  # the decoders raise many types on hostile data
        return f"{type(exc).__name__}: {str(exc)[:80]}"
    return None


def _jpeg_output(data: bytes) -> str:
    """Grey: the whole stream is decoded all the same, in a third of the memory of RGB.
    libjpeg converts CMYK (and YCCK) to nothing but CMYK."""
    colorspace = simplejpeg.decode_jpeg_header(data)[2]
    return "CMYK" if colorspace in ("CMYK", "YCCK") else "GRAY"
