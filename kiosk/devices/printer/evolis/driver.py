"""The card-printer driver: the Evolis command language over a serial port.

`EvolisPrinter` implements `kiosk.devices.printer.base.CardPrinter` per
card-printer.md: every command
must be answered ``OK`` before the next is sent, with a timeout per command
class (2 s settings and reads, 30 s per download, print time + 10 s for
``Se``). The port is whatever ``serial.serial_for_url`` opens: a device, a
pty, ``socket://``, ``spy://``.

Fault probing relies on the printer's status model (see kiosk/sim/printer.py):
while a blocking fault stands (jam, cover, ribbon, head) every P/S/D command
answers the fault; ``Sk;f`` tells whether the feeder is empty.

Smart cards (card-printer.md, "Smart cards"; chip.md, inline mode): `print_encoded_card`
picks with ``Sic`` (the blank stops at the contactless encoder), lets the caller's
*encode* step run, then starts the print sequence on that card with the command kept in
``after_encode`` (``Ss`` by default: whether a real printer needs more is to be checked
on hardware) or, when *encode* says no, ejects it to the reject box (``Ser``). The pieces
are there on their own too: `pick_to_encoder`, `reject_card`, `card_inside`. The driver
reports facts; what a rejected blank means is the station's to decide.

Manual feed (chip.md, desk mode): after `use_manual_feed`, every card is taken from the
manual slot (``Pmi;M`` instead of ``Pmi;F``), where the operator feeds the card encoded
at the desk; the feeder's state is no longer a fault. ``Ss`` answered FEEDER EMPTY means
no card is in the slot yet: it is sent again until one is, for up to ``manual_wait_s``.
Whether a real printer answers so, or holds its reply to ``Ss`` until a card is fed
(each ``Ss`` is given the time left to wait, so both work), is to be checked on hardware.
"""

from __future__ import annotations

import contextlib
import termios
import time
from collections.abc import Callable, Sequence
from typing import Any

import serial

from kiosk.card.render import CardImages
from kiosk.devices.printer.base import (
    CardError,
    CardHooks,
    CardPrinter,
    HoldCard,
    PrinterError,
)
from kiosk.devices.printer.evolis import protocol as evolis
from kiosk.devices.printer.evolis.panels import PanelData, encode_card
from kiosk.station.core.events import (
    BLANK_GONE,
    BLANK_INSIDE,
    BLANK_MAYBE_TAKEN,
    BLANK_UNKNOWN,
    BLANK_UNTOUCHED,
)
from kiosk.transports import register as _register  # noqa: F401  (usblp://)

__all__ = ["CardError", "CardHooks", "CardPrinter", "EvolisPrinter", "PrinterError"]

SETTING_TIMEOUT = 2.0
DOWNLOAD_TIMEOUT = 30.0
PRINT_MARGIN = 10.0
FEEDER_EMPTY_CODES = ("1", "2", "3")
MANUAL_POLL_S = 0.3  # how often Ss is sent again while the manual slot is empty


