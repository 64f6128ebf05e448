"""Which optional part of kiosk needs which pip extra, and the message when one is missing.

A station's Pi carries what it runs: python-escpos only where a receipt printer is
fitted (`receipt`), RPLCD where an I2C LCD is (`lcd`, in `pi`), the district's tools
only on the district server, pyscard where a chip encoder is (`chip`). A command
that needs a missing extra stops with this message (exit code 2: restarting will
not install it).
"""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message says which extra brings it."""


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import *module*, or raise `MissingExtra` naming the pip extra for *what*."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingExtra(
            f"{what} needs the '{extra}' extra: pip install 'kiosk[{extra}]' ({error})"
        ) from error
