"""Simulator of the blank-card tray sensor board on a pseudo-terminal.

Owns a pretend tray (card stack, low-stock sensor, door, card path, temperature)
speaking exactly the protocol of tray-sensor.md, with fault injection for tests,
and the ``kiosk sim tray`` command glue (``add_arguments`` / ``run``).
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import re
import sys
import threading
import time
from types import TracebackType

from kiosk.devices.tray import nmea
from kiosk.sim import serve_until_signalled
from kiosk.sim.pty import PtyPort

SEQ_MODULO = 65536
PATH_PULSE_S = 0.15  # how long a picked card stays in the break-beam
_TICK_S = 0.01
EMPTY_HEIGHT_MAX_UM = 200_000  # calibration limits, the same as the board firmware's
CARD_UM_MIN, CARD_UM_MAX = 200, 2000
_INTEGER = re.compile(r"-?[0-9]+")


def calibration_fault(fields: list[str]) -> str | None:
    """Why ``CAL`` arguments are impossible (the board's reason token), or None."""
    if len(fields) != 2 or not all(_INTEGER.fullmatch(field) for field in fields):
        return "ARGS"
    empty_height_um, card_um = (int(f) for f in fields)
    if not 0 <= empty_height_um <= EMPTY_HEIGHT_MAX_UM:
        return "EMPTY_RANGE"
    if not CARD_UM_MIN <= card_um <= CARD_UM_MAX:
        return "CARD_RANGE"
    return None


class TraySimulator:
    """A tray board on a pty: ``path`` is what the station opens.

    Usage::

        with TraySimulator(cards=150) as sim:
            link = TrayLink(sim.path, events.put)
            sim.take_card()      # count - 1, path pulse: two frames at once
            sim.mute(3.0)        # no output for 3 s

    It sends ``$PKSKB`` at ``start()``, a ``$PKSKT`` frame at ``rate_hz`` and at
    once when low/door/path change, and answers STATUS, PING and CAL. While
    muted it says nothing at all (commands are still recorded in ``received``,
    as ``"PING"`` or ``"CAL,0,760"``); the sequence number does not advance.
    Only the simulator's own thread writes to the pty, so the controls never
    block, even when nobody reads the port (e.g. as the printer simulator's
    ``on_pick``).
    """

    def __init__(
        self,
        link: str | None = None,
        *,
        cards: int = 150,
        card_um: int = 760,
        empty_height_um: int = 0,
        low_at_cards: int = 20,
        rate_hz: float = 5.0,
        fw_version: str = "1.0.0",
    ) -> None:
        if cards < 0 or card_um <= 0 or rate_hz <= 0:
            raise ValueError("cards must be >= 0, card_um and rate_hz > 0")
        self._port = PtyPort(link)
        self._lock = threading.RLock()
        self._cards = cards
        self._card_um = card_um
        self._empty_height_um = empty_height_um
        self._low_at_cards = low_at_cards
        self._period = 1.0 / rate_hz
        self._fw_version = fw_version
        self._door = self._path = self._fault = False
        self._temp_dC = 312  # 31.2 °C
        self._seq = 0
        self._corrupt = 0
        self._muted_until = 0.0
        self._release_at: float | None = None
        self._sent_state: tuple[bool, bool, bool] | None = None
        self._outbox: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.received: list[str] = []
        self.calibration: tuple[int, int] | None = None  # last accepted (empty_height_um, card_um)

    @property
    def path(self) -> str:
        return self._port.path

    # -- life cycle ---------------------------------------------------------

    def start(self) -> TraySimulator:
        if self._thread is not None:
            raise RuntimeError("TraySimulator already started")
        self._write(nmea.build("PKSKB", self._fw_version, "PWRON"))
        self._thread = threading.Thread(target=self._run, name="tray-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._port.close()  # also frees a write blocked on a full pty
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> TraySimulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the tray, as tests see it --------------------------------------------

    @property
    def cards(self) -> int:
        return self._cards

    @cards.setter
    def cards(self, count: int) -> None:
        if count < 0:
            raise ValueError(f"cards must be >= 0, got {count}")
        with self._lock:
            self._cards = count
            self._frame_if_changed()

    @property
    def seq(self) -> int:
        """Sequence number of the next frame."""
        return self._seq

    @seq.setter
    def seq(self, value: int) -> None:
        with self._lock:
            self._seq = value % SEQ_MODULO

    def take_card(self) -> bool:
        """A card is picked: one fewer, a short pulse on the path. False if the tray is empty."""
        with self._lock:
            if self._cards == 0:
                return False
            self._cards -= 1
            self._path = True
            self._release_at = time.monotonic() + PATH_PULSE_S
            self._frame_if_changed()
        return True

    def set_door(self, open: bool) -> None:
        with self._lock:
            self._door = open
            self._frame_if_changed()

    def set_path(self, blocked: bool) -> None:
        """Hold the break-beam blocked (a jam) or clear it."""
        with self._lock:
            self._path, self._release_at = blocked, None
            self._frame_if_changed()

    def set_sensor_fault(self, fault: bool) -> None:
        with self._lock:
            self._fault = fault

    def corrupt_next(self, n: int) -> None:
        """The next *n* frames go out with a wrong checksum."""
        with self._lock:
            self._corrupt += n

    def skip_seq(self, n: int) -> None:
        """The next frame's sequence number jumps by *n*, as if *n* frames were lost."""
        with self._lock:
            self._seq = (self._seq + n) % SEQ_MODULO

    def mute(self, seconds: float) -> None:
        with self._lock:
            self._muted_until = time.monotonic() + seconds

    def vanish(self) -> None:
        self._port.vanish()

    def reappear(self) -> None:
        self._port.reappear()

    def send_raw(self, data: bytes) -> None:
        self._write(data)

    # -- output ---------------------------------------------------------------

    def _muted(self) -> bool:
        return time.monotonic() < self._muted_until

    def _write(self, data: bytes) -> None:
        self._outbox.put(data)

    def _flush(self) -> None:
        """Write what is queued; only the board's thread writes, so no caller ever blocks."""
        while True:
            try:
                data = self._outbox.get_nowait()
            except queue.Empty:
                return
            # blocks while nobody reads a full pty (only this thread); a stop() closing the
            # pty in the middle of that may surface as EBADF: the data is lost either way
            with contextlib.suppress(OSError, ValueError):
                self._port.write(data)

    def _state(self) -> tuple[bool, bool, bool]:
        return self._cards <= self._low_at_cards, self._door, self._path

    def _frame(self) -> bytes:
        low, door, path = self._state()
        height = -1 if self._fault else self._empty_height_um + self._cards * self._card_um
        sentence = nmea.build("PKSKT", self._seq, height, low, door, path, self._temp_dC)
        if self._corrupt > 0:
            self._corrupt -= 1
            good = sentence[-4:-2]
            sentence = sentence[:-4] + (b"00" if good != b"00" else b"FF") + b"\r\n"
        return sentence

    def _send_frame(self) -> None:
        with self._lock:
            if self._muted():
                return
            self._sent_state = self._state()
            sentence = self._frame()
            self._seq = (self._seq + 1) % SEQ_MODULO
            self._outbox.put(sentence)

    def _frame_if_changed(self) -> None:
        if self._state() != self._sent_state:
            self._send_frame()

    # -- the board's loop -----------------------------------------------------

    def _run(self) -> None:
        buffer = bytearray()
        next_due = time.monotonic()
        while not self._stopping.is_set():
            now = time.monotonic()
            self._release_path(now)
            if now >= next_due:
                self._send_frame()
                next_due += self._period
                if next_due < now:
                    next_due = now + self._period
            self._flush()
            # a short cap: what other threads queue goes out within a tick
            wait = min(_TICK_S, max(0.0, next_due - time.monotonic()))
            if not self._port.present:
                self._stopping.wait(wait)
                continue
            buffer += self._port.read(timeout=wait)
            while (end := buffer.find(b"\n")) >= 0:
                line = bytes(buffer[: end + 1])
                del buffer[: end + 1]
                self._command(line)

    def _release_path(self, now: float) -> None:
        with self._lock:
            if self._release_at is not None and now >= self._release_at:
                self._path, self._release_at = False, None
                self._frame_if_changed()

    def _command(self, line: bytes) -> None:
        try:
            head, fields = nmea.parse(line)
        except nmea.NmeaError:
            return
        if head != "PKSKC" or not fields:
            return
        self.received.append(",".join(fields))
        if self._muted():
            return
        if fields == ["STATUS"]:
            self._send_frame()
        elif fields == ["PING"]:
            self._write(nmea.build("PKSKA", "PING"))
        elif fields[0] == "CAL":
            self._calibrate(fields[1:])

    def _calibrate(self, args: list[str]) -> None:
        fault = calibration_fault(args)
        if fault is None:
            self.calibration = (int(args[0]), int(args[1]))
            self._write(nmea.build("PKSKA", "CAL"))
        else:
            self._write(nmea.build("PKSKN", "CAL", fault))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``kiosk sim tray``."""
    parser.add_argument("--link", help="also publish the pty at this path (e.g. /tmp/kiosk-tray)")
    parser.add_argument("--cards", type=int, default=150, help="cards in the tray (150)")
    parser.add_argument("--rate", type=float, default=5.0, help="frames per second (5)")


def run(args: argparse.Namespace) -> int:
    """Run until SIGINT/SIGTERM; the pty path is the first line on stdout."""
    try:
        sim = TraySimulator(args.link, cards=args.cards, rate_hz=args.rate)
    except ValueError as exc:
        print(f"kiosk sim tray: {exc}", file=sys.stderr)
        return 2
    return serve_until_signalled(sim)
