"""The card-printer simulator, driven through a real pyserial port on its pty."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import serial
from PIL import Image

from kiosk.devices.printer.evolis import protocol as evolis
from kiosk.devices.printer.evolis.protocol import Geometry, command
from kiosk.sim.printer import PrinterSimulator

FIXTURES = Path(__file__).parents[1] / "fixtures"
GEOMETRY = Geometry()


def wait_until(condition: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def ask(port: serial.SerialBase, frame: bytes, terminator: bytes = b"\r") -> str:
    port.write(frame)
    raw = port.read_until(terminator)
    assert raw.endswith(terminator), f"no reply to {frame[:16]!r}"
    return evolis.decode_reply(raw)


def open_port(path: str) -> serial.SerialBase:
    return serial.serial_for_url(path, 115200, timeout=2)


@pytest.fixture
def printer() -> Iterator[PrinterSimulator]:
    with PrinterSimulator(feeder=5) as sim:
        yield sim


@pytest.fixture
def port(printer: PrinterSimulator) -> Iterator[serial.SerialBase]:
    handle = open_port(printer.path)
    yield handle
    handle.close()


def panel_data(bits: int, seed: int) -> bytes:
    """Random panel bytes with CR and ESC in them, as real bitmaps have."""
    data = bytearray(random.Random(seed).randbytes(GEOMETRY.panel_bytes(bits)))
    data[:4] = b"\r\x1b\r\x1b"
    return bytes(data)


YMCKO = {"y": (32, panel_data(5, 1)), "m": (32, panel_data(5, 2)), "c": (32, panel_data(5, 3)),
         "k": (2, panel_data(1, 4)), "o": (2, b"\xff" * GEOMETRY.panel_bytes(1))}


def card_frames(panels: dict[str, tuple[int, bytes]] = YMCKO) -> list[bytes]:
    downloads = [evolis.download(p, code, data) for p, (code, data) in panels.items()]
    return [command("Pem", 2), command("Pr", "ymcko"), command("Pmi", "F"), command("Ss"),
            command("Sr"), *downloads, command("Se"), command("Pem", 0)]


def start_card(port: serial.SerialBase) -> None:
    for frame in card_frames()[:5]:
        assert ask(port, frame) == "OK"


# -- the real captures and a full card --------------------------------------------------


@pytest.mark.parametrize(
    ("name", "black"),
    [("card-black.prn", 656_383), ("card-white.prn", 3_827), ("evolis-card-text.prn", 84_881)],
)
def test_capture_prints_one_card(printer: PrinterSimulator, port: serial.SerialBase,
                                 name: str, black: int) -> None:
    port.write((FIXTURES / name).read_bytes())
    replies = [evolis.decode_reply(port.read_until(b"\r")) for _ in range(10)]
    assert replies == ["OK"] * 10
    port.timeout = 0.1
    assert port.read(1) == b""  # nothing answered for the NUL padding
    assert printer.printed == 1 and len(printer.cards) == 1
    assert printer.cards[0].bits == {"k": 1}
    assert printer.cards[0].black_pixels("k") == black


def test_full_ymcko_card(printer: PrinterSimulator, port: serial.SerialBase) -> None:
    before = time.monotonic()
    for frame in card_frames():
        assert ask(port, frame) == "OK", frame[:12]
    card = printer.cards[0]
    assert card.panels == {panel: data for panel, (_, data) in YMCKO.items()}
    assert card.bits == {"y": 5, "m": 5, "c": 5, "k": 1, "o": 1}
    assert card.black_pixels("o") == GEOMETRY.width * GEOMETRY.height
    assert card.printed_at is not None and before < card.picked_at <= card.printed_at
    assert printer.commands == ["Pem", "Pr", "Pmi", "Ss", "Sr", "Db", "Db", "Db", "Db", "Db",
                                "Se", "Pem"]
    assert len(printer.job_first_byte_at) == 1 and before < printer.job_first_byte_at[0]
    assert printer.job_first_byte_at[0] < card.picked_at
    assert (printer.printed, printer.picked, printer.rejected) == (1, 1, 0)
    assert printer.ribbon_panels == 10_000 - 5 and printer.feeder == 4
    assert [ask(port, command("Rco", c)) for c in "pc"] == ["1", "1"]


def test_compressed_panel_is_stored_decompressed(printer: PrinterSimulator,
                                                 port: serial.SerialBase) -> None:
    packed = panel_data(1, 9)
    start_card(port)
    assert ask(port, evolis.download_compressed("k", evolis.compress_1bit(packed))) == "OK"
    assert ask(port, command("Sv")) == "OK"
    assert ask(port, evolis.download("k", 2, YMCKO["k"][1])) == "OK"
    assert ask(port, command("Se", 1)) == "OK"
    assert printer.cards[0].panels == {"k": packed, "k-back": YMCKO["k"][1]}


def test_panel_images_and_dump(tmp_path: Path) -> None:
    with PrinterSimulator(dump_dir=str(tmp_path)) as printer, open_port(printer.path) as port:
        for frame in card_frames():
            assert ask(port, frame) == "OK"
        card = printer.cards[0]
        assert wait_until(lambda: (tmp_path / "card-0001-o.pbm").exists())
        assert wait_until(lambda: len(list(tmp_path.iterdir())) == 5)
    assert (tmp_path / "card-0001-k.pbm").read_bytes().startswith(b"P4")
    with Image.open(tmp_path / "card-0001-k.pbm") as k:
        assert k.size == (648, 1016)
        assert k.histogram()[0] == card.black_pixels("k")
    with Image.open(tmp_path / "card-0001-y.pgm") as y:
        assert y.mode == "L" and y.size == (648, 1016)
        first = YMCKO["y"][1][0] >> 3  # first 5-bit level: ink, shown inverted
        assert y.getpixel((0, 0)) == 255 - first * 255 // 31


def test_card_present_and_reads(printer: PrinterSimulator, port: serial.SerialBase) -> None:
    for read in ("Rfv", "Rsn", "Rtp"):
        reply = ask(port, command(read))
        assert reply and reply not in evolis.ERROR_REASONS
    assert ask(port, command("Rlr", "p")) == "0"
    start_card(port)
    assert ask(port, command("Rlr", "p")) == "1"


# -- protocol errors --------------------------------------------------------------------


def test_unknown_and_bad_commands(printer: PrinterSimulator, port: serial.SerialBase) -> None:
    assert ask(port, command("Zz")) == "ERROR CDE"
    assert ask(port, command("Pem", 7)) == "ERROR PARAMETRES"
    assert ask(port, command("Sk", "x")) == "ERROR PARAMETRES"
    assert ask(port, command("Se")) == "ERROR CDE"  # no card in sequence
    start_card(port)
    assert ask(port, b"\x1bDbc;k;2;12x;\r") == "ERROR PARAMETRES"
    assert ask(port, evolis.download_compressed("k", b"\x00" * 10)) == "ERROR PARAMETRES"
    assert ask(port, b"\x00\x00" + command("Se")) == "OK"


def test_feeder_empty_at_ss() -> None:
    with PrinterSimulator(feeder=0, feeder_near_empty=2) as printer, \
            open_port(printer.path) as port:
        assert ask(port, command("Sk", "f")) == "1"
        assert ask(port, command("Ss")) == "FEEDER EMPTY"
        printer.load_cards(2)
        assert ask(port, command("Sk", "f")) == "0"
        assert ask(port, command("Sk", "w")) == "1"
        assert ask(port, command("Ss")) == "OK"
        assert printer.feeder == 1 and printer.picked == 1


def test_restarted_sequence_rejects_the_card_inside(printer: PrinterSimulator,
                                                    port: serial.SerialBase) -> None:
    picks: list[int] = []
    printer.on_pick = lambda: picks.append(printer.picked)
    start_card(port)
    assert ask(port, command("Ss")) == "OK"
    assert (printer.picked, printer.rejected, picks) == (2, 1, [1, 2])


def test_hopper_full() -> None:
    with PrinterSimulator(hopper_capacity=1) as printer, open_port(printer.path) as port:
        for frame in card_frames():
            assert ask(port, frame) == "OK"
        assert ask(port, command("Ss")) == "HOPPER FULL"
        printer.empty_hopper()
        assert ask(port, command("Ss")) == "OK"


# -- blocking faults ----------------------------------------------------------------------


def test_injected_jam_blocks_until_cleared(printer: PrinterSimulator,
                                           port: serial.SerialBase) -> None:
    printer.inject("Se", "CARD JAM")
    start_card(port)
    assert ask(port, command("Se")) == "CARD JAM"
    assert printer.fault == "CARD JAM"
    for frame in (command("Pem", 0), command("Ss"), evolis.download("k", 2, YMCKO["k"][1])):
        assert ask(port, frame) == "CARD JAM"
    assert ask(port, command("Rlr", "p")) == "1"
    assert ask(port, command("Sk", "f")) == "0"
    assert ask(port, command("Rco", "p")) == "0"
    printer.clear_jam()
    assert printer.fault is None
    assert ask(port, command("Rlr", "p")) == "0"
    assert ask(port, command("Pem", 0)) == "OK"
    assert (printer.printed, printer.picked, printer.rejected) == (0, 1, 1)


def test_injection_counts_and_checks(printer: PrinterSimulator,
                                     port: serial.SerialBase) -> None:
    with pytest.raises(ValueError):
        printer.inject("Ss", "ON FIRE")
    printer.inject("Ss", "FEEDER EMPTY", times=2)
    assert [ask(port, command("Ss")) for _ in range(3)] == ["FEEDER EMPTY"] * 2 + ["OK"]
    assert printer.picked == 1


def test_cover_open_blocks_settings_not_reads(printer: PrinterSimulator,
                                              port: serial.SerialBase) -> None:
    printer.open_cover()
    assert ask(port, command("Pem", 2)) == "COVER OPEN"
    assert ask(port, command("Rfv")) not in evolis.ERROR_REASONS
    printer.close_cover()
    assert ask(port, command("Pem", 2)) == "OK"


def test_ribbon_runs_out() -> None:
    with PrinterSimulator(ribbon_panels=7) as printer, open_port(printer.path) as port:
        for frame in card_frames():
            assert ask(port, frame) == "OK"
        start_card(port)
        assert ask(port, command("Se")) == "ERROR RIBBON"
        assert (printer.printed, printer.rejected, printer.ribbon_panels) == (1, 1, 0)
        assert ask(port, command("Pem", 2)) == "ERROR RIBBON"
        printer.load_ribbon(100)
        assert ask(port, command("Pem", 2)) == "OK"


def test_hot_head_refuses_cards_until_cooled() -> None:
    with PrinterSimulator(head_max_cards_per_minute=60) as printer, \
            open_port(printer.path) as port:
        replies = []
        for _ in range(4):
            assert ask(port, command("Ss")) == "OK"
            replies.append(ask(port, command("Se")))
        assert replies == ["OK", "OK", "OK", "ERROR HEAD"]
        assert ask(port, command("Ss")) == "ERROR HEAD"
        assert wait_until(lambda: ask(port, command("Ss")) == "OK", timeout=2)
        assert printer.rejected == 1


# -- link faults -------------------------------------------------------------------------


def test_no_reply(printer: PrinterSimulator, port: serial.SerialBase) -> None:
    printer.inject("Rfv", "no-reply")
    port.write(command("Rfv"))
    port.timeout = 0.2
    assert port.read(1) == b""
    port.timeout = 2
    assert ask(port, command("Rfv")) not in evolis.ERROR_REASONS


def test_split_reply(printer: PrinterSimulator, port: serial.SerialBase) -> None:
    printer.inject("Pem", "split")
    port.write(command("Pem", 2))
    arrivals = []
    for _ in range(3):
        arrivals.append((port.read(1), time.monotonic()))
    assert b"".join(byte for byte, _ in arrivals) == b"OK\r"
    assert arrivals[-1][1] - arrivals[0][1] >= 0.04


def test_garbage_after_reply(printer: PrinterSimulator, port: serial.SerialBase) -> None:
    printer.inject("Pem", "garbage")
    assert ask(port, command("Pem", 2)) == "OK"
    port.timeout = 0.1
    noise = port.read(64)
    assert 3 <= len(noise) <= 8 and min(noise) >= 0x80
    assert ask(port, command("Pem", 0)) == "OK"


def test_vanish_and_reappear_under_the_same_path(tmp_path: Path) -> None:
    link = str(tmp_path / "kiosk-printer")
    with PrinterSimulator(link) as printer:
        printer.inject("Pem", "vanish", seconds=0.3)
        port = open_port(link)
        port.write(command("Pem", 2))
        with pytest.raises(serial.SerialException):
            port.read(1)
        port.close()
        assert not os.path.exists(link)
        assert wait_until(lambda: os.path.exists(link))
        with open_port(link) as again:
            assert ask(again, command("Pem", 2)) == "OK"
        printer.vanish()
        assert not os.path.exists(link)
        printer.reappear()
        with open_port(link) as again:
            assert ask(again, command("Rlr", "p")) == "0"


def test_incomplete_download_times_out(printer: PrinterSimulator,
                                       port: serial.SerialBase) -> None:
    printer.receive_timeout = 0.2
    start_card(port)
    port.write(evolis.download("k", 2, YMCKO["k"][1])[:1000])
    assert evolis.decode_reply(port.read_until(b"\r")) == "ERROR TIME OUT"
    assert ask(port, command("Rlr", "p")) == "1"


def test_nul_reply_terminator() -> None:
    with PrinterSimulator(reply_terminator=b"\x00") as printer, \
            open_port(printer.path) as port:
        port.write(command("Pem", 2))
        assert port.read_until(b"\x00") == b"OK\x00"


def test_command_line_prints_path_first_and_stops_on_sigterm() -> None:
    script = ("import argparse, sys; from kiosk.sim import printer as p; "
              "a = argparse.ArgumentParser(); p.add_arguments(a); "
              "sys.exit(p.run(a.parse_args(sys.argv[1:])))")
    proc = subprocess.Popen([sys.executable, "-c", script, "--card-seconds", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        path = proc.stdout.readline().strip()
        with open_port(path) as port:
            assert ask(port, command("Pem", 2)) == "OK"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        assert proc.stderr is not None and "Pem;2 -> OK" in proc.stderr.read()
    finally:
        proc.kill()
