"""The card as a one-page PWG raster (image/pwg-raster), written by libcups.

libcups (the library pycups wraps) has the PWG raster writer: the page header
for a PWG media name (`cupsRasterInitPWGHeader`) and the compressed stream
(`cupsRasterOpenIO` in CUPS_RASTER_WRITE_PWG mode). pycups does not expose it,
so it is reached through ctypes, with the page header declared as libcups
declares it (`cups_page_header2_t`, cups/raster.h, fields by name) and the stream
written into memory through libcups' I/O callback: no file, not even an
unnamed one, ever holds the card. The page is in the media's portrait
orientation, so the landscape card is turned a quarter and fitted to it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

from PIL import Image

RASTER_READ, RASTER_WRITE_PWG = 0, 3
_u, _b, _f, _s64 = ctypes.c_uint, ctypes.c_int, ctypes.c_float, ctypes.c_char * 64


class PageHeader(ctypes.Structure):
    """`cups_page_header2_t` of cups/raster.h (CUPS 1.2 and later, unchanged since)."""

    _fields_ = [
        ("MediaClass", _s64), ("MediaColor", _s64), ("MediaType", _s64), ("OutputType", _s64),
        ("AdvanceDistance", _u), ("AdvanceMedia", _b), ("Collate", _b), ("CutMedia", _b),
        ("Duplex", _b), ("HWResolution", _u * 2), ("ImagingBoundingBox", _u * 4),
        ("InsertSheet", _b), ("Jog", _b), ("LeadingEdge", _b), ("Margins", _u * 2),
        ("ManualFeed", _b), ("MediaPosition", _u), ("MediaWeight", _u), ("MirrorPrint", _b),
        ("NegativePrint", _b), ("NumCopies", _u), ("Orientation", _b), ("OutputFaceUp", _b),
        ("PageSize", _u * 2), ("Separations", _b), ("TraySwitch", _b), ("Tumble", _b),
        ("cupsWidth", _u), ("cupsHeight", _u), ("cupsMediaType", _u),
        ("cupsBitsPerColor", _u), ("cupsBitsPerPixel", _u), ("cupsBytesPerLine", _u),
        ("cupsColorOrder", _b), ("cupsColorSpace", _b), ("cupsCompression", _u),
        ("cupsRowCount", _u), ("cupsRowFeed", _u), ("cupsRowStep", _u), ("cupsNumColors", _u),
        ("cupsBorderlessScalingFactor", _f), ("cupsPageSize", _f * 2),
        ("cupsImagingBBox", _f * 4), ("cupsInteger", _u * 16), ("cupsReal", _f * 16),
        ("cupsString", _s64 * 16), ("cupsMarkerType", _s64), ("cupsRenderingIntent", _s64),
        ("cupsPageSizeName", _s64),
    ]


assert ctypes.sizeof(PageHeader) == 1796  # as libcups has it on every platform it supports
_IO = ctypes.CFUNCTYPE(ctypes.c_ssize_t, ctypes.c_void_p, ctypes.POINTER(ctypes.c_ubyte),
                       ctypes.c_size_t)


@functools.cache
def _libcups() -> ctypes.CDLL:
    lib = ctypes.CDLL(ctypes.util.find_library("cups") or "libcups.so.2")
    header = ctypes.POINTER(PageHeader)
    lib.pwgMediaForPWG.restype = ctypes.c_void_p
    lib.pwgMediaForPWG.argtypes = [ctypes.c_char_p]
    lib.cupsRasterInitPWGHeader.argtypes = [header, ctypes.c_void_p, ctypes.c_char_p,
                                            ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                                            ctypes.c_char_p]
    lib.cupsRasterOpenIO.restype = ctypes.c_void_p
    lib.cupsRasterOpenIO.argtypes = [_IO, ctypes.c_void_p, ctypes.c_int]
    for name in ("cupsRasterWriteHeader2", "cupsRasterReadHeader2"):
        getattr(lib, name).argtypes = [ctypes.c_void_p, header]
    for name in ("cupsRasterWritePixels", "cupsRasterReadPixels"):
        getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint]
    lib.cupsRasterClose.argtypes = [ctypes.c_void_p]
    return lib


def encode(card: Image.Image, media: str, dpi: int = 300) -> bytes:
    """*card* (RGB, landscape) as an sRGB 8-bit PWG raster page of *media*."""
    lib = _libcups()
    size = lib.pwgMediaForPWG(media.encode())
    if not size:
        raise ValueError(f"unknown PWG media {media!r}")
    header = PageHeader()
    if not lib.cupsRasterInitPWGHeader(ctypes.byref(header), size, b"srgb_8", dpi, dpi,
                                       b"one-sided", None):
        raise ValueError(f"libcups cannot make a PWG raster header for {media}")
    page = card.convert("RGB")
    if (page.width > page.height) != (header.cupsWidth > header.cupsHeight):
        page = page.transpose(Image.Transpose.ROTATE_90)
    pixels = page.resize((header.cupsWidth, header.cupsHeight),
                         Image.Resampling.LANCZOS).tobytes()
    out = bytearray()

    def write(_ctx: object, buffer: ctypes.Array, length: int) -> int:
        out.extend(ctypes.string_at(buffer, length))
        return length

    callback = _IO(write)
    raster = lib.cupsRasterOpenIO(callback, None, RASTER_WRITE_PWG)
    try:
        if not lib.cupsRasterWriteHeader2(raster, ctypes.byref(header)):
            raise ValueError("libcups refused the PWG raster header")
        lib.cupsRasterWritePixels(raster, pixels, len(pixels))
    finally:
        lib.cupsRasterClose(raster)
    return bytes(out)


def decode(data: bytes) -> Image.Image:
    """The first page of a PWG raster stream (sRGB 8-bit), for tests."""
    lib = _libcups()
    view = memoryview(data)
    at = 0

    def read(_ctx: object, buffer: ctypes.Array, length: int) -> int:
        nonlocal at
        chunk = view[at:at + length]
        ctypes.memmove(buffer, bytes(chunk), len(chunk))
        at += len(chunk)
        return len(chunk)

    callback = _IO(read)
    raster = lib.cupsRasterOpenIO(callback, None, RASTER_READ)
    if not raster:
        raise ValueError("not a PWG raster stream")
    try:
        header = PageHeader()
        if not lib.cupsRasterReadHeader2(raster, ctypes.byref(header)):
            raise ValueError("not a PWG raster stream")
        buffer = ctypes.create_string_buffer(header.cupsBytesPerLine * header.cupsHeight)
        lib.cupsRasterReadPixels(raster, buffer, len(buffer))
    finally:
        lib.cupsRasterClose(raster)
    return Image.frombytes("RGB", (header.cupsWidth, header.cupsHeight), buffer.raw)
