"""Tray board protocol logic: sentences, frame timing, commands, calibration file.

Pure Python that runs the same under MicroPython on the RP2040 and under CPython
in the project's tests: it imports nothing board-specific (only ``os``) and
nothing MicroPython lacks (typing, dataclasses). The wire format is the tray-sensor protocol
(see hardware/README.md); the pins and sensors live in trayboard.py.
"""

import os

PERIOD_MS = 200  # 5 Hz
SEQ_MODULO = 65536
MAX_SENTENCE = 82
EMPTY_HEIGHT_MAX_UM = 200000  # calibration limits, the same as the simulator's
CARD_UM_MIN = 200
CARD_UM_MAX = 2000


def checksum(body):
    """XOR of the characters between '$' and '*', as two upper-case hex digits."""
    value = 0
    for char in body:
        value ^= ord(char)
    return f"{value:02X}"


def sentence(*fields):
    """One sentence as bytes with checksum and CRLF, e.g. sentence("PKSKA", "PING")."""
    body = ",".join(str(field) for field in fields)
    return f"${body}*{checksum(body)}\r\n".encode()


def parse_command(line):
    """The fields after ``PKSKC`` of a valid station command, or None for anything else."""
    line = line.strip()
    if len(line) + 2 > MAX_SENTENCE or not line.startswith("$") or line.count("*") != 1:
        return None
    body, given = line[1:].split("*")
    if given != checksum(body):
        return None
    fields = body.split(",")
    if fields[0] != "PKSKC" or len(fields) < 2:
        return None
    return fields[1:]


def _is_integer(text):
    digits = text[1:] if text.startswith("-") else text
    return len(digits) > 0 and all("0" <= char <= "9" for char in digits)


def calibration_fault(args):
    """The ``$PKSKN,CAL,<reason>`` reason for impossible CAL arguments, or None."""
    if len(args) != 2 or not _is_integer(args[0]) or not _is_integer(args[1]):
        return "ARGS"
    if not 0 <= int(args[0]) <= EMPTY_HEIGHT_MAX_UM:
        return "EMPTY_RANGE"
    if not CARD_UM_MIN <= int(args[1]) <= CARD_UM_MAX:
        return "CARD_RANGE"
    return None


def temp_dC(raw_u16):
    """RP2040 internal sensor (ADC 4, 3.3 V reference) in tenths of °C.

    From the RP2040 datasheet: T = 27 - (V - 0.706) / 0.001721.
    """
    volts = raw_u16 * 3.3 / 65535
    return round((27 - (volts - 0.706) / 0.001721) * 10)


def height_um(floor_um, distance_um):
    """Stack height from the sensor's distance to its top; -1 for no reading."""
    if distance_um is None:
        return -1
    return max(0, floor_um - distance_um)  # never below 0: -1 must stay unambiguous


class StackFilter:
    """Trimmed mean of the last ``size`` distance samples, in micrometres.

    The sensor counts whole millimetres and a card is 0.76 mm: averaging the
    noisy samples gives the finer figure; dropping the extremes sheds spikes.
    """

    def __init__(self, size=8):
        self.size = size
        self.samples = []

    def add(self, distance_mm):
        self.samples.append(distance_mm)
        if len(self.samples) > self.size:
            self.samples.pop(0)

    def clear(self):
        self.samples = []

    def distance_um(self):
        if len(self.samples) < self.size // 2:
            return None
        ordered = sorted(self.samples)
        if len(ordered) > 2:
            ordered = ordered[1:-1]
        return round(sum(ordered) * 1000 / len(ordered))


class Debounced:
    """A digital input that changes only after ``hold_ms`` of a steady new level."""

    def __init__(self, level, hold_ms=20):
        self.value = level
        self.hold_ms = hold_ms
        self._candidate = level
        self._since = None

    def update(self, now_ms, level):
        if level == self.value:
            self._since = None
        elif level != self._candidate or self._since is None:
            self._candidate, self._since = level, now_ms
        elif now_ms - self._since >= self.hold_ms:
            self.value, self._since = level, None
        return self.value


class Reading:
    """What the sensors say right now."""

    __slots__ = ("door", "height_um", "low", "path", "temp_dC")

    def __init__(self, height_um, low, door, path, temp_dC):
        self.height_um = height_um
        self.low = low
        self.door = door
        self.path = path
        self.temp_dC = temp_dC


class CalibrationStore:
    """The last accepted calibration, one line ``<empty_height_um> <card_um>`` in a file.

    Written to a temporary file and renamed, so a power cut leaves the old or
    the new calibration, never half of one.
    """

    def __init__(self, path):
        self.path = path

    def load(self):
        try:
            with open(self.path) as stored:
                parts = stored.read().split()
        except OSError:
            return None
        if len(parts) != 2 or calibration_fault(parts) is not None:
            return None
        return int(parts[0]), int(parts[1])

    def save(self, empty_height_um, card_um):
        temporary = self.path + ".tmp"
        with open(temporary, "w") as stored:
            stored.write(f"{empty_height_um} {card_um}\n")
        os.rename(temporary, self.path)


class TrayProtocol:
    """The board's side of the protocol, driven by the main loop.

    ``boot`` gives the ``$PKSKB`` line; ``poll`` gives a ``$PKSKT`` frame every
    PERIOD_MS and at once when low, door or path change; ``handle`` answers a
    station command line. All return bytes to send, or None.
    """

    def __init__(self, fw_version, store):
        self.fw_version = fw_version
        self.store = store
        self.calibration = store.load()
        self.seq = 0
        self._next_due = None
        self._sent_state = None

    def boot(self, reset_cause):
        return sentence("PKSKB", self.fw_version, reset_cause)

    def frame(self, reading):
        """A frame now, whatever the schedule (STATUS uses this too)."""
        self._sent_state = (reading.low, reading.door, reading.path)
        line = sentence(
            "PKSKT", self.seq, reading.height_um, int(reading.low), int(reading.door),
            int(reading.path), reading.temp_dC,
        )
        self.seq = (self.seq + 1) % SEQ_MODULO
        return line

    def poll(self, now_ms, reading):
        if self._next_due is None or now_ms >= self._next_due:
            due = now_ms if self._next_due is None else self._next_due
            self._next_due = due + PERIOD_MS
            if self._next_due <= now_ms:  # fell behind: keep the pace, not the backlog
                self._next_due = now_ms + PERIOD_MS
            return self.frame(reading)
        if (reading.low, reading.door, reading.path) != self._sent_state:
            return self.frame(reading)
        return None

    def handle(self, line, reading):
        fields = parse_command(line)
        if fields is None:
            return None
        if fields == ["STATUS"]:
            return self.frame(reading)
        if fields == ["PING"]:
            return sentence("PKSKA", "PING")
        if fields[0] == "CAL":
            return self._calibrate(fields[1:])
        return None

    def _calibrate(self, args):
        fault = calibration_fault(args)
        if fault is not None:
            return sentence("PKSKN", "CAL", fault)
        try:
            self.store.save(int(args[0]), int(args[1]))
        except OSError:
            return sentence("PKSKN", "CAL", "FLASH")
        self.calibration = (int(args[0]), int(args[1]))
        return sentence("PKSKA", "CAL")
