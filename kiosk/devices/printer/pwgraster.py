"""The card as a one-page PWG raster (image/pwg-raster), written by libcups.

libcups (the same library pycups wraps) has the PWG raster writer: the page
header for a PWG media name (`cupsRasterInitPWGHeader`) and the compressed
stream (`cupsRasterOpen` in CUPS_RASTER_WRITE_PWG mode). We reach it through
ctypes: pycups does not expose it. The page is in the media's portrait
orientation, so the landscape card is turned a quarter and fitted to it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import tempfile

from PIL import Image

HEADER_BYTES = 1796  # sizeof(cups_page_header2_t)
WIDTH_AT, HEIGHT_AT, BYTES_PER_LINE_AT = 372, 376, 392  # its cupsWidth, cupsHeight, ...
RASTER_READ, RASTER_WRITE_PWG = 0, 3


def _libcups() -> ctypes.CDLL:
    lib = ctypes.CDLL(ctypes.util.find_library("cups") or "libcups.so.2")
    lib.pwgMediaForPWG.restype = ctypes.c_void_p
    lib.pwgMediaForPWG.argtypes = [ctypes.c_char_p]
    lib.cupsRasterInitPWGHeader.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_char_p,
                                            ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                                            ctypes.c_char_p]
    lib.cupsRasterOpen.restype = ctypes.c_void_p
    lib.cupsRasterOpen.argtypes = [ctypes.c_int, ctypes.c_int]
    for name in ("cupsRasterWriteHeader2", "cupsRasterReadHeader2"):
        getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    for name in ("cupsRasterWritePixels", "cupsRasterReadPixels"):
        getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint]
    lib.cupsRasterClose.argtypes = [ctypes.c_void_p]
    return lib


def _field(header: ctypes.Array, offset: int) -> int:
    return int.from_bytes(header.raw[offset:offset + 4], sys.byteorder)  # a C struct


def encode(card: Image.Image, media: str, dpi: int = 300) -> bytes:
    """*card* (RGB, landscape) as an sRGB 8-bit PWG raster page of *media*."""
    lib = _libcups()
    size = lib.pwgMediaForPWG(media.encode())
    if not size:
        raise ValueError(f"unknown PWG media {media!r}")
    header = ctypes.create_string_buffer(HEADER_BYTES)
    if not lib.cupsRasterInitPWGHeader(header, size, b"srgb_8", dpi, dpi, b"one-sided", None):
        raise ValueError(f"libcups cannot make a PWG raster header for {media}")
    width, height = _field(header, WIDTH_AT), _field(header, HEIGHT_AT)
    page = card.convert("RGB")
    if (page.width > page.height) != (width > height):
        page = page.transpose(Image.Transpose.ROTATE_90)
    pixels = page.resize((width, height), Image.Resampling.LANCZOS).tobytes()
    with tempfile.TemporaryFile() as out:
        raster = lib.cupsRasterOpen(out.fileno(), RASTER_WRITE_PWG)
        try:
            if not lib.cupsRasterWriteHeader2(raster, header):
                raise ValueError("libcups refused the PWG raster header")
            lib.cupsRasterWritePixels(raster, pixels, len(pixels))
        finally:
            lib.cupsRasterClose(raster)
        out.seek(0)
        return out.read()


def decode(data: bytes) -> Image.Image:
    """The first page of a PWG raster stream (sRGB 8-bit), for tests."""
    lib = _libcups()
    with tempfile.TemporaryFile() as source:
        source.write(data)
        source.seek(0)
        raster = lib.cupsRasterOpen(source.fileno(), RASTER_READ)
        try:
            header = ctypes.create_string_buffer(HEADER_BYTES)
            if not lib.cupsRasterReadHeader2(raster, header):
                raise ValueError("not a PWG raster stream")
            width, height = _field(header, WIDTH_AT), _field(header, HEIGHT_AT)
            buffer = ctypes.create_string_buffer(_field(header, BYTES_PER_LINE_AT) * height)
            lib.cupsRasterReadPixels(raster, buffer, len(buffer))
        finally:
            lib.cupsRasterClose(raster)
    return Image.frombytes("RGB", (width, height), buffer.raw)
