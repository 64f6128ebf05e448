"""The personalizer plug-in interface (chip.md, "The personalizer").

A personalizer writes a record into a chip. It is found by name under the entry-point
group ``kiosk.personalizers``; the entry point names a class (or any factory) called
with no argument. The project ships ``none`` and ``demo``
(kiosk/devices/encoder/personalizers.py); the authority's own personalizer, with its
SAM, is a separate package that declares, in its own pyproject.toml::

    [project.entry-points."kiosk.personalizers"]
    dukcapil = "dukcapil_ektp.station:Personalizer"

and ``[encoder] personalizer = "dukcapil"``. The SAM sits in a PC/SC reader of its own
(a reader with a SAM slot shows it as a second reader): the package opens it itself,
through pcscd, by its own configuration; the station never touches it.

The station calls, on its encoder thread, with the encoder's ``timeout_s`` around each
call (an exception or a timeout is a failure; after a timeout the card link is revoked,
so a late write is refused):

* ``personalize(card, record) -> Outcome``: write the chip for *record* (the
  print-ready record as a dict, mqtt.md) and verify it; ``Outcome(ok, reason)``.
* ``untouched(card) -> bool``: True when nothing of any record is on the chip yet
  (asked after a crash, before a found card is used for a job).

*card* is a `CardLink`: ``card.uid`` (upper-case hex), ``card.reader`` and
``card.transmit(apdu) -> (data, sw)``. A personalizer must never log, raise with, or
return personal data (a reason names files, steps and status words, not names or NIKs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

GROUP = "kiosk.personalizers"


class ChipError(Exception):
    """The chip could not be reached for this command (the message says why)."""


class CardGone(ChipError):
    """The card left the reader, or the link was revoked (a timed-out personalizer)."""


class CardLink(Protocol):
    uid: str
    reader: str

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        """Send a command APDU; (response data, status word such as 0x9000).
        Raises CardGone or ChipError."""


@dataclass(frozen=True)
class Outcome:
    """Whether the chip now holds the record; *reason* (short, no personal data) if not."""

    ok: bool
    reason: str = ""


@runtime_checkable
class Personalizer(Protocol):
    def personalize(self, card: CardLink, record: Mapping[str, Any]) -> Outcome: ...

    def untouched(self, card: CardLink) -> bool: ...


class UnknownPersonalizer(LookupError):
    """No installed personalizer has this name; the message lists those that are."""


def installed() -> list[str]:
    """Names of the installed personalizers."""
    return sorted(entry.name for entry in entry_points(group=GROUP))


def load_personalizer(name: str) -> Personalizer:
    """The personalizer installed as *name*; UnknownPersonalizer if none is."""
    found = [entry for entry in entry_points(group=GROUP) if entry.name == name]
    if not found:
        names = ", ".join(installed()) or "none"
        raise UnknownPersonalizer(f"no personalizer {name!r} is installed (installed: {names})")
    try:
        personalizer = found[0].load()()
    except Exception as exc:  # a half-installed package: its import or factory fails
        raise UnknownPersonalizer(f"personalizer {name!r} ({found[0].value}) cannot be"
                                  f" loaded: {type(exc).__name__}: {exc}") from exc
    if not isinstance(personalizer, Personalizer):
        raise UnknownPersonalizer(
            f"personalizer {name!r} ({found[0].value}) has no personalize/untouched methods")
    return personalizer
