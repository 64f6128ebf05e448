"""The PC/SC chip encoder: a reader under pcscd, reached with pyscard (the `chip` extra).

One `PcscEncoder` watches every slot of one reader, chosen by its name or a unique part
of it (pcscd names slots ``NAME NN SS``; a reader with a contact and a contactless slot,
or vpcd's two, has two). It reports facts only (kiosk/devices/encoder/facts.py):

* `read_card` waits up to ``card_wait_s`` for a card, holds it (exclusive), reads its UID
  with PC/SC part 3's GET DATA (``FF CA 00 00 00``) and checks it has 4, 7 or 10 bytes;
* `personalize` first reads the UID again and runs the personalizer only if it is the
  UID the caller names and no second card lies on the reader, so nothing is ever written
  to a chip that is not the one committed to the record; the personalizer runs with
  ``timeout_s`` on a thread of its own, and when it overruns its card link is revoked
  and the card reset, so a late write is refused;
* `untouched` asks the personalizer whether the chip holds nothing of any record;
* `check` says whether pcscd lists the reader, and when it is back after being gone.

Every call is from one thread (the station's encoder thread); none blocks longer than
``card_wait_s`` or ``timeout_s`` plus a little.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Mapping
from typing import Any

from kiosk.devices.encoder.facts import (
    CardPresent,
    ChipState,
    ChipUnreadable,
    NoCard,
    NotPersonalized,
    Personalized,
    PersonalizeFact,
    ReaderGone,
    ReaderPresent,
    ReadFact,
    SecondCard,
    StateFact,
)
from kiosk.devices.encoder.personalizer import (
    CardGone,
    ChipError,
    Personalizer,
    load_personalizer,
)
from kiosk.extras import require

log = logging.getLogger(__name__)

GET_UID = bytes.fromhex("FFCA000000")
UID_LENGTHS = (4, 7, 10)  # ISO/IEC 14443-3 single, double, triple size
POLL_MS = 200
STALE_RETRY_S = 0.1  # one SCardGetStatusChange wait; a gone reader is noticed this fast
SLOT = re.compile(r"^(?P<device>.*) (?P<slot>[0-9A-F]{2})$")
DEFAULT_WAIT = {"inline": 10.0, "desk": 120.0}


def _code(value: int) -> int:
    return value & 0xFFFFFFFF  # pyscard gives some codes signed, some unsigned


class _Gone(Exception):
    """The reader is not there (the message says why)."""


class PcscEncoder:
    """The reader *reader* (a name or a unique part of it) with *personalizer*."""

    def __init__(self, reader: str, *, personalizer: Personalizer | str = "none",
                 timeout_s: float = 60.0, card_wait_s: float | None = None,
                 mode: str = "inline") -> None:
        self.scard = require("smartcard.scard", "chip", "the chip encoder ([encoder] mode)")
        self.reader = reader
        self.mode = mode
        self.personalizer_name = personalizer if isinstance(personalizer, str) else type(
            personalizer).__name__
        self.personalizer = (load_personalizer(personalizer) if isinstance(personalizer, str)
                             else personalizer)
        self.timeout_s = timeout_s
        self.card_wait_s = DEFAULT_WAIT.get(mode, 10.0) if card_wait_s is None else card_wait_s
        self._context: int | None = None
        self._held: tuple[str, int, int] | None = None  # slot, handle, protocol
        self._was_gone = False

    @classmethod
    def from_settings(cls, settings: Any) -> PcscEncoder:
        """Built from the ``[encoder]`` section."""
        return cls(settings.reader, personalizer=settings.personalizer,
                   timeout_s=settings.timeout_s, card_wait_s=settings.card_wait_s,
                   mode=settings.mode)

    # -- the reader ----------------------------------------------------------------------

    def check(self) -> ReaderPresent | ReaderGone:
        """Is the reader listed? ``came_back`` once after it had been reported gone."""
        try:
            device = self._device(self._slots())
        except _Gone as gone:
            return self._gone(str(gone))
        came_back, self._was_gone = self._was_gone, False
        return ReaderPresent(device, came_back=came_back)

    def close(self) -> None:
        self.release()
        if self._context is not None:
            self.scard.SCardReleaseContext(self._context)
            self._context = None

    def release(self) -> None:
        """Let go of the card held (it stays where it is)."""
        self._disconnect(reset=False)

    # -- the card ------------------------------------------------------------------------

    def read_card(self, wait_s: float | None = None) -> ReadFact:
        """The chip on the reader: wait for a card, hold it, read and check its UID.

        pcscd polls a reader like vpcd about every 400 ms, so it may still report the
        card that has just left: a card that is gone when connected to is waited for
        again, until *wait_s* (``card_wait_s``) is over."""
        wait = self.card_wait_s if wait_s is None else wait_s
        deadline = time.monotonic() + wait
        while True:
            try:
                slots = self._slots()
                present = self._wait_present(slots, max(0.0, deadline - time.monotonic()))
            except _Gone as gone:
                return self._gone(str(gone))
            device = self._device(slots)
            if not present:
                self.release()
                return NoCard(device, wait)
            if len(present) > 1:
                self.release()
                return SecondCard(device, tuple(present))
            try:
                return self._read_uid(present[0])
            except CardGone as gone:
                if time.monotonic() >= deadline:
                    return ChipUnreadable(present[0], str(gone))
            time.sleep(STALE_RETRY_S)  # pcscd has not polled the slot since: let it

    def personalize(self, record: Mapping[str, Any], uid: str) -> PersonalizeFact:
        """Write *record* into the chip *uid* (and only that chip), verified."""
        record_id = str(record.get("record_id"))
        seen = self.read_card(wait_s=0)
        if isinstance(seen, ReaderGone):
            return seen
        refused = self._refusal(seen, uid)
        if refused:
            return NotPersonalized(getattr(seen, "reader", self.reader), uid, record_id,
                                   refused, written=False)
        assert isinstance(seen, CardPresent)
        outcome, failure = self._run(lambda link: self.personalizer.personalize(link, record),
                                     seen)
        if failure:
            return NotPersonalized(seen.reader, uid, record_id, failure, written=True)
        if not outcome.ok:
            reason = f"{self.personalizer_name}: {_short(outcome.reason) or 'not verified'}"
            return NotPersonalized(seen.reader, uid, record_id, reason, written=True)
        return Personalized(seen.reader, uid, record_id)

    def untouched(self, uid: str | None = None) -> StateFact:
        """Whether the chip on the reader (which must be *uid*, if given) holds no record."""
        seen = self.read_card(wait_s=0)
        if not isinstance(seen, CardPresent):
            return seen
        if uid is not None and seen.uid != uid:
            return ChipUnreadable(seen.reader, f"the chip at the encoder is {seen.uid}, not {uid}")
        answer, failure = self._run(self.personalizer.untouched, seen)
        if failure:
            return ChipUnreadable(seen.reader, failure)
        return ChipState(seen.reader, seen.uid, bool(answer))

    # -- steps ---------------------------------------------------------------------------

    def _refusal(self, seen: ReadFact, uid: str) -> str | None:
        """Why nothing may be written to the card on the reader for the blank *uid*."""
        if isinstance(seen, NoCard):
            return f"no card at the encoder (expected {uid}): nothing written"
        if isinstance(seen, SecondCard):
            return f"{len(seen.slots)} cards on the reader: nothing written"
        if isinstance(seen, ChipUnreadable):
            return f"{seen.reason}: nothing written"
        assert isinstance(seen, CardPresent)
        if seen.uid != uid:
            return f"the chip at the encoder is {seen.uid}, not {uid}: nothing written"
        return None

    def _run(self, work: Any, seen: CardPresent) -> tuple[Any, str | None]:
        """*work(link)* on its own thread within ``timeout_s``: (its result, None) or
        (None, why it failed). A timeout revokes the link: a late write is refused."""
        link = _Link(self, seen.uid, seen.reader)
        name = self.personalizer_name
        finished, result, error = self._within(lambda: work(link), "personalizer")
        if not finished:
            link.revoke()
            self._abandon()
            return None, f"{name} did not finish within timeout_s = {self.timeout_s:g} s"
        if isinstance(error, CardGone):
            self._disconnect(reset=False)
            return None, f"the card left the reader during {name}: {error}"
        if error is not None:
            self._disconnect(reset=True)
            return None, f"{name} failed: {type(error).__name__}: {_short(str(error))}"
        return result, None

    def _within(self, work: Any, name: str) -> tuple[bool, Any, BaseException | None]:
        """*work()* on a thread of its own, waited for ``timeout_s``: (finished, its
        result, what it raised)."""
        box: dict[str, Any] = {}
        done = threading.Event()

        def call() -> None:
            try:
                box["result"] = work()
            except BaseException as error:
                box["error"] = error
            finally:
                done.set()

        threading.Thread(target=call, name=name, daemon=True).start()
        if not done.wait(self.timeout_s):
            return False, None, None
        return True, box.get("result"), box.get("error")

    def _abandon(self) -> None:
        """Drop the card and the PC/SC context of a call that overran. pcscd serves one
        request at a time per context and stays in the silent chip's call until the card
        leaves: the next steps use a new context, and the old one is closed on a thread of its
        own whenever pcscd gets to it. The card is left, not reset: that late reset would
        land on whatever card lies on the reader by then (the next blank), which then went
        unseen; the revoked link already refuses the overrunning call's writes."""
        held, self._held = self._held, None
        context, self._context = self._context, None
        scard = self.scard

        def close() -> None:
            if held is not None:
                scard.SCardDisconnect(held[1], scard.SCARD_LEAVE_CARD)
            if context is not None:
                scard.SCardReleaseContext(context)

        threading.Thread(target=close, name="pcsc-abandoned", daemon=True).start()

    def _read_uid(self, slot: str) -> ReadFact:
        try:
            data, sw = self._get_uid(slot)
        except _Gone as gone:
            return self._gone(str(gone))
        except CardGone:
            self.release()
            raise
        except ChipError as error:
            self.release()
            return ChipUnreadable(slot, str(error))
        if sw != 0x9000:
            self.release()
            return ChipUnreadable(slot, f"GET DATA (UID) answered SW {sw:04X}")
        if len(data) not in UID_LENGTHS:
            self.release()
            return ChipUnreadable(slot, f"impossible UID length: {len(data)} bytes"
                                  " (ISO 14443: 4, 7 or 10)")
        return CardPresent(slot, data.hex().upper())

    def _get_uid(self, slot: str) -> tuple[bytes, int]:
        """GET DATA on the card in *slot*; a card held from before that has left since
        is let go and the card there now is asked (a read writes nothing)."""
        held = self._held is not None
        self._hold(slot)
        try:
            return self._transmit(GET_UID)
        except CardGone:
            if not held:
                raise
        self._hold(slot)
        return self._transmit(GET_UID)

    def _hold(self, slot: str) -> None:
        """Connect to the card in *slot* (exclusive), unless it is held already."""
        if self._held is not None and self._held[0] == slot:
            return
        self.release()
        scard = self.scard
        result, handle, protocol = scard.SCardConnect(
            self._ctx(), slot, scard.SCARD_SHARE_EXCLUSIVE,
            scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1)
        if _code(result) != _code(scard.SCARD_S_SUCCESS):
            self._raise(result, "connect")
        self._held = (slot, handle, protocol)

    def _transmit(self, apdu: bytes) -> tuple[bytes, int]:
        if self._held is None:
            raise CardGone("no card is held")
        _, handle, protocol = self._held
        result, response = self.scard.SCardTransmit(handle, protocol, list(apdu))
        if _code(result) != _code(self.scard.SCARD_S_SUCCESS):
            self._disconnect(reset=False)  # a failed handle is not reused
            self._raise(result, "transmit")
        response = bytes(response)
        if not response:  # vpcd, and readers, give nothing when the card left the field
            self._disconnect(reset=False)
            raise CardGone("the chip stopped answering: the card left the reader's field")
        if len(response) < 2:
            raise ChipError(f"the chip's answer is not an APDU response ({len(response)}"
                            " byte, no status word)")
        return response[:-2], int.from_bytes(response[-2:])

    def _raise(self, result: int, step: str) -> None:
        scard, code = self.scard, _code(result)
        message = scard.SCardGetErrorMessage(result)
        if code in {_code(getattr(scard, name)) for name in _GONE_CODES if hasattr(scard, name)}:
            self._reset_context()
            try:
                self._slots()
            except _Gone:
                raise
            raise CardGone(f"{step}: {message}") from None
        if code in {_code(getattr(scard, name)) for name in _REMOVED_CODES}:
            raise CardGone(f"the card left the reader ({step}: {message})")
        if code == _code(scard.SCARD_E_SHARING_VIOLATION):
            # Another program holds the card for a moment (kiosk doctor's look at the
            # reader): a card being read is waited for like one not seen yet, not spoiled.
            raise CardGone(f"another program holds the card ({step}: {message})")
        raise ChipError(f"{step}: {message}")

    def _disconnect(self, *, reset: bool) -> None:
        held, self._held = self._held, None
        if held is not None:
            scard = self.scard
            scard.SCardDisconnect(held[1], scard.SCARD_RESET_CARD if reset
                                  else scard.SCARD_LEAVE_CARD)

    # -- pcscd ---------------------------------------------------------------------------

    def _ctx(self) -> int:
        if self._context is None:
            scard = self.scard
            result, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
            if _code(result) != _code(scard.SCARD_S_SUCCESS):
                raise _Gone(f"pcscd is not running ({scard.SCardGetErrorMessage(result)})")
            self._context = context
        return self._context

    def _reset_context(self) -> None:
        self._held = None
        if self._context is not None:
            self.scard.SCardReleaseContext(self._context)
            self._context = None

    def _slots(self) -> list[str]:
        """The slots of the configured reader, or _Gone saying why it is not usable."""
        scard = self.scard
        result, names = scard.SCardListReaders(self._ctx(), [])
        if _code(result) != _code(scard.SCARD_S_SUCCESS):
            self._reset_context()
            result, names = scard.SCardListReaders(self._ctx(), [])
        if _code(result) != _code(scard.SCARD_S_SUCCESS):
            if _code(result) != _code(scard.SCARD_E_NO_READERS_AVAILABLE):
                self._reset_context()
            raise _Gone(f"pcscd lists no reader {self.reader!r} ("
                        f"{scard.SCardGetErrorMessage(result)})")
        matching = [name for name in names if self.reader in name]
        devices = sorted({_device_of(name) for name in matching})
        if not devices:
            raise _Gone(f"pcscd lists no reader {self.reader!r} (listed: {', '.join(names)})")
        if len(devices) > 1:
            raise _Gone(f"{self.reader!r} names several readers ({', '.join(devices)}):"
                        " give more of the name")
        return matching

    def _wait_present(self, slots: list[str], wait_s: float) -> list[str]:
        """The slots with a card in them, waiting up to *wait_s* for one."""
        scard = self.scard
        states = [(slot, scard.SCARD_STATE_UNAWARE) for slot in slots]
        deadline = time.monotonic() + wait_s
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            timeout_ms = int(min(remaining * 1000, POLL_MS)) if states[0][1] else 0
            result, found = scard.SCardGetStatusChange(self._ctx(), timeout_ms, states)
            code = _code(result)
            if code == _code(scard.SCARD_S_SUCCESS):
                states = [(name, state & ~scard.SCARD_STATE_CHANGED) for name, state, _ in found]
                if any(state & scard.SCARD_STATE_UNKNOWN for _, state in states):
                    raise _Gone(f"pcscd no longer lists reader {self.reader!r}")
                present = [name for name, state in states
                           if state & scard.SCARD_STATE_PRESENT
                           and not state & scard.SCARD_STATE_MUTE]
                if present or time.monotonic() >= deadline:
                    return present
            elif code == _code(scard.SCARD_E_TIMEOUT):
                if time.monotonic() >= deadline:
                    return []
            else:
                self._reset_context()
                self._slots()  # raises _Gone when the reader went away
                states = [(slot, scard.SCARD_STATE_UNAWARE) for slot in slots]

    def _gone(self, reason: str) -> ReaderGone:
        self._was_gone = True
        self._held = None
        return ReaderGone(self.reader, reason)

    def _device(self, slots: list[str]) -> str:
        return _device_of(slots[0]) if slots else self.reader


