"""Where the panel's four lines go: an HD44780 over I2C, the terminal, memory, nowhere.

Owns the LCD backends and `open_lcd`, which reads the config's ``panel.lcd``:
"i2c:BUS:ADDR" (a 20 × 4 HD44780 behind a PCF8574 backpack, driven by RPLCD),
"terminal" (the same box drawn with rich, for the demo), "memory" (for tests),
"none". Every backend takes exactly four lines of exactly 20 characters; the
texts themselves come from `kiosk.devices.panel.screens`. RPLCD (and the smbus module it needs)
is imported only when an I2C display is opened, so this module imports anywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from rich.panel import Panel


log = logging.getLogger(__name__)

COLS = 20
ROWS = 4


class LcdError(ValueError):
    """The display spec is wrong or the display cannot be opened."""


class LcdBackend(Protocol):
    """Anything that shows four lines of 20 characters."""

    def write(self, lines: Sequence[str]) -> None: ...

    def close(self) -> None: ...


def check_lines(lines: Sequence[str]) -> list[str]:
    """*lines* as a list, if they are 4 lines of 20 ASCII characters; else ValueError."""
    lines = list(lines)
    if len(lines) != ROWS or any(len(line) != COLS or not line.isascii() for line in lines):
        raise ValueError(f"an LCD frame is {ROWS} ASCII lines of {COLS} characters: {lines!r}")
    return lines


class MemoryLcd:
    """Keeps the last frame in ``lines`` (and how many frames changed it) for tests::

        lcd = MemoryLcd()
        panel = DevicePanel(config, emit, lcd=lcd)
        assert lcd.lines[0].startswith("SIAP")
    """

    def __init__(self) -> None:
        self.lines: list[str] = [" " * COLS] * ROWS
        self.frames = 0
        self.closed = False

    def write(self, lines: Sequence[str]) -> None:
        lines = check_lines(lines)
        if lines != self.lines:
            self.lines = lines
            self.frames += 1

    def close(self) -> None:
        self.closed = True

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


class NullLcd(MemoryLcd):
    """No display fitted (``lcd = "none"``): frames are checked and kept, nothing is drawn."""


class TerminalLcd(MemoryLcd):
    """The 20 × 4 display drawn in the terminal with rich.

    Inside a ``rich.live.Live`` (the demo) pass the object itself, or call
    `renderable()` on each refresh: it draws nothing by itself. With ``echo=True``
    (``kiosk run`` in a terminal) each new frame is printed as a plain box.
    """

    STYLE = "bold black on dark_sea_green2"

    def __init__(self, *, echo: bool = False) -> None:
        super().__init__()
        self.echo = echo

    def write(self, lines: Sequence[str]) -> None:
        before = self.frames
        super().write(lines)
        if self.echo and self.frames != before:
            print(self.plain(), flush=True)

    def renderable(self) -> Panel:
        """The current frame as a bordered rich panel, 20 characters wide inside."""
        # rich comes with the `demo` extra, not with a station: only the demo draws this.
        from rich.panel import Panel
        from rich.text import Text

        body = Text("\n".join(self.lines), style=self.STYLE, no_wrap=True)
        return Panel(body, title="LCD", width=COLS + 4, padding=(0, 1), expand=False)

    def __rich__(self) -> Panel:
        return self.renderable()

    def plain(self) -> str:
        """The current frame in an ASCII box, for logs and dumb terminals."""
        edge = "+" + "-" * COLS + "+"
        return "\n".join([edge, *(f"|{line}|" for line in self.lines), edge])


class I2cLcd:
    """A 20 × 4 HD44780 behind a PCF8574 I2C backpack (wiring: hardware/panel.md)::

        lcd = I2cLcd(bus=1, address=0x27)
        lcd.write(lines)

    Only rows that changed are sent. An I2C error is logged and the frame is sent
    again next time, so a loose display cable never stops the station.
    """

    def __init__(self, bus: int, address: int) -> None:
        self.bus = bus
        self.address = address
        self._shown: list[str | None] = [None] * ROWS
        self._lcd = self._open()

    def _open(self) -> Any:
        try:
            from RPLCD.i2c import CharLCD
        except ImportError as exc:
            raise LcdError(f"an I2C LCD needs the 'lcd' extra: pip install 'kiosk[lcd]' ({exc})"
                           ) from exc
        try:  # the constructor initialises and clears the display
            return CharLCD("PCF8574", self.address, port=self.bus, cols=COLS, rows=ROWS,
                          charmap="A00", auto_linebreaks=False)
        except OSError as exc:
            raise LcdError(
                f"no LCD at I2C bus {self.bus} address {self.address:#04x}: {exc}") from exc

    def write(self, lines: Sequence[str]) -> None:
        lines = check_lines(lines)
        try:
            for row, line in enumerate(lines):
                if self._shown[row] != line:
                    self._lcd.cursor_pos = (row, 0)
                    self._lcd.write_string(line)
                    self._shown[row] = line
        except OSError as exc:
            log.warning("LCD write failed (will retry): %s", exc)
            self._shown = [None] * ROWS

    def close(self) -> None:
        try:
            self._lcd.close(clear=True)
        except OSError as exc:
            log.warning("LCD close failed: %s", exc)


def parse_i2c(spec: str) -> tuple[int, int]:
    """"i2c:BUS:ADDR" → (bus, address); ADDR in hex ("0x27") or decimal."""
    parts = spec.split(":")
    if len(parts) != 3 or parts[0] != "i2c":
        raise LcdError(f"panel.lcd: {spec!r} is not i2c:BUS:ADDR (e.g. i2c:1:0x27)")
    try:
        bus, address = int(parts[1], 10), int(parts[2], 0)
    except ValueError as exc:
        raise LcdError(f"panel.lcd: {spec!r}: bus and address must be numbers") from exc
    if bus < 0 or not 0x03 <= address <= 0x77:
        raise LcdError(f"panel.lcd: {spec!r}: address must be 0x03..0x77")
    return bus, address


def open_lcd(spec: str, *, echo: bool = False) -> LcdBackend:
    """The backend named by *spec*: "i2c:BUS:ADDR", "terminal", "memory" or "none".

    ``echo`` only applies to "terminal" (print each new frame).
    """
    if spec == "terminal":
        return TerminalLcd(echo=echo)
    if spec == "memory":
        return MemoryLcd()
    if spec == "none":
        return NullLcd()
    if spec.startswith("i2c:"):
        return I2cLcd(*parse_i2c(spec))
    raise LcdError(f"panel.lcd: {spec!r} must be i2c:BUS:ADDR, terminal or none")
