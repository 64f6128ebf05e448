"""An Evolis-compatible card printer on a pseudo-terminal (card-printer.md, "The simulator").

It owns the printer's state (feeder, ribbon, cover, output hopper, the card inside,
faults), answers each command of the wire protocol and keeps every printed card for
tests, benches and `kiosk sim printer --dump DIR`.

State-of-fault model (the station relies on it):

* A *blocking fault* - cover open, card jam, ribbon empty, head too hot - makes every
  ``P*``, ``S*`` (except ``Sk``) and ``D*`` command answer that fault's error reply
  (first of COVER OPEN, CARD JAM, ERROR RIBBON, ERROR HEAD), while ``R*`` reads and
  ``Sk;*`` answer normally. It lasts until cleared: ``close_cover()``, ``clear_jam()``
  (removes the jammed card, counted as rejected), ``load_ribbon(panels)``; a hot head
  clears itself as it cools.
* A jam leaves the card inside (``Rlr;p`` = 1). ``Ss`` with a card still in sequence
  ejects that card as rejected first. ``Se`` refused for lack of ribbon (ERROR RIBBON,
  the ribbon is then empty) or a hot head (ERROR HEAD) ejects the card as rejected.
* ``Ss`` answers HOPPER FULL while the output hopper is full (``empty_hopper()``) and
  FEEDER EMPTY with no card in the feeder; neither is blocking.
* ``Sr``/``Sv``/``Db``/``Dbc``/``Se`` outside a sequence (no ``Ss``) answer ERROR CDE.
* Injected error replies (``inject``) are answered instead of running the command and
  change nothing, except CARD JAM, which jams (at ``Ss`` it jams the card it picks).
* Head heat (if ``head_max_cards_per_minute``): each card adds one unit, the head sheds
  that rate; ``Se`` is refused when more than ``HEAD_BURST - 1`` units remain.
* A command left incomplete for ``receive_timeout`` seconds (the host died mid-download)
  is dropped with ERROR TIME OUT, so the next commands are not eaten as payload.

Smart cards (card-printer.md, "Smart cards"): every blank carries a chip
(kiosk/sim/chip.py) whose UID comes from ``uids`` (a list, e.g. read from a file) and
then from a seeded sequence. ``Sic`` carries a picked blank (or, with a card already
inside, that card: nothing picked) to the contactless encoding position, where its chip
is laid on the virtual reader at ``encoder_port`` (a vpcd slot, kiosk/sim/pcscd.py);
``Sis`` does the same to the contact station (no reader there). ``Ss`` on a card at an
encoding position starts its print sequence, picking nothing; ``Ss``, ``Se`` and ``Ser``
take the chip off the reader. ``Ser`` ejects the card inside to the reject box
(ERROR CDE with none). Every card printed or rejected keeps its chip
(``cards[i].chip``, ``rejected_cards``); ``fail_next_chip`` gives the next blank a chip
fault (garbage, impossible UID, a write that fails, the card leaving mid-write).

Manual feed (chip.md, desk mode): ``Pmi;M`` makes ``Ss`` take the card from the manual
slot instead of the feeder (``Pmi;F`` goes back to the feeder). `feed_manual(chip)` is
the operator feeding a card (with the chip it carries, e.g. one encoded at the desk) into
that slot; ``Ss`` with the slot empty answers FEEDER EMPTY and takes nothing. A card
taken from the slot counts as inserted (``Rco;c``) and keeps its chip.

Everything runs on one serving thread, which is also where ``on_pick`` is called, and
``on_command`` (with each command's name and parameters, e.g. ``"Pem;2"``, as it
arrives and before it is acted on; it may block, delaying the reply); a print (``Se``)
holds that thread for ``card_seconds`` as a real printer stops listening.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import random
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from kiosk.devices.printer.evolis.protocol import (
    ERROR_REASONS,
    OK,
    Command,
    Geometry,
    StreamParser,
    bits_per_pixel,
    decompress_1bit,
)
from kiosk.sim import serve_until_signalled
from kiosk.sim.chip import Chip, VirtualCard, seeded_uids, uids_from_file
from kiosk.sim.pty import PtyPort

log = logging.getLogger(__name__)

FIRMWARE, SERIAL_NUMBER, PRINTER_TYPE = "SIM-1.0", "SIM0000001", "Evolis Primacy (simulated)"
FEEDER_EMPTY_CODE = "1"  # Sk coding for "feeder 1 (our only feeder) empty"
HEAD_BURST = 3  # cards a cold head prints back to back
LINK_FAULTS = frozenset({"no-reply", "garbage", "split", "vanish"})
SPLIT_GAP = 0.05
CHUNK, POLL = 1 << 16, 0.05
_PRINTING = "printing"  # Se accepted: reply after the print time
_PANELS = "ymcko"
BAD = "ERROR PARAMETRES"
DEFAULT_GEOMETRY = Geometry()


@dataclass
class PrintedCard:
    """One card: the panels received for it (packed wire bytes, `Dbc` decompressed).

    Back-side panels are keyed ``"<letter>-back"``. Images show ink as black.
    """

    geometry: Geometry
    picked_at: float
    panels: dict[str, bytes] = field(default_factory=dict)
    bits: dict[str, int] = field(default_factory=dict)
    printed_at: float | None = None
    chip: Chip | None = None
    position: str = "print"  # "contactless" / "contact" (after Sic / Sis) or "print"

    @property
    def uid(self) -> str | None:
        """The card's chip UID (upper-case hex)."""
        return None if self.chip is None else self.chip.uid_hex

    def black_pixels(self, panel: str = "k") -> int:
        """Pixels at full ink (set bits for a 1-bit panel)."""
        if self.bits[panel] == 1:
            return int.from_bytes(self.panels[panel]).bit_count()
        return self.panel_image(panel).histogram()[0]

    def panel_image(self, panel: str) -> Image.Image:
        """Mode "1" for 1-bit panels, "L" (ink scaled to 0-255, inverted) for colour."""
        size = (self.geometry.width, self.geometry.height)
        if self.bits[panel] == 1:
            return Image.frombytes("1", size, self.panels[panel], "raw", "1;I")
        return Image.frombytes("L", size, _grey_levels(self.panels[panel], self.bits[panel]))