class _Link:
    """The card as a personalizer sees it; revoked when its time is up."""

    def __init__(self, encoder: PcscEncoder, uid: str, reader: str) -> None:
        self._encoder, self.uid, self.reader = encoder, uid, reader
        self._revoked = threading.Event()

    def revoke(self) -> None:
        self._revoked.set()

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        if self._revoked.is_set():
            raise CardGone("the personalizer's time is up: the card link is closed")
        try:
            return self._encoder._transmit(bytes(apdu))
        except _Gone as gone:
            raise CardGone(str(gone)) from None


_GONE_CODES = ("SCARD_E_NO_SERVICE", "SCARD_E_SERVICE_STOPPED", "SCARD_E_READER_UNAVAILABLE",
               "SCARD_E_UNKNOWN_READER", "SCARD_E_INVALID_HANDLE", "SCARD_E_NO_READERS_AVAILABLE")
_REMOVED_CODES = ("SCARD_W_REMOVED_CARD", "SCARD_E_NO_SMARTCARD", "SCARD_W_RESET_CARD",
                  "SCARD_E_NOT_TRANSACTED", "SCARD_W_UNPOWERED_CARD",
                  "SCARD_W_UNRESPONSIVE_CARD")


def _device_of(slot: str) -> str:
    match = SLOT.match(slot)
    return match.group("device") if match else slot


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"
