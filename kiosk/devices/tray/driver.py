"""The station's driver for the blank-card tray sensor board (tray-sensor.md).

Owns the serial link to the board: reading and validating its sentences, the
online/offline state, link statistics, and the three station → board commands.
Deciding what a frame means for printing (low stock, jams, ledger mismatch) is
the station core's job: the driver reports in the core's own event types
(`TrayFrame`, `TrayOnline`, `TrayOffline`, `TrayBooted` in kiosk.station.core.events).
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import serial

from kiosk.devices.tray import nmea
from kiosk.station.core.events import TrayBooted, TrayFrame, TrayOffline, TrayOnline

log = logging.getLogger(__name__)

SEQ_MODULO = 65536
MAX_LINE = 256  # far above MAX_LENGTH: a longer run without LF is noise, not a sentence
_INTEGER = re.compile(r"-?[0-9]+")


@dataclass
class TrayStats:
    """Link counters since ``start()``."""

    frames: int = 0
    bad_frames: int = 0
    lost_frames: int = 0
    last_error: str | None = None


def seq_gap(previous: int, current: int) -> int:
    """Frames lost between two sequence numbers, across the 65535 → 0 wrap.

    A jump of more than half the range is read as a board restart whose
    ``$PKSKB`` was lost (a serial line does not reorder), not as loss.
    """
    step = (current - previous) % SEQ_MODULO
    if step == 0 or step > SEQ_MODULO // 2:
        return 0
    return step - 1


def _integer(text: str, name: str, low: int, high: int) -> int:
    if not _INTEGER.fullmatch(text):
        raise ValueError(f"{name} is not an integer: {text!r}")
    value = int(text)
    if not low <= value <= high:
        raise ValueError(f"{name} out of range: {value}")
    return value


def _flag(text: str, name: str) -> bool:
    if text not in ("0", "1"):
        raise ValueError(f"{name} is not 0 or 1: {text!r}")
    return text == "1"


def parse_frame(fields: list[str], at: float) -> TrayFrame:
    """The fields of a ``$PKSKT`` sentence as a TrayFrame; ValueError if malformed."""
    if len(fields) != 6:
        raise ValueError(f"tray frame has {len(fields)} fields, want 6")
    seq, height, low, door, path, temp = fields
    return TrayFrame(
        seq=_integer(seq, "seq", 0, SEQ_MODULO - 1),
        height_um=_integer(height, "height_um", -1, 10_000_000),
        low=_flag(low, "low"),
        door_open=_flag(door, "door"),
        card_in_path=_flag(path, "path"),
        temp_c=_integer(temp, "temp_dC", -32768, 32767) / 10,
        at=at,
    )


class TrayLink:
    """Serial link to the tray board, read by a background thread.

    Usage::

        link = TrayLink("/dev/kiosk-tray", events.put)
        link.start()
        ok, reason = link.calibrate(empty_height_um=0, card_um=760)
        link.stop()

    ``on_event`` receives TrayFrame, TrayBooted, TrayOnline and TrayOffline from
    the reader thread and must return quickly. TrayOnline and TrayOffline
    alternate: TrayOnline at the first valid frame, TrayOffline once when no
    valid frame came for ``offline_after`` seconds or the port is lost (it is
    then reopened every ``reopen_every`` seconds). Bad sentences are counted in
    ``stats`` and dropped; they never close the link.
    """

    def __init__(
        self,
        url: str,
        on_event: Callable[[object], None],
        *,
        baud: int = 115200,
        offline_after: float = 2.0,
        reopen_every: float = 1.0,
    ) -> None:
        self.url = url
        self._on_event = on_event
        self._baud = baud
        self._offline_after = offline_after
        self._reopen_every = reopen_every
        self._port: serial.SerialBase | None = None
        self._port_lock = threading.Lock()  # guards _port against writes while (re)opening
        self._stats = TrayStats()
        self._stats_lock = threading.Lock()
        self._online: bool | None = None
        self._last_seq: int | None = None
        self._last_valid = 0.0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._request_lock = threading.Lock()  # one command awaits its answer at a time
        self._reply_ready = threading.Condition()
        self._awaiting: str | None = None
        self._reply: tuple[bool, str | None] | None = None

    # -- life cycle ---------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("TrayLink already started")
        self._last_valid = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="tray-link", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        with self._port_lock:
            if self._port is not None:
                self._port.cancel_read()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def stats(self) -> TrayStats:
        """A snapshot of the counters."""
        with self._stats_lock:
            return replace(self._stats)

    @property
    def connected(self) -> bool:
        """The port is open (not whether frames arrive: see TrayOnline/TrayOffline)."""
        return self._port is not None

    # -- commands -----------------------------------------------------------

    def request_status(self) -> bool:
        """Ask for one frame at once; False if the port is not open."""
        return self._send(nmea.build("PKSKC", "STATUS"))

    def ping(self, timeout: float = 2.0) -> bool:
        """True when the board answers ``$PKSKA,PING`` within *timeout* seconds."""
        return self._transact("PING", (), timeout) == (True, None)

    def calibrate(
        self, empty_height_um: int, card_um: int, timeout: float = 2.0
    ) -> tuple[bool, str | None]:
        """Send a calibration: (True, None) if acknowledged, else (False, reason)."""
        return self._transact("CAL", (empty_height_um, card_um), timeout)

    def _transact(
        self, command: str, args: tuple[int, ...], timeout: float
    ) -> tuple[bool, str | None]:
        # the reply lock is released while waiting, so the reader thread can deliver
        with self._request_lock, self._reply_ready:
            self._awaiting, self._reply = command, None
            try:
                if not self._send(nmea.build("PKSKC", command, *args)):
                    return False, "tray port not open"
                reply = self._reply_ready.wait_for(lambda: self._reply, timeout)
                return reply or (False, f"no answer to {command} within {timeout:g} s")
            finally:
                self._awaiting = None

    def _send(self, sentence: bytes) -> bool:
        with self._port_lock:
            if self._port is None:
                return False
            try:
                self._port.write(sentence)
            except (serial.SerialException, OSError) as exc:
                log.warning("tray write failed: %s", exc)  # the reader notices the loss
                return False
        return True

    # -- reader thread ------------------------------------------------------

    def _run(self) -> None:
        buffer = bytearray()
        while not self._stopping.is_set():
            port = self._port or self._open()
            if port is None:
                self._stopping.wait(self._reopen_every)
                continue
            try:
                chunk = port.read(max(1, port.in_waiting))
            except (serial.SerialException, OSError) as exc:
                self._close(f"tray port lost: {exc}")
                buffer.clear()
                continue
            buffer += chunk
            self._take_lines(buffer)
            if time.monotonic() - self._last_valid > self._offline_after:
                self._go_offline(f"no valid frame for {self._offline_after:g} s")
        self._close(None)

    def _open(self) -> serial.SerialBase | None:
        try:
            port = serial.serial_for_url(self.url, self._baud, timeout=0.1, write_timeout=1.0)
        except (serial.SerialException, OSError, ValueError) as exc:
            self._go_offline(f"cannot open {self.url}: {exc}")
            return None
        with self._port_lock:
            self._port = port
        self._last_seq = None  # whatever happened while away is not a counted gap
        return port

    def _close(self, reason: str | None) -> None:
        with self._port_lock:
            port, self._port = self._port, None
        if port is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                port.close()
        if reason is not None:
            self._go_offline(reason)

    def _take_lines(self, buffer: bytearray) -> None:
        while (end := buffer.find(b"\n")) >= 0:
            line = bytes(buffer[: end + 1])
            del buffer[: end + 1]
            start = line.rfind(b"$")
            if start > 0:  # a '$' starts a sentence: only the noise before it is lost
                self._count_bad(f"{start} bytes of noise before a sentence")
                line = line[start:]
            self._handle(line)
        if len(buffer) > MAX_LINE:
            start = buffer.rfind(b"$")  # keep what may be the start of the next sentence
            del buffer[: start if start > 0 else len(buffer)]
            self._count_bad(f"no line end within {MAX_LINE} bytes")

    def _handle(self, line: bytes) -> None:
        try:
            head, fields = nmea.parse(line)
            if head == "PKSKT":
                self._on_frame(parse_frame(fields, time.monotonic()))
            elif head == "PKSKB" and len(fields) == 2:
                self._last_seq = None  # the board counts from 0 again
                self._emit(TrayBooted(fw_version=fields[0], reset_cause=fields[1]))
            elif head in ("PKSKA", "PKSKN") and fields and fields[0] in ("PING", "CAL"):
                self._on_reply(head == "PKSKA", fields)
            else:
                raise ValueError(f"unknown sentence {head} with {len(fields)} fields")
        except ValueError as exc:  # NmeaError included
            self._count_bad(str(exc))

    def _on_frame(self, frame: TrayFrame) -> None:
        with self._stats_lock:
            self._stats.frames += 1
            if self._last_seq is not None:
                self._stats.lost_frames += seq_gap(self._last_seq, frame.seq)
        self._last_seq = frame.seq
        self._last_valid = frame.at
        if self._online is not True:
            self._online = True
            self._emit(TrayOnline())
        self._emit(frame)

    def _on_reply(self, ok: bool, fields: list[str]) -> None:
        command = fields[0]
        reason = None if ok else (",".join(fields[1:]) or "refused")
        with self._reply_ready:
            if self._awaiting == command:
                self._reply = (ok, reason)
                self._reply_ready.notify_all()

    def _count_bad(self, reason: str) -> None:
        with self._stats_lock:
            self._stats.bad_frames += 1
            self._stats.last_error = reason

    def _go_offline(self, reason: str) -> None:
        if self._online is not False:
            self._online = False
            self._emit(TrayOffline(reason))

    def _emit(self, event: object) -> None:
        try:
            self._on_event(event)
        except Exception:  # a faulty consumer must not kill the reader thread
            log.exception("tray on_event handler failed for %r", event)