def _grey_levels(data: bytes, bits: int) -> bytes:
    """n-bit ink levels (MSB first, 8 pixels in n bytes) as 8-bit grey, full ink black."""
    top = (1 << bits) - 1
    table = bytes(255 - level * 255 // top for level in range(top + 1)).ljust(256, b"\0")
    shifts = range(7 * bits, -1, -bits)
    levels = bytearray()
    for start in range(0, len(data), bits):
        group = int.from_bytes(data[start:start + bits])
        levels.extend([(group >> shift) & top for shift in shifts])
    return bytes(levels).translate(table)


@dataclass
class _Injection:
    fault: str
    times: int
    seconds: float


class PrinterSimulator:
    """A simulated card printer serving card-printer.md on a pty, in a background thread.

    Usage::

        with PrinterSimulator(card_seconds=0.01, feeder=5) as printer:
            port = serial.serial_for_url(printer.path, 115200, timeout=2)
            ...
            assert printer.wait_for_cards(1, timeout=5)
            printer.cards[0].black_pixels("k")

    Operator/test controls: ``load_cards``, ``load_ribbon``, ``open_cover``,
    ``close_cover``, ``clear_jam``, ``empty_hopper``, ``inject``, ``vanish``, ``reappear``.
    Observed: ``cards`` (printed, in order), ``commands`` (every name received),
    ``printed``/``picked``/``rejected``, ``hopper``, ``feeder``, ``ribbon_panels``,
    ``fault``, and ``job_first_byte_at``: the monotonic time of the read that brought
    each ``Pem;2`` (its 7 bytes arrive together).
    """

    def __init__(self, link: str | None = None, *, card_seconds: float = 0.0,
                 feeder: int = 100, ribbon_panels: int = 10_000, hopper_capacity: int = 500,
                 geometry: Geometry = DEFAULT_GEOMETRY, reply_terminator: bytes = b"\r",
                 dump_dir: str | None = None, on_pick: Callable[[], None] | None = None,
                 feeder_near_empty: int = 10, receive_timeout: float = 5.0,
                 head_max_cards_per_minute: float | None = None,
                 on_command: Callable[[str], None] | None = None,
                 state_file: str | None = None, uids: list[bytes] | None = None,
                 uid_seed: int = 0, encoder_port: int | None = None) -> None:
        self.card_seconds, self.geometry = card_seconds, geometry
        self.reply_terminator, self.on_pick = reply_terminator, on_pick
        self.on_command = on_command
        self.dump_dir = Path(dump_dir) if dump_dir else None
        self.hopper_capacity, self.feeder_near_empty = hopper_capacity, feeder_near_empty
        self.head_max_cards_per_minute = head_max_cards_per_minute
        self.receive_timeout = receive_timeout
        self._port = PtyPort(link)
        self._parser = StreamParser(geometry)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._deaf = False  # a hung firmware or a stalled USB: nothing is read
        self._thread: threading.Thread | None = None
        self._requests: queue.SimpleQueue[tuple[Callable[[], None], threading.Event]] = (
            queue.SimpleQueue())
        self._injections: dict[str, deque[_Injection]] = {}
        self._reappear_at: float | None = None
        self._last_byte_at = 0.0
        self._rng = random.Random(0)
        self._feeder, self._ribbon, self._ribbon_type = feeder, ribbon_panels, "ymcko"
        self._cover_open = self._jammed = self._head_hot = False
        self._card: PrintedCard | None = None
        self._back = False
        self._heat, self._heat_at = 0.0, time.monotonic()
        self.hopper = 0
        self.cards: list[PrintedCard] = []
        self.commands: list[str] = []
        self.job_first_byte_at: list[float] = []
        self.printed = self.picked = self.rejected = 0
        self.rejected_cards: list[PrintedCard] = []
        self.chips: list[Chip] = []  # every blank's chip, in the order picked
        self.on_apdu: Callable[[bytes], None] | None = None  # given to every chip (Chip)
        self.encoder_port = encoder_port
        self._uids = deque(uids or ())
        self._uid_seed = uid_seed
        self._chip_faults: deque[str] = deque()
        self._in_reader: VirtualCard | None = None
        self._manual = False  # Pmi;M: cards come from the manual slot
        self._manual_slot: deque[Chip | None] = deque()
        # The printer's own counters (Rco;c, Rco;p) live in the printer, not the host:
        # with a state file they survive any crash of the process that drives it.
        self.state_file = Path(state_file) if state_file else None
        self.picked, self.printed = self._load_counters()

    # -- lifecycle ------------------------------------------------------------------

    @property
    def path(self) -> str:
        return self._port.path

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="printer-sim", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._take_off_reader()
        self._port.close()

    def __enter__(self) -> PrinterSimulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- operator and test controls -----------------------------------------------

    @property
    def feeder(self) -> int:
        return self._feeder

    @property
    def ribbon_panels(self) -> int:
        return self._ribbon

    @property
    def fault(self) -> str | None:
        """The blocking fault's error reply, None when the printer can work."""
        with self._lock:
            return self._blocking_fault()

    def load_cards(self, count: int) -> None:
        with self._lock:
            self._feeder += count

    def load_ribbon(self, panels: int) -> None:
        with self._lock:
            self._ribbon = panels

    def open_cover(self) -> None:
        with self._lock:
            self._cover_open = True

    def close_cover(self) -> None:
        with self._lock:
            self._cover_open = False

    def clear_jam(self) -> None:
        """Take the jammed card out (counted as rejected) and clear the jam."""
        with self._lock:
            if self._jammed and self._card is not None:
                self._reject_card()
            self._jammed = False

    def empty_hopper(self) -> None:
        with self._lock:
            self.hopper = 0

    def inject(self, command_name: str, fault: str, *, times: int = 1,
               seconds: float = 0.5) -> None:
        """Answer the next *times* `command_name` commands with *fault* (see module doc)."""
        if fault not in ERROR_REASONS and fault not in LINK_FAULTS:
            raise ValueError(f"unknown fault {fault!r}")
        with self._lock:
            self._injections.setdefault(command_name, deque()).append(
                _Injection(fault, times, seconds))

    def vanish(self) -> None:
        """Unplug: the pty and its link disappear until `reappear`."""
        self._on_loop(lambda: self._go_away(None))

    def reappear(self) -> None:
        """Plug back in under the same path (a new pty behind it)."""
        self._on_loop(self._come_back)

    def stop_reading(self) -> None:
        """Hang: read nothing more (the host's writes fill the line, then block)."""
        self._deaf = True

    def resume_reading(self) -> None:
        """Back from the hang, as a printer that restarted: what it had half-read is gone."""
        self._on_loop(self._wake)

    def fail_next_chip(self, fault: str) -> None:
        """The next blank picked carries a chip with *fault* (kiosk.sim.chip.FAULTS)."""
        Chip(b"\0\0\0\0", fault=fault)  # checks the name
        with self._lock:
            self._chip_faults.append(fault)

    def feed_manual(self, chip: Chip | None = None) -> None:
        """The operator feeds a card carrying *chip* into the manual slot."""
        with self._lock:
            self._manual_slot.append(chip)

    @property
    def manual_slot(self) -> int:
        """Cards waiting in the manual slot."""
        return len(self._manual_slot)

    def add_uids(self, uids: list[bytes]) -> None:
        """The chips of the next blanks picked (before the seeded ones)."""
        with self._lock:
            self._uids.extend(uids)

    @property
    def card_inside(self) -> PrintedCard | None:
        return self._card

    def wait_for_cards(self, count: int, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self.cards) >= count, timeout)

    # -- serving --------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self._serve_requests()
            if not self._port.present or self._deaf:
                if self._reappear_at is not None and time.monotonic() >= self._reappear_at:
                    self._come_back()
                self._stop.wait(0.01)
                continue
            data = self._port.read(CHUNK, timeout=POLL)
            now = time.monotonic()
            if data:
                self._last_byte_at = now
                for cmd in self._parser.feed(data):
                    if not self._port.present:
                        break  # vanished mid-batch: the rest went down the pulled cable
                    self._serve(cmd, now)
            elif self._parser.busy and now - self._last_byte_at > self.receive_timeout:
                self._give_up_command()

    def _give_up_command(self) -> None:
        """The host stopped mid-command (it died, or lost the link): drop it, as a printer
        does, so the bytes of its next life are commands, not the rest of a payload."""
        self._parser.reset()
        log.info("incomplete command dropped -> ERROR TIME OUT")
        self._send("ERROR TIME OUT", None)

    def _on_loop(self, action: Callable[[], None]) -> None:
        """Run *action* on the serving thread, which alone touches the pty descriptors."""
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            action()
            return
        done = threading.Event()
        self._requests.put((action, done))
        while not done.wait(0.1):
            if not thread.is_alive():
                action()
                return

    def _serve_requests(self) -> None:
        while not self._requests.empty():
            action, done = self._requests.get()
            action()
            done.set()

    def _go_away(self, seconds: float | None) -> None:
        self._port.vanish()
        self._parser.reset()
        self._reappear_at = None if seconds is None else time.monotonic() + seconds

    def _wake(self) -> None:
        self._deaf = False
        while self._port.read(CHUNK, timeout=0):  # what piled up while hung is dropped
            pass
        self._parser.reset()

    def _come_back(self) -> None:
        self._port.reappear()
        self._parser.reset()
        self._reappear_at = None

    def _serve(self, cmd: Command, arrived: float) -> None:
        if self.on_command is not None:  # before anything happens: a test may kill the host
            self.on_command(";".join([cmd.name, *cmd.params]))
        with self._lock:
            self.commands.append(cmd.name)
            if cmd.name == "Pem" and cmd.params == ("2",):
                self.job_first_byte_at.append(arrived)
            injection = self._take_injection(cmd.name)
            fault = injection.fault if injection else None
            picked = self.picked
            reply = self._answer(cmd, fault)
            picked = self.picked != picked
        if reply == _PRINTING:
            self._stop.wait(self.card_seconds)
            with self._lock:
                reply = self._finish_print()
        if picked and self.on_pick is not None:
            self.on_pick()
        log.info("%s -> %s", ";".join([cmd.name, *cmd.params])[:48], reply)
        if injection is not None and fault == "vanish":
            self._go_away(injection.seconds)
        elif reply is not None:
            self._send(reply, fault)
        if reply == OK and cmd.name == "Se" and self.dump_dir is not None:
            self._dump(self.cards[-1], len(self.cards))

    def _take_injection(self, name: str) -> _Injection | None:
        pending = self._injections.get(name)
        if not pending:
            return None
        injection = pending[0]
        injection.times -= 1
        if injection.times <= 0:
            pending.popleft()
        return injection

    def _answer(self, cmd: Command, fault: str | None) -> str | None:
        if fault in ("no-reply", "vanish"):
            return None
        if fault in ERROR_REASONS:
            if fault == "CARD JAM":
                self._jam(cmd.name)
            return fault
        handler = getattr(self, f"_cmd_{cmd.name}", None) if cmd.name.isalpha() else None
        if handler is None:
            return "ERROR CDE"
        blocking = self._blocking_fault()
        if blocking and cmd.name[0] in "PSD" and cmd.name != "Sk":
            return blocking
        return handler(cmd)

    def _send(self, reply: str, fault: str | None) -> None:
        data = reply.encode("ascii") + self.reply_terminator
        if fault == "garbage":
            data += bytes(self._rng.randrange(0x80, 0x100) for _ in range(self._rng.randint(3, 8)))
        if fault == "split":
            cut = max(1, len(data) // 2)
            self._port.write(data[:cut])
            self._stop.wait(SPLIT_GAP)
            data = data[cut:]
        self._port.write(data)

    # -- device state ---------------------------------------------------------------

    def _blocking_fault(self) -> str | None:
        if self._cover_open:
            return "COVER OPEN"
        if self._jammed:
            return "CARD JAM"
        if self._ribbon <= 0:
            return "ERROR RIBBON"
        if self._head_hot:  # stays hot until it has cooled enough for one more card
            self._head_hot = self._head_heat() > HEAD_BURST - 1
        return "ERROR HEAD" if self._head_hot else None

    def _head_heat(self) -> float:
        rate = (self.head_max_cards_per_minute or 0.0) / 60.0
        return max(0.0, self._heat - (time.monotonic() - self._heat_at) * rate)

    def _jam(self, name: str) -> None:
        if name == "Ss" and self._card is None and self._feeder > 0:
            self._pick()
        self._jammed = True

    def _load_counters(self) -> tuple[int, int]:
        if self.state_file is None or not self.state_file.exists():
            return 0, 0
        counts = json.loads(self.state_file.read_text())
        return int(counts["taken"]), int(counts["printed"])

    def _save_counters(self) -> None:
        """On disk before the reply that reports the change (as a printer's NVRAM)."""
        if self.state_file is None:
            return
        temporary = self.state_file.with_suffix(".tmp")
        with open(temporary, "w") as handle:
            json.dump({"taken": self.picked, "printed": self.printed}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.state_file)

    def _pick(self) -> None:
        self._feeder -= 1
        self.picked += 1
        self._save_counters()
        self._card = PrintedCard(self.geometry, picked_at=time.monotonic(), chip=self._chip())
        self._back = False

    def _chip(self) -> Chip:
        if not self._uids:
            self._uid_seed += 1
            self._uids.extend(seeded_uids(self._uid_seed, 64))
        fault = self._chip_faults.popleft() if self._chip_faults else None
        chip = Chip(self._uids.popleft(), fault=fault, on_apdu=self.on_apdu)
        self.chips.append(chip)
        return chip

    def _reject_card(self) -> None:
        self._take_off_reader()
        if self._card is not None:
            self.rejected_cards.append(self._card)
        self._card = None
        self.rejected += 1

    def _lay_on_reader(self, position: str) -> None:
        """The card inside moves to an encoding position; at the contactless one its chip
        is inserted into the virtual reader."""
        assert self._card is not None
        if self._card.position == position:
            return
        self._take_off_reader()
        self._card.position = position
        if position == "contactless" and self.encoder_port and self._card.chip is not None:
            self._in_reader = VirtualCard(self._card.chip, self.encoder_port).insert()

    def _take_off_reader(self) -> None:
        card, self._in_reader = self._in_reader, None
        if card is not None:
            card.remove()

    def _finish_print(self) -> str:
        card, now = self._card, time.monotonic()
        assert card is not None
        self._take_off_reader()
        self._ribbon -= len(self._ribbon_type)
        self._heat, self._heat_at = self._head_heat() + 1, now
        card.printed_at = now
        self._card = None
        self.printed += 1
        self._save_counters()
        self.hopper += 1
        self.cards.append(card)
        self._changed.notify_all()
        return OK

    def _dump(self, card: PrintedCard, number: int) -> None:
        assert self.dump_dir is not None
        try:
            self.dump_dir.mkdir(parents=True, exist_ok=True)
            for panel, bits in card.bits.items():
                name = f"card-{number:04d}-{panel}.{'pbm' if bits == 1 else 'pgm'}"
                card.panel_image(panel).save(self.dump_dir / name)
        except OSError as exc:  # a full disk must not take the printer down
            log.warning("cannot dump card %d: %s", number, exc)

    # -- commands (card-printer.md); the parser already checked download framing --------

    def _cmd_Rfv(self, cmd: Command) -> str:
        return FIRMWARE

    def _cmd_Rsn(self, cmd: Command) -> str:
        return SERIAL_NUMBER

    def _cmd_Rtp(self, cmd: Command) -> str:
        return PRINTER_TYPE

    def _cmd_Rco(self, cmd: Command) -> str:
        counters = {("p",): self.printed, ("c",): self.picked}
        return str(counters[cmd.params]) if cmd.params in counters else BAD

    def _cmd_Rlr(self, cmd: Command) -> str:
        if cmd.params != ("p",):
            return BAD
        return "1" if self._card is not None else "0"

    def _cmd_Sk(self, cmd: Command) -> str:
        limits = {("f",): 0, ("w",): self.feeder_near_empty}
        if cmd.params not in limits:
            return BAD
        return FEEDER_EMPTY_CODE if self._feeder <= limits[cmd.params] else "0"

    def _cmd_Pem(self, cmd: Command) -> str:
        return OK if cmd.params in (("0",), ("2",)) else BAD

    def _cmd_Pr(self, cmd: Command) -> str:
        if len(cmd.params) != 1 or not (cmd.params[0].isascii() and cmd.params[0].isalpha()):
            return BAD
        self._ribbon_type = cmd.params[0].lower()
        return OK

    def _cmd_Pmi(self, cmd: Command) -> str:
        if not cmd.params or not cmd.params[0]:
            return BAD
        if cmd.params[0] in ("F", "M"):
            self._manual = cmd.params[0] == "M"
        return OK

    def _setting(self, cmd: Command) -> str:
        return OK

    _cmd_Pdt = _cmd_Mr = _cmd_Ppws = _cmd_Pc = _cmd_Pl = _cmd_Ps = _setting

    def _cmd_Ss(self, cmd: Command) -> str:
        if cmd.params:
            return BAD
        if self.hopper >= self.hopper_capacity:
            return "HOPPER FULL"
        if self._card is not None and self._card.position != "print":
            self._take_off_reader()  # encoded: its print sequence starts, nothing picked
            self._card.position = "print"
            return OK
        if self._card is not None:
            self._reject_card()
        if self._manual:
            return self._pick_manual()
        if self._feeder <= 0:
            return "FEEDER EMPTY"
        self._pick()
        return OK

    def _pick_manual(self) -> str:
        if not self._manual_slot:
            return "FEEDER EMPTY"
        self.picked += 1
        self._save_counters()
        self._card = PrintedCard(self.geometry, picked_at=time.monotonic(),
                                 chip=self._manual_slot.popleft())
        self._back = False
        return OK

    def _cmd_Sic(self, cmd: Command) -> str:
        return self._to_encoder(cmd, "contactless")

    def _cmd_Sis(self, cmd: Command) -> str:
        return self._to_encoder(cmd, "contact")

    def _to_encoder(self, cmd: Command, position: str) -> str:
        if cmd.params:
            return BAD
        if self._card is None:
            if self.hopper >= self.hopper_capacity:
                return "HOPPER FULL"
            if self._feeder <= 0:
                return "FEEDER EMPTY"
            self._pick()
        self._lay_on_reader(position)
        return OK

    def _cmd_Ser(self, cmd: Command) -> str:
        if cmd.params:
            return BAD
        if self._card is None:
            return "ERROR CDE"
        self._reject_card()
        return OK

    def _cmd_Sr(self, cmd: Command) -> str:
        return self._in_sequence(lambda: self._turn(back=False))

    def _cmd_Sv(self, cmd: Command) -> str:
        return self._in_sequence(lambda: self._turn(back=True))

    def _cmd_Db(self, cmd: Command) -> str:
        # a payload means the parser has validated the bits code
        bits = bits_per_pixel(int(cmd.params[1])) if cmd.payload is not None else 0
        return self._in_sequence(lambda: self._store(cmd.params, bits, cmd.payload))

    def _cmd_Dbc(self, cmd: Command) -> str:
        return self._in_sequence(lambda: self._store(cmd.params, 1, self._decompress(cmd)))

    def _cmd_Se(self, cmd: Command) -> str:
        if len(cmd.params) > 1:
            return BAD
        return self._in_sequence(self._start_print)

    def _in_sequence(self, action: Callable[[], str | None]) -> str:
        if self._card is None or self._card.position != "print":
            return "ERROR CDE"
        return action() or OK

    def _turn(self, *, back: bool) -> None:
        self._back = back

    def _store(self, params: tuple[str, ...], bits: int, data: bytes | None) -> str | None:
        assert self._card is not None
        if data is None or not params or params[0] not in _PANELS:
            return BAD
        key = f"{params[0]}-back" if self._back else params[0]
        self._card.panels[key], self._card.bits[key] = data, bits
        return None

    def _decompress(self, cmd: Command) -> bytes | None:
        if cmd.payload is None or cmd.params[:2] not in (("k", "2"), ("o", "2")):
            return None
        try:
            return decompress_1bit(cmd.payload, self.geometry)
        except ValueError:
            return None

    def _start_print(self) -> str:
        needed = len(self._ribbon_type)
        if self._ribbon < needed:
            self._ribbon = 0
            self._reject_card()
            return "ERROR RIBBON"
        if self.head_max_cards_per_minute and self._head_heat() > HEAD_BURST - 1:
            self._head_hot = True
            self._reject_card()
            return "ERROR HEAD"
        return _PRINTING


# -- command line: `kiosk sim printer` -------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--link", help="publish the pty at this path (a symlink)")
    parser.add_argument("--card-seconds", type=float, default=2.0,
                        help="print time per card (default 2 s; real printers take 15-30 s)")
    parser.add_argument("--feeder", type=int, default=100, help="cards in the feeder")
    parser.add_argument("--ribbon-panels", type=int, default=10_000, help="panels on the ribbon")
    parser.add_argument("--dump", metavar="DIR", help="write each printed card's panels here")
    parser.add_argument("--state", metavar="FILE",
                        help="keep the printer's counters (Rco;c, Rco;p) in FILE across runs")
    parser.add_argument("--nul-replies", action="store_true",
                        help="end replies with NUL instead of CR (as some USB links do)")
    parser.add_argument("--uids", metavar="FILE",
                        help="the blanks' chip UIDs, one hex UID per line (then seeded ones)")
    parser.add_argument("--uid-seed", type=int, default=0, help="seed of the chips' UIDs")
    parser.add_argument("--encoder-port", type=int, metavar="PORT",
                        help="the vpcd slot (TCP port) of the printer's contactless encoder")


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; the pty path is the first line of stdout."""
    if not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stderr, format="%(asctime)s %(message)s")
    log.setLevel(logging.INFO)
    printer = PrinterSimulator(
        args.link, card_seconds=args.card_seconds, feeder=args.feeder,
        ribbon_panels=args.ribbon_panels, dump_dir=args.dump, state_file=args.state,
        reply_terminator=b"\0" if args.nul_replies else b"\r",
        uids=uids_from_file(args.uids) if args.uids else None, uid_seed=args.uid_seed,
        encoder_port=args.encoder_port)
    return serve_until_signalled(printer)
