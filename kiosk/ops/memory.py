"""The station process's memory: how glibc's allocator is set up before threads start.

glibc gives each thread that allocates its own malloc arena (up to 8 per core). The
station's threads (broker link, print worker, tray, station loop) pass large buffers
from one to another: a record's bytes are read in paho's thread and freed in the
station's, a card's panels are made in the renderer's thread and freed in the
printer's. Spread over several arenas the freed space fragments and the resident set
creeps up under load (bench/burst.py: 85-95 MB with the default, 79 MB with one arena,
and faster). With the GIL only one thread allocates at a time anyway, so one arena costs
nothing in contention. ``MALLOC_ARENA_MAX`` in the environment, if set, wins.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc's malloc.h
ARENAS = 1


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas (call before starting threads); False where not glibc."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):  # not glibc (musl, macOS): nothing to do
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    if mallopt(M_ARENA_MAX, arenas) != 1:
        log.warning("mallopt(M_ARENA_MAX, %d) refused", arenas)
        return False
    return True