class EvolisPrinter:
    """An Evolis-language card printer at *url* (e.g. ``/dev/kiosk-printer``)."""

    def __init__(
        self,
        url: str,
        *,
        baud: int = 115200,
        ribbon: str = "ymcko",
        colour_bits: int = 6,
        rotate: int = 90,
        print_seconds: float = 30.0,
        setting_timeout: float = SETTING_TIMEOUT,
        download_timeout: float = DOWNLOAD_TIMEOUT,
        after_encode: str = "Ss",
    ) -> None:
        self.url = url
        self.baud = baud
        self.ribbon = ribbon
        self.colour_bits = colour_bits
        self.rotate = rotate
        self.print_timeout = print_seconds + PRINT_MARGIN
        self.setting_timeout = setting_timeout
        self.download_timeout = download_timeout
        self.after_encode = after_encode
        self.manual_wait_s: float | None = None  # manual feed (desk mode) when set
        self._port: serial.SerialBase | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> EvolisPrinter:
        """Built from the ``[printer]`` section."""
        return cls(settings.port, baud=settings.baud, ribbon=settings.ribbon,
                   colour_bits=settings.colour_bits, rotate=settings.rotate,
                   print_seconds=settings.print_seconds,
                   setting_timeout=settings.setting_timeout_s,
                   download_timeout=settings.download_timeout_s)

    def use_manual_feed(self, wait_s: float) -> None:
        """Take every card from the manual slot (``Pmi;M``), waiting up to *wait_s* for
        the operator to feed it."""
        self.manual_wait_s = wait_s

    def prepare(self, card: CardImages) -> Sequence[PanelData]:
        """The rendered card as the panels this printer's ribbon takes."""
        return encode_card(card, ribbon=self.ribbon, colour_bits=self.colour_bits,
                           rotate=self.rotate)

    def counters(self) -> dict[str, int] | None:
        """``Rco;c`` (cards taken) and ``Rco;p`` (cards printed); None if unreadable."""
        try:
            return {"taken": int(self._ask("Rco", "c")), "printed": int(self._ask("Rco", "p"))}
        except ValueError:
            return None
        except PrinterError as error:
            if error.link_lost:
                raise
            return None

    def connect(self) -> str:
        """Open the port and identify the printer; PrinterError if it does not answer."""
        self.close()
        try:
            self._port = serial.serial_for_url(self.url, baudrate=self.baud, timeout=0.05)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise PrinterError(("connecting-to-device",), f"cannot open {self.url}: {exc}",
                               link_lost=True) from exc
        kind = self._ask("Rtp")
        firmware = self._ask("Rfv")
        return f"{kind} firmware {firmware}"

    def close(self) -> None:
        if self._port is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                self._port.close()
            self._port = None

    def check(self) -> tuple[str, ...]:
        """Reasons the printer cannot take a card now; () when it can."""
        try:
            self._ok("Pem", 0)
        except PrinterError as error:
            if error.link_lost:
                raise
            return error.reasons
        if self.manual_wait_s is not None:  # the cards come by hand, not from the feeder
            return ()
        feeder = self._ask("Sk", "f")
        return ("media-empty-error",) if feeder in FEEDER_EMPTY_CODES else ()

    def print_card(self, hooks: CardHooks) -> None:
        """One card, front only; raises CardError on any failure, call `finish` after success.

        The printer is prepared, and the pick asked for, while the card may still be
        rendering; an exception from ``hooks.document()`` ends the job before a blank is
        picked (the blank is untouched whatever the station answered).
        """
        panels = self._prepare_job(hooks)
        self._pick()
        hooks.picked()
        try:
            self._ok("Sr")
            for panel in panels:
                self._download(panel)
        except PrinterError as error:
            self._end_quietly()
            raise CardError(error, blank=BLANK_GONE) from error
        self._end_card()

    # -- smart cards ---------------------------------------------------------------------

    def print_encoded_card(self, hooks: CardHooks, encode: Callable[[], bool]) -> None:
        """One card with its chip encoded inline: as `print_card`, but the blank is picked
        to the contactless encoder (``Sic``) and *encode()* runs there; True prints the
        surface on that card, False ejects it to the reject box (``Ser``) and raises
        CardError (blank ``gone``, detail "chip step failed"). `HoldCard` from *encode*
        leaves the card at the encoder (blank ``inside``: the next ``Sic`` takes it); any
        other exception rejects the card, then propagates."""
        panels = self._prepare_job(hooks)
        self._pick(command="Sic")
        hooks.picked()
        try:
            go_on = encode()
        except HoldCard as held:
            self._end_quietly()
            raise CardError(PrinterError(held.reasons, held.detail), blank=BLANK_INSIDE) from held
        except BaseException:
            self._reject_quietly()
            raise
        if not go_on:
            self._reject_quietly()
            raise CardError(PrinterError((), "chip step failed: card ejected to the reject"
                                         " box (Ser)"), blank=BLANK_GONE)
        self._print_inside(panels, start=self.after_encode)

    def pick_to_encoder(self) -> None:
        """``Sic``: a blank (or the card already inside, nothing picked) to the contactless
        encoder. CardError with the blank's fate when the printer refuses."""
        self._pick(command="Sic")

    def reject_card(self) -> bool:
        """``Ser``: the card inside to the reject box; False when there was no card."""
        try:
            self._ok("Ser")
        except PrinterError as error:
            if error.link_lost or error.detail != "Ser: ERROR CDE":
                raise
            return False
        return True

    def card_inside(self) -> bool:
        """``Rlr;p``: is a card inside the printer (after a restart: which blank is it?)."""
        return self._ask("Rlr", "p") == "1"

    def _reject_quietly(self) -> None:
        with contextlib.suppress(PrinterError):
            self.reject_card()
        self._end_quietly()

    def _prepare_job(self, hooks: CardHooks) -> Sequence[PanelData]:
        """Job settings, the pick asked for, the document; CardError before any pick."""
        try:
            self._ok("Pem", 2)
            self._ok("Pr", self.ribbon)
            self._ok("Pmi", "F" if self.manual_wait_s is None else "M")
            hooks.ask_pick()  # the station commits its picking mark while the card renders
        except PrinterError as error:
            self._end_quietly()
            raise CardError(error) from error
        try:
            panels = hooks.document()
        except Exception:
            self._end_quietly()
            raise
        if not hooks.may_pick():
            self._end_quietly()
            raise CardError(PrinterError((), "pick withdrawn by the station"))
        return panels

    def _print_inside(self, panels: Sequence[PanelData], *, start: str) -> None:
        """The print sequence on the card inside: *start*, ``Sr``, the panels, ``Se``."""
        try:
            self._ok(start)
            self._ok("Sr")
            for panel in panels:
                self._download(panel)
        except PrinterError as error:
            self._end_quietly()
            raise CardError(error, blank=BLANK_GONE) from error
        self._end_card()

    def _pick(self, command: str = "Ss") -> None:
        try:
            if command == "Ss" and self.manual_wait_s is not None:
                self._pick_manual(self.manual_wait_s)
            else:
                self._ok(command)
        except PrinterError as error:
            # An error reply (FEEDER EMPTY, HOPPER FULL) took no blank; no reply might have.
            self._end_quietly()
            raise CardError(error, blank=BLANK_MAYBE_TAKEN if error.link_lost
                            else BLANK_UNTOUCHED) from error

    def _pick_manual(self, wait_s: float) -> None:
        """``Ss`` until the card fed into the manual slot is taken (FEEDER EMPTY: not yet)."""
        deadline = time.monotonic() + wait_s
        while True:
            left = deadline - time.monotonic()
            try:
                self._ok("Ss", timeout=max(left, self.setting_timeout))
                return
            except PrinterError as error:
                if error.link_lost or error.detail != "Ss: FEEDER EMPTY":
                    raise
                if time.monotonic() + MANUAL_POLL_S > deadline:
                    # Not the feeder's fault: the operator did not feed the card.
                    raise PrinterError((), f"no card was fed into the manual slot within"
                                       f" {wait_s:g} s") from error
            time.sleep(MANUAL_POLL_S)

    def _end_card(self) -> None:
        try:
            self._ok("Se", timeout=self.print_timeout)
        except PrinterError as error:
            self._end_quietly()
            # An error reply means the card was ejected unprinted; no reply: it may be out.
            raise CardError(error, blank=BLANK_UNKNOWN if error.link_lost
                            else BLANK_GONE) from error

    def finish(self) -> None:
        """Close the job after a printed card (``Pem;0``); the card is out whatever this says."""
        self._end_quietly()

    def _download(self, panel: PanelData) -> None:
        if panel.compressed:
            frame = evolis.download_compressed(panel.panel, panel.data)
        else:
            frame = evolis.download(panel.panel, panel.code, panel.data)
        self._transact(frame, self.download_timeout, expect_ok=True)

    def _end_quietly(self) -> None:
        """Hand error handling back to the printer; a failure here changes nothing."""
        if self._port is None:
            return
        with contextlib.suppress(PrinterError):
            self._ok("Pem", 0)

    def _ok(self, name: str, *params: str | int, timeout: float | None = None) -> None:
        self._transact(evolis.command(name, *params), timeout or self.setting_timeout,
                       expect_ok=True)

    def _ask(self, name: str, *params: str | int) -> str:
        return self._transact(evolis.command(name, *params), self.setting_timeout,
                              expect_ok=False)

    def _transact(self, frame: bytes, timeout: float, *, expect_ok: bool) -> str:
        port = self._port
        if port is None:
            raise PrinterError(("connecting-to-device",), "port not open", link_lost=True)
        name = frame[1:].split(b";", 1)[0].split(b"\r", 1)[0].decode("ascii", "replace")
        try:
            port.reset_input_buffer()  # stale bytes (line noise) are not this reply
            if port.write_timeout != timeout:  # setting it reconfigures the port
                port.write_timeout = timeout  # a printer that stops reading must not hang us
            port.write(frame)
            reply = self._read_reply(port, timeout)
        except serial.SerialTimeoutException as exc:
            self.close()
            raise PrinterError(("timed-out-error",), f"the printer stopped reading during"
                               f" {name} (nothing taken for {timeout:g} s)",
                               link_lost=True) from exc
        except (serial.SerialException, OSError, termios.error) as exc:
            # termios.error: flushing a tty whose device has gone (it is not an OSError).
            self.close()
            raise PrinterError(("connecting-to-device",), f"port lost during {name}: {exc}",
                               link_lost=True) from exc
        if reply is None:
            self.close()
            raise PrinterError(("timed-out-error",), f"no reply to {name} within {timeout:g} s",
                               link_lost=True)
        if (expect_ok and reply != evolis.OK) or reply in evolis.ERROR_REASONS:
            raise PrinterError((evolis.reason_for_reply(reply),), f"{name}: {reply}")
        return reply

    @staticmethod
    def _read_reply(port: serial.SerialBase, timeout: float) -> str | None:
        """One reply, ended by CR or NUL; printable ASCII only (noise dropped)."""
        deadline = time.monotonic() + timeout
        buffer = bytearray()
        while True:
            chunk = port.read(port.in_waiting or 1)
            if chunk:
                buffer += chunk
                text = bytes(buffer).lstrip(b"\r\n\x00")
                for end, byte in enumerate(text):
                    if byte in (0x0D, 0x00):
                        return _printable(text[:end])
            elif time.monotonic() > deadline:
                return None


def _printable(raw: bytes) -> str:
    return "".join(chr(b) for b in raw if 0x20 <= b < 0x7F).strip()
