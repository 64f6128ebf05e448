"""What `kiosk doctor` can say about the chip encoder (chip.md): the personalizer named
is installed, pyscard is there, pcscd lists the reader, and a card on it answers.

`encoder_findings` yields ``(status, name, detail)`` with status ``ok``, ``warn`` or
``fail``, the shape of kiosk/ops/ippcheck.py's findings, for the doctor to print.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kiosk.devices.encoder.facts import CardPresent, NoCard, ReaderPresent, SecondCard
from kiosk.devices.encoder.personalizer import UnknownPersonalizer, load_personalizer
from kiosk.extras import MissingExtra

Finding = tuple[str, str, str]


def encoder_findings(settings: Any) -> Iterator[Finding]:
    """The ``[encoder]`` section's checks; nothing is written to any chip."""
    if settings.mode == "none":
        yield "ok", "encoder", "mode none: no chip step (blanks counted, not identified)"
        return
    try:
        load_personalizer(settings.personalizer)
    except UnknownPersonalizer as error:
        yield "fail", "personalizer", str(error)
        return
    yield "ok", "personalizer", f"{settings.personalizer!r} is installed"
    try:
        from kiosk.devices.encoder.pcsc import PcscEncoder

        encoder = PcscEncoder.from_settings(settings)
    except MissingExtra as error:
        yield "fail", "encoder", str(error)
        return
    try:
        yield from _reader_findings(encoder)
    finally:
        encoder.close()


def _reader_findings(encoder: Any) -> Iterator[Finding]:
    reader = encoder.check()
    if not isinstance(reader, ReaderPresent):
        yield "fail", "reader", reader.reason
        return
    yield "ok", "reader", f"{reader.reader} ({encoder.mode})"
    card = encoder.read_card(wait_s=0)
    encoder.release()
    if isinstance(card, CardPresent):
        yield "ok", "chip", f"a card answers on {card.reader}: UID {card.uid}"
    elif isinstance(card, NoCard):
        yield "warn", "chip", "no card on the reader: lay a blank on it to check its chip answers"
    elif isinstance(card, SecondCard):
        yield "warn", "chip", f"{len(card.slots)} cards on the reader: leave one to check it"
    else:
        yield "fail", "chip", getattr(card, "reason", repr(card))
