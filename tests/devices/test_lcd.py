"""LCD backends: memory, terminal (rich, also inside a Live display), none, and the I2C spec."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from rich.console import Console
from rich.live import Live

from kiosk.devices.panel.lcd import (
    I2cLcd,
    LcdError,
    MemoryLcd,
    NullLcd,
    TerminalLcd,
    check_lines,
    open_lcd,
    parse_i2c,
)

FRAME = ["SIAP          ONLINE", "Antrian: 3 kartu    ", "Stok: 250 kartu     ",
         "Habis dalam: 1j 05m "]


def console(width: int = 40) -> Console:
    return Console(file=io.StringIO(), width=width, color_system=None, record=True)


def test_memory_keeps_the_last_frame_and_counts_changes() -> None:
    lcd = MemoryLcd()
    assert lcd.lines == [" " * 20] * 4
    lcd.write(FRAME)
    lcd.write(tuple(FRAME))
    assert lcd.lines == FRAME
    assert lcd.frames == 1
    assert lcd.text.splitlines()[0] == "SIAP          ONLINE"


@pytest.mark.parametrize("bad", [
    FRAME[:3],
    [*FRAME[:3], "x" * 21],
    [*FRAME[:3], "short"],
    [*FRAME[:3], "Ö" + " " * 19],
])
def test_a_frame_must_be_four_ascii_lines_of_twenty(bad) -> None:
    with pytest.raises(ValueError, match="4 ASCII lines of 20"):
        check_lines(bad)
    with pytest.raises(ValueError):
        MemoryLcd().write(bad)


def test_terminal_draws_a_bordered_box_of_20_by_4() -> None:
    lcd = TerminalLcd()
    lcd.write(FRAME)
    out = console()
    out.print(lcd.renderable())
    drawn = out.export_text().splitlines()
    assert len(drawn) == 6  # border, four lines, border
    assert all(len(row) == 24 for row in drawn)
    for row, line in zip(drawn[1:5], FRAME, strict=True):
        assert row == f"│ {line} │"
    assert "LCD" in drawn[0]


def test_terminal_works_inside_a_live_display() -> None:
    lcd = TerminalLcd()
    out = console()
    with Live(lcd, console=out, auto_refresh=False) as live:
        lcd.write(FRAME)
        live.refresh()
        changed = ["KARTU MACET         ", *FRAME[1:]]
        lcd.write(changed)
        live.refresh()
    text = out.file.getvalue()  # not a terminal: rich writes the last frame at the end
    assert "│ KARTU MACET          │" in text
    assert "SIAP" not in text


def test_terminal_plain_fallback() -> None:
    lcd = TerminalLcd()
    lcd.write(FRAME)
    assert lcd.plain().splitlines() == [
        "+--------------------+",
        "|SIAP          ONLINE|",
        "|Antrian: 3 kartu    |",
        "|Stok: 250 kartu     |",
        "|Habis dalam: 1j 05m |",
        "+--------------------+",
    ]


def test_terminal_echo_prints_each_new_frame_once(capsys) -> None:
    lcd = open_lcd("terminal", echo=True)
    lcd.write(FRAME)
    lcd.write(FRAME)
    printed = capsys.readouterr().out
    assert printed.count("|SIAP          ONLINE|") == 1
    quiet = open_lcd("terminal")
    quiet.write(FRAME)
    assert capsys.readouterr().out == ""


def test_open_lcd_names() -> None:
    assert type(open_lcd("memory")) is MemoryLcd
    assert type(open_lcd("terminal")) is TerminalLcd
    none = open_lcd("none")
    assert isinstance(none, NullLcd)
    none.write(FRAME)
    none.close()


@pytest.mark.parametrize(("spec", "expected"), [
    ("i2c:1:0x27", (1, 0x27)), ("i2c:0:0x3f", (0, 0x3F)), ("i2c:1:39", (1, 39)),
])
def test_i2c_spec(spec, expected) -> None:
    assert parse_i2c(spec) == expected


@pytest.mark.parametrize("spec", [
    "i2c:1", "i2c:x:0x27", "i2c:1:0x27:9", "i2c:1:0x99", "i2c:1:zz", "vga", "", "Terminal",
])
def test_bad_specs_are_refused_with_the_key(spec) -> None:
    with pytest.raises(LcdError, match=r"panel\.lcd"):
        open_lcd(spec)


def test_an_absent_i2c_display_is_an_lcd_error() -> None:
    # Without smbus2 RPLCD cannot load; with it, bus 250 does not exist: both are LcdError.
    with pytest.raises(LcdError, match=r"smbus2|no LCD at I2C bus 250"):
        I2cLcd(250, 0x27)


def test_importing_the_module_does_not_load_rplcd() -> None:
    code = ("import sys, kiosk.devices.panel.lcd; "
            "assert not any(m.startswith('RPLCD') for m in sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
