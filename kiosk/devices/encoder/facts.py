"""The facts a chip encoder reports (chip.md): what it saw, never what it means.

The station's core turns them into the blank's custody (committed, personalized,
invalid and its category); the encoder never books anything. Every fact names the
reader slot it came from. UIDs are upper-case hex. No fact carries personal data:
a record is named by its record_id only.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CardPresent:
    """A chip answered at the encoder with this UID (4, 7 or 10 bytes)."""

    reader: str
    uid: str


@dataclass(frozen=True)
class NoCard:
    """No card appeared on the reader within *waited_s*."""

    reader: str
    waited_s: float


@dataclass(frozen=True)
class ChipUnreadable:
    """A card is (or was) there but its chip gave no usable answer; *reason* says why."""

    reader: str
    reason: str


@dataclass(frozen=True)
class SecondCard:
    """More than one card is on the reader: nothing is read or written until one is left."""

    reader: str
    slots: tuple[str, ...]


@dataclass(frozen=True)
class ReaderGone:
    """pcscd does not list the reader (unplugged, or pcscd itself is not running)."""

    reader: str
    reason: str


@dataclass(frozen=True)
class ReaderPresent:
    """The reader is listed; *came_back* when it had been reported gone before."""

    reader: str
    came_back: bool = False


@dataclass(frozen=True)
class Personalized:
    """The personalizer wrote the chip for *record_id* and verified it."""

    reader: str
    uid: str
    record_id: str


@dataclass(frozen=True)
class NotPersonalized:
    """The chip does not hold *record_id*; *reason* says why.

    *written* tells whether anything may have reached the chip: False when the
    encoder refused before the personalizer ran (another chip, a second card, no
    card), so the blank is still untouched by this station.
    """

    reader: str
    uid: str | None
    record_id: str
    reason: str
    written: bool


@dataclass(frozen=True)
class ChipState:
    """Whether the chip with *uid* is still untouched (nothing of any record written)."""

    reader: str
    uid: str
    untouched: bool


ReadFact = CardPresent | NoCard | ChipUnreadable | SecondCard | ReaderGone
PersonalizeFact = Personalized | NotPersonalized | ReaderGone
StateFact = ChipState | ChipUnreadable | NoCard | SecondCard | ReaderGone


def why_not(fact: object) -> str:
    """A fact that is not a usable card or chip, as the reason a person reads."""
    if isinstance(fact, NoCard):
        return f"no card answered on {fact.reader} within {fact.waited_s:g} s"
    if isinstance(fact, ChipUnreadable | ReaderGone | NotPersonalized):
        return fact.reason
    if isinstance(fact, SecondCard):
        return f"{len(fact.slots)} cards on the reader: nothing written"
    if isinstance(fact, CardPresent):
        return f"the chip at the encoder is {fact.uid}"
    return f"unexpected answer from the encoder: {type(fact).__name__}"
