"""The tray board's MicroPython firmware, run on the host.

The protocol module is plain Python and is tested as it is. The board and app
modules need MicroPython's ``machine``: a small stand-in for it (pins, an I2C
bus with a VL53L0X register file behind it, the ADC, reset causes) is put in
``sys.modules`` here, since no MicroPython runs on this machine. Every line the
firmware sends is checked with the station's own parser
(kiosk.devices.tray.nmea, kiosk.devices.tray.driver).
"""

from __future__ import annotations

import ast
import importlib
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiosk.devices.tray import nmea
from kiosk.devices.tray.driver import parse_frame
from kiosk.station.core.events import TrayFrame
from kiosk.station.core.stock import card_estimate

FIRMWARE = Path(__file__).resolve().parents[2] / "hardware" / "tray-sensor"
MODULES = ("trayproto", "vl53l0x", "trayboard", "trayapp")
LOW_STOCK, DOOR, BEAM, XSHUT = 10, 11, 12, 6


@pytest.fixture
def firmware(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.syspath_prepend(str(FIRMWARE))
    for name in MODULES:
        sys.modules.pop(name, None)
    yield
    for name in MODULES:
        sys.modules.pop(name, None)


@pytest.fixture
def proto(firmware: None) -> types.ModuleType:
    return importlib.import_module("trayproto")


class Store:
    """Calibration kept in memory, for protocol tests that don't care about files."""

    def __init__(self) -> None:
        self.saved: tuple[int, int] | None = None

    def load(self) -> tuple[int, int] | None:
        return self.saved

    def save(self, empty_height_um: int, card_um: int) -> None:
        self.saved = (empty_height_um, card_um)


def command(*fields: object) -> str:
    return nmea.build("PKSKC", *fields).decode()


def frame_of(line: bytes) -> TrayFrame:
    head, fields = nmea.parse(line)
    assert head == "PKSKT"
    return parse_frame(fields, 0.0)


# -- protocol logic (plain Python) ---------------------------------------------


def test_protocol_module_imports_nothing_board_specific() -> None:
    tree = ast.parse((FIRMWARE / "trayproto.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported == {"os"}


def test_firmware_uses_only_what_micropython_has() -> None:
    allowed = {"os", "machine", "select", "sys", "time", *MODULES}
    for source in FIRMWARE.glob("*.py"):
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            assert set(names) <= allowed, f"{source.name} imports {names}"


def test_sentences_match_the_station_codec(proto: types.ModuleType) -> None:
    assert proto.sentence("PKSKT", 12, 114000, 0, 0, 0, 312) == b"$PKSKT,12,114000,0,0,0,312*50\r\n"
    assert proto.sentence("PKSKA", "PING") == nmea.build("PKSKA", "PING")


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # proto is stateless
@given(text=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60))
def test_checksum_agrees_with_the_station(proto: types.ModuleType, text: str) -> None:
    assert proto.checksum(text) == nmea.checksum(text)


@pytest.mark.parametrize(
    ("line", "fields"),
    [
        (command("PING"), ["PING"]),
        (command("CAL", 0, 760), ["CAL", "0", "760"]),
        (command("STATUS").rstrip(), ["STATUS"]),
        ("$PKSKC,PING*7D\r\n", None),  # wrong checksum
        ("$PKSKC,PING*7c\r\n", None),  # lower-case digits
        ("PKSKC,PING*7C\r\n", None),  # no '$'
        ("$PKSKC,PING\r\n", None),  # no checksum
        (nmea.build("PKSKA", "PING").decode(), None),  # not a command
        (nmea.build("PKSKC").decode(), None),  # no command name
        ("$PKSKC,STATUS," + "X" * 80 + "*00\r\n", None),  # too long
    ],
)
def test_parse_command(proto: types.ModuleType, line: str, fields: list[str] | None) -> None:
    assert proto.parse_command(line) == fields


@pytest.mark.parametrize(
    ("args", "fault"),
    [
        (["0", "760"], None), (["200000", "200"], None), (["1200", "2000"], None),
        (["-1", "760"], "EMPTY_RANGE"), (["200001", "760"], "EMPTY_RANGE"),
        (["0", "199"], "CARD_RANGE"), (["0", "2001"], "CARD_RANGE"), (["0", "0"], "CARD_RANGE"),
        (["0"], "ARGS"), (["0", "760", "1"], "ARGS"), (["0", "7.6"], "ARGS"), (["", "760"], "ARGS"),
        (["-", "760"], "ARGS"),
    ],
)
def test_calibration_limits(proto: types.ModuleType, args: list[str], fault: str | None) -> None:
    assert proto.calibration_fault(args) == fault


def test_calibration_limits_match_the_simulator(proto: types.ModuleType) -> None:
    from kiosk.sim import tray as sim

    for args in (["0", "760"], ["-1", "760"], ["0", "199"], ["0", "2001"], ["x", "1"]):
        assert proto.calibration_fault(args) == sim.calibration_fault(args)


def test_temperature_from_the_rp2040_sensor(proto: types.ModuleType) -> None:
    assert proto.temp_dC(round(0.706 / 3.3 * 65535)) == 270  # 0.706 V is 27 °C
    assert proto.temp_dC(round(0.689 / 3.3 * 65535)) > 360  # falling voltage: warmer


def test_height_from_distance(proto: types.ModuleType) -> None:
    assert proto.height_um(180_000, 66_000) == 114_000
    assert proto.height_um(180_000, 181_000) == 0  # never negative: -1 means fault
    assert proto.height_um(180_000, None) == -1


def test_stack_filter_trims_spikes_and_averages(proto: types.ModuleType) -> None:
    stack = proto.StackFilter(size=8)
    for mm in (66, 67, 66):
        stack.add(mm)
    assert stack.distance_um() is None  # fewer than half the window
    for mm in (250, 66, 67, 66, 3):
        stack.add(mm)
    assert stack.distance_um() == round((66 + 67 + 66 + 66 + 67 + 66) * 1000 / 6)
    for _ in range(8):
        stack.add(70)
    assert stack.distance_um() == 70_000
    stack.clear()
    assert stack.distance_um() is None


def test_debounce_ignores_bounce_and_follows_a_steady_change(proto: types.ModuleType) -> None:
    switch = proto.Debounced(0, hold_ms=20)
    assert [switch.update(t, level) for t, level in ((0, 1), (5, 0), (10, 1), (25, 1))] == [0] * 4
    assert switch.update(30, 1) == 1


def test_calibration_store_round_trip(proto: types.ModuleType, tmp_path: Path) -> None:
    store = proto.CalibrationStore(str(tmp_path / "calibration.txt"))
    assert store.load() is None
    store.save(1200, 760)
    assert store.load() == (1200, 760)
    assert [p.name for p in tmp_path.iterdir()] == ["calibration.txt"]


@pytest.mark.parametrize("content", ["", "12", "a b", "0 5000", "1 2 3"])
def test_a_damaged_calibration_file_is_ignored(
    proto: types.ModuleType, tmp_path: Path, content: str
) -> None:
    (tmp_path / "calibration.txt").write_text(content)
    assert proto.CalibrationStore(str(tmp_path / "calibration.txt")).load() is None


def reading(proto: types.ModuleType, **changes: object) -> object:
    values = {"height_um": 114000, "low": False, "door": False, "path": False, "temp_dC": 312}
    values.update(changes)
    return proto.Reading(**values)


def test_frames_at_5_hz(proto: types.ModuleType) -> None:
    board = proto.TrayProtocol("1.0.0", Store())
    sent = [(t, board.poll(t, reading(proto))) for t in range(0, 1000, 10)]
    frames = [(t, frame_of(line)) for t, line in sent if line is not None]
    assert [t for t, _ in frames] == [0, 200, 400, 600, 800]
    assert [f.seq for _, f in frames] == [0, 1, 2, 3, 4]
    assert frames[0][1].height_um == 114000 and frames[0][1].temp_c == 31.2


def test_a_change_is_sent_at_once_without_shifting_the_5_hz(proto: types.ModuleType) -> None:
    board = proto.TrayProtocol("1.0.0", Store())
    assert board.poll(0, reading(proto)) is not None
    assert board.poll(50, reading(proto)) is None
    door = frame_of(board.poll(60, reading(proto, door=True)))
    assert door.door_open and door.seq == 1
    assert board.poll(70, reading(proto, door=True)) is None  # once per change
    assert board.poll(100, reading(proto, door=True, height_um=1)) is None  # height is no trigger
    assert frame_of(board.poll(200, reading(proto, door=True))).seq == 2
    for changed in ({"low": True}, {"low": True, "path": True}):
        assert board.poll(210, reading(proto, door=True, **changed)) is not None


def test_a_late_loop_keeps_the_pace_not_the_backlog(proto: types.ModuleType) -> None:
    board = proto.TrayProtocol("1.0.0", Store())
    board.poll(0, reading(proto))
    assert board.poll(1000, reading(proto)) is not None
    assert board.poll(1010, reading(proto)) is None
    assert board.poll(1200, reading(proto)) is not None


def test_sequence_wraps_at_65535(proto: types.ModuleType) -> None:
    board = proto.TrayProtocol("1.0.0", Store())
    board.seq = 65535
    assert [frame_of(board.frame(reading(proto))).seq for _ in range(2)] == [65535, 0]


def test_commands(proto: types.ModuleType, tmp_path: Path) -> None:
    store = proto.CalibrationStore(str(tmp_path / "calibration.txt"))
    board = proto.TrayProtocol("1.0.0", store)
    now = reading(proto, low=True)
    assert frame_of(board.handle(command("STATUS"), now)).low
    assert board.handle(command("PING"), now) == nmea.build("PKSKA", "PING")
    assert board.handle(command("CAL", 1200, 760), now) == nmea.build("PKSKA", "CAL")
    assert board.calibration == (1200, 760) and store.load() == (1200, 760)
    assert board.handle(command("CAL", 0, 5), now) == nmea.build("PKSKN", "CAL", "CARD_RANGE")
    assert board.calibration == (1200, 760)
    assert board.handle(command("REBOOT"), now) is None
    assert board.handle("$PKSKC,PING*00\r\n", now) is None
    assert proto.TrayProtocol("1.0.0", store).calibration == (1200, 760)  # kept across boots


def test_calibration_that_cannot_be_stored_is_refused(
    proto: types.ModuleType, tmp_path: Path
) -> None:
    store = proto.CalibrationStore(str(tmp_path / "missing-dir" / "calibration.txt"))
    board = proto.TrayProtocol("1.0.0", store)
    reply = board.handle(command("CAL", 0, 760), reading(proto))
    assert reply == nmea.build("PKSKN", "CAL", "FLASH") and board.calibration is None


# -- board and app, on a stand-in for MicroPython's machine module -----------------


class Hardware:
    """What the stand-in machine module reads: pin levels, the ToF target, ADC, reset."""

    def __init__(self) -> None:
        self.levels = {LOW_STOCK: 0, DOOR: 0, BEAM: 1}  # a card seen, door shut, beam clear
        self.distance_mm = 66
        self.tof_present = True
        self.adc_raw = round(0.706 / 3.3 * 65535)
        self.reset = 1
        self.tof_writes: list[tuple[int, int]] = []


def fake_machine(hw: Hardware) -> types.ModuleType:
    machine = types.ModuleType("machine")

    class Pin:
        IN, OUT, PULL_UP = 0, 1, 1

        def __init__(self, pin_id: int, mode: int = -1, pull: int = -1,
                     value: int | None = None) -> None:
            self.pin_id = pin_id
            if value is not None:
                hw.levels[pin_id] = value

        def value(self, level: int | None = None) -> int | None:
            if level is None:
                return hw.levels.get(self.pin_id, 1)
            hw.levels[self.pin_id] = level
            return None

    class I2C:
        def __init__(self, bus: int, sda: Pin, scl: Pin, freq: int) -> None:
            self.registers = {0xC0: 0xEE, 0x89: 0x00, 0x84: 0x11, 0x91: 0x3C}

        def _check(self, address: int) -> None:
            if address != 0x29 or not hw.tof_present or not hw.levels.get(XSHUT, 1):
                raise OSError(19, "ENODEV")

        def readfrom_mem(self, address: int, register: int, count: int) -> bytes:
            self._check(address)
            if register == 0x13:
                started = (0x00, 0x02) in hw.tof_writes
                return bytes([0x07 if started else 0x00])
            if register == 0x1E:
                return hw.distance_mm.to_bytes(2, "big")
            return bytes([self.registers.get(register, 0)])

        def writeto_mem(self, address: int, register: int, data: bytes) -> None:
            self._check(address)
            hw.tof_writes.append((register, data[0]))
            self.registers[register] = data[0]

    class ADC:
        def __init__(self, channel: int) -> None:
            assert channel == 4

        def read_u16(self) -> int:
            return hw.adc_raw

    machine.Pin, machine.I2C, machine.ADC = Pin, I2C, ADC
    machine.PWRON_RESET, machine.WDT_RESET = 1, 3
    machine.reset_cause = lambda: hw.reset
    return machine


@pytest.fixture
def hw(firmware: None, monkeypatch: pytest.MonkeyPatch) -> Hardware:
    hardware = Hardware()
    monkeypatch.setitem(sys.modules, "machine", fake_machine(hardware))
    return hardware


def run_for(board: object, start_ms: int, end_ms: int, step_ms: int = 5) -> int:
    for now in range(start_ms, end_ms, step_ms):
        board.sample(now)  # type: ignore[attr-defined]
    return end_ms


@pytest.mark.parametrize(("code", "name"), [(1, "PWRON"), (3, "WDT"), (99, "UNKNOWN")])
def test_reset_cause_by_name(hw: Hardware, code: int, name: str) -> None:
    hw.reset = code
    assert importlib.import_module("trayboard").reset_cause() == name


def test_board_reads_the_tray(hw: Hardware) -> None:
    board = importlib.import_module("trayboard").Board()
    run_for(board, 0, 100)
    start = hw.tof_writes.index((0x00, 0x02))  # back-to-back ranging started...
    assert hw.tof_writes[start - 4] == (0x91, 0x3C)  # ...after ST's stop variable was put back
    now = board.reading()
    assert (now.height_um, now.low, now.door, now.path, now.temp_dC) == (
        114000, False, False, False, 270)
    assert card_estimate(now.height_um, 0, 760) == 150
    hw.levels.update({LOW_STOCK: 1, DOOR: 1, BEAM: 0})
    run_for(board, 100, 130)
    now = board.reading()
    assert (now.low, now.door, now.path) == (True, True, True)


def test_a_missing_sensor_reads_minus_1_and_is_found_again(hw: Hardware) -> None:
    hw.tof_present = False
    board = importlib.import_module("trayboard").Board()
    now = run_for(board, 0, 300)
    assert board.reading().height_um == -1
    hw.tof_present = True
    now = run_for(board, now, now + 1200)  # the next probe, after XSHUT pulsed the sensor
    assert board.reading().height_um == 114000


def test_a_sensor_that_stops_answering_reads_minus_1(hw: Hardware) -> None:
    board = importlib.import_module("trayboard").Board()
    now = run_for(board, 0, 100)
    hw.tof_present = False
    run_for(board, now, now + 10)
    assert board.reading().height_um == -1
    assert hw.levels[XSHUT] == 0  # held in reset until the retry


def test_nothing_in_range_for_half_a_second_reads_minus_1(hw: Hardware) -> None:
    board = importlib.import_module("trayboard").Board()
    now = run_for(board, 0, 100)
    hw.distance_mm = 8190
    now = run_for(board, now, now + 400)
    assert board.reading().height_um == 114000  # a short dropout is bridged
    run_for(board, now, now + 200)
    assert board.reading().height_um == -1


def make_app(hw: Hardware, tmp_path: Path) -> tuple[object, list[bytes]]:
    trayapp = importlib.import_module("trayapp")
    trayboard = importlib.import_module("trayboard")
    trayproto = importlib.import_module("trayproto")
    store = trayproto.CalibrationStore(str(tmp_path / trayapp.CAL_FILE))
    sent: list[bytes] = []
    app = trayapp.TrayApp(trayboard.Board(), trayproto.TrayProtocol("1.0.0", store), sent.append)
    return app, sent


def test_app_boots_then_sends_frames_the_station_accepts(hw: Hardware, tmp_path: Path) -> None:
    hw.reset = 3
    app, sent = make_app(hw, tmp_path)
    app.start()
    for now in range(0, 1000, 5):
        app.step(now)
    assert nmea.parse(sent[0]) == ("PKSKB", ["1.0.0", "WDT"])
    frames = [frame_of(line) for line in sent[1:]]
    assert [f.seq for f in frames] == [0, 1, 2, 3, 4]
    assert frames[0].height_um == -1  # no distance averaged yet at power-up
    assert frames[-1].height_um == 114000 and frames[-1].temp_c == 27.0


def test_app_sends_a_door_change_at_once(hw: Hardware, tmp_path: Path) -> None:
    app, sent = make_app(hw, tmp_path)
    for now in range(0, 100, 5):
        app.step(now)
    hw.levels[DOOR] = 1
    for now in range(100, 130, 5):
        app.step(now)
    assert frame_of(sent[-1]).door_open and len(sent) == 2


def test_app_answers_commands_split_across_reads(hw: Hardware, tmp_path: Path) -> None:
    app, sent = make_app(hw, tmp_path)
    text = command("PING") + command("CAL", 0, 760)
    for cut in range(0, len(text), 7):
        app.feed(text[cut : cut + 7])
    assert sent == [nmea.build("PKSKA", "PING"), nmea.build("PKSKA", "CAL")]
    assert (tmp_path / "calibration.txt").read_text() == "0 760\n"


def test_app_copes_with_micropython_turning_cr_into_lf(hw: Hardware, tmp_path: Path) -> None:
    app, sent = make_app(hw, tmp_path)
    app.feed(command("PING").replace("\r", "\n"))
    assert sent == [nmea.build("PKSKA", "PING")]


def test_maintenance_jumper_keeps_the_firmware_out_of_the_way(
    hw: Hardware, capsys: pytest.CaptureFixture[str]
) -> None:
    hw.levels[15] = 0
    assert importlib.import_module("trayapp").run() is None
    assert "maintenance jumper fitted" in capsys.readouterr().out


def test_app_drops_an_overlong_line_and_reads_the_next(hw: Hardware, tmp_path: Path) -> None:
    app, sent = make_app(hw, tmp_path)
    app.feed("$" + "A" * 200 + command("PING"))  # the command drowns in the noise
    app.feed(command("PING"))
    assert sent == [nmea.build("PKSKA", "PING")]
