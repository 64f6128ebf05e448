"""The device panel on MockFactory: buttons and holds, the LCD, the lights, the buzzer."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from dataclasses import replace

import pytest
from gpiozero.exc import GPIOPinInUse
from gpiozero.pins.mock import MockFactory

from kiosk.devices.panel.buttons import DevicePanel, PanelTiming
from kiosk.devices.panel.lcd import MemoryLcd
from kiosk.station.config import PanelSection
from kiosk.station.core.events import OperatorIntent, PanelView

CONFIG = PanelSection()
PINS = {"pause": CONFIG.button_pause, "ok": CONFIG.button_ok, "menu": CONFIG.button_menu,
        "extra": CONFIG.button_extra}
LEDS = {"green": CONFIG.led_green, "amber": CONFIG.led_amber, "red": CONFIG.led_red}
# A press lasts microseconds here, far shorter than hold_s: it never turns into a hold.
TIMING = PanelTiming(hold_s=0.25, blink_s=0.01, beep_s=0.01, notice_s=30)

READY = PanelView("idle", ("none",), queue_pending=0, stock_remaining=250,
                  broker_connected=True, tray_online=True)
PRINTING = replace(READY, printer_state="processing", queue_pending=4, stock_remaining=120,
                   minutes_to_empty=75, current_record="3210-2024-000123",
                   current_name_masked="B**** S*******")
JAM = replace(READY, printer_state="stopped", reasons=("media-jam-error",))
EMPTY = replace(READY, printer_state="stopped", reasons=("media-empty-error",), stock_remaining=0)
UNCERTAIN = replace(READY, printer_state="stopped", reasons=("uncertain",),
                    uncertain=("3210-2024-000122", "3210-2024-000130"))
OFFLINE = replace(READY, broker_connected=False)
PRINTER_OFF = replace(READY, printer_state="stopped", reasons=("connecting-to-device",))
LOW = replace(READY, reasons=("media-low-warning",), stock_remaining=30)


def wait_until(predicate: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


class Rig:
    """A panel on mock pins, with the events it emitted and the LCD it drew."""

    def __init__(self, config: PanelSection = CONFIG, timing: PanelTiming = TIMING) -> None:
        self.factory = MockFactory()
        self.events: queue.Queue = queue.Queue()
        self.lcd = MemoryLcd()
        self.panel = DevicePanel(config, self.events.put, lcd=self.lcd, pin_factory=self.factory,
                                 timing=timing, ip_lookup=lambda: "192.168.1.50")

    def pin(self, number: int):
        return self.factory.pin(number)

    def press(self, name: str) -> None:
        self.pin(PINS[name]).drive_low()
        self.pin(PINS[name]).drive_high()

    def hold(self, name: str, until: Callable[[], bool]) -> None:
        self.pin(PINS[name]).drive_low()
        try:
            assert wait_until(until), f"holding {name} did nothing"
        finally:
            self.pin(PINS[name]).drive_high()

    def intents(self) -> list[OperatorIntent]:
        found = []
        while not self.events.empty():
            found.append(self.events.get_nowait())
        return found

    def kinds(self) -> list[str]:
        return [intent.kind for intent in self.intents()]

    def emitted(self) -> bool:
        return not self.events.empty()


@pytest.fixture
def rig():
    made = Rig()
    yield made
    made.panel.close()


def test_splash_before_the_first_view(rig: Rig) -> None:
    assert rig.lcd.lines[:2] == ["KIOS CETAK E-KTP    ", "Memulai...          "]
    rig.press("menu")
    assert rig.lcd.lines[0] == "KIOS CETAK E-KTP    "


def test_pause_acts_when_let_go(rig: Rig) -> None:
    rig.panel.show(READY)
    rig.pin(PINS["pause"]).drive_low()
    assert rig.intents() == []
    rig.pin(PINS["pause"]).drive_high()
    assert rig.intents() == [OperatorIntent("pause-toggle")]


def test_ok_press_retries(rig: Rig) -> None:
    rig.panel.show(READY)
    rig.press("ok")
    assert rig.intents() == [OperatorIntent("retry")]


def test_menu_steps_through_the_screens(rig: Rig) -> None:
    rig.panel.show(READY)
    titles = []
    for _ in range(4):
        titles.append(rig.lcd.lines[0])
        rig.press("menu")
    assert titles == ["SIAP          ONLINE", "KARTU SEKARANG      ", "JARINGAN            ",
                      "SIAP          ONLINE"]
    assert rig.intents() == []


def test_a_new_fault_takes_the_screen_once(rig: Rig) -> None:
    rig.panel.show(READY)
    rig.press("menu")
    rig.panel.show(JAM)
    assert rig.panel.screen == "fault"
    rig.press("menu")
    assert rig.panel.screen == "status"
    rig.panel.show(replace(JAM, queue_pending=3))  # the same fault: no jump back
    assert rig.panel.screen == "status"
    rig.press("menu")
    rig.press("menu")
    rig.press("menu")
    assert rig.panel.screen == "fault"  # MENU reaches it while it lasts
    rig.panel.show(READY)
    assert rig.panel.screen == "status"


@pytest.mark.parametrize(("view", "lines"), [
    (READY, ("SIAP          ONLINE", "Antrian: 0 kartu    ", "Stok: 250 kartu     ",
             "Habis dalam: -      ")),
    (PRINTING, ("MENCETAK      ONLINE", "Antrian: 4 kartu    ", "Stok: 120 kartu     ",
                "Habis dalam: 1j 15m ")),
    (JAM, ("KARTU MACET         ", "Buka tutup printer, ", "keluarkan kartu,    ",
           "tutup, tekan OK     ")),
    (EMPTY, ("KARTU BLANKO HABIS  ", "Isi kartu blanko,   ", "tahan ULANG 3 detik ",
             "lalu isi jumlahnya  ")),
    (UNCERTAIN, ("KARTU TAK PASTI  1/2", "3210-2024-000122    ", "Kartu jadi: tahan OK",
                 "Tidak: tahan ULANG  ")),
    (OFFLINE, ("SIAP         OFFLINE", "Antrian: 0 kartu    ", "Stok: 250 kartu     ",
               "Habis dalam: -      ")),
    (PRINTER_OFF, ("MENGHUBUNGI PRINTER ", "Nyalakan printer,   ", "periksa kabel USB,  ",
                   "tunggu sebentar     ")),
], ids=["ready", "printing", "jam", "empty", "uncertain", "offline", "printer-offline"])
def test_lcd_shows_each_state(rig: Rig, view: PanelView, lines: tuple[str, ...]) -> None:
    rig.panel.show(view)
    assert tuple(rig.lcd.lines) == lines


def test_english_is_selectable() -> None:
    rig = Rig(replace(CONFIG, language="en"))
    try:
        rig.panel.show(JAM)
        assert rig.lcd.lines[0] == "CARD JAM            "
        rig.press("menu")
        assert rig.lcd.lines[0] == "FAULT         ONLINE"
    finally:
        rig.panel.close()


def test_network_screen_shows_the_address(rig: Rig) -> None:
    rig.panel.show(OFFLINE)
    rig.press("menu")
    rig.press("menu")
    assert rig.lcd.lines[:3] == ["JARINGAN            ", "IP: 192.168.1.50    ",
                                 "Server: TERPUTUS    "]


def test_hold_ok_on_the_uncertain_screen_confirms_the_card_shown(rig: Rig) -> None:
    rig.panel.show(UNCERTAIN)
    rig.hold("ok", rig.emitted)
    assert rig.intents() == [OperatorIntent("confirm-uncertain", record_id="3210-2024-000122")]
    assert rig.lcd.lines[3] == "Dicatat: kartu jadi "


def test_hold_extra_on_the_uncertain_screen_asks_for_a_reprint(rig: Rig) -> None:
    rig.panel.show(UNCERTAIN)
    rig.hold("extra", rig.emitted)
    assert rig.intents() == [OperatorIntent("reprint-uncertain", record_id="3210-2024-000122")]
    assert rig.panel.screen == "uncertain"


def test_hold_ok_elsewhere_counts_as_a_press(rig: Rig) -> None:
    rig.panel.show(UNCERTAIN)
    rig.press("menu")  # status screen: a hold cannot confirm a card nobody sees
    rig.hold("ok", rig.emitted)
    assert rig.intents() == [OperatorIntent("retry")]


def test_hold_menu_prints_the_shift_report_and_stays(rig: Rig) -> None:
    rig.panel.show(READY)
    rig.hold("menu", rig.emitted)
    assert rig.intents() == [OperatorIntent("shift-report")]
    assert rig.panel.screen == "status"
    assert rig.lcd.lines[3] == "Mencetak laporan... "


def test_extra_press_only_hints_at_holding(rig: Rig) -> None:
    rig.panel.show(READY)
    rig.press("extra")
    assert rig.intents() == []
    assert rig.lcd.lines[3] == "Tahan tombol 3 detik"


def test_refill_entry_counts_and_books(rig: Rig) -> None:
    rig.panel.show(EMPTY)
    rig.hold("extra", lambda: rig.panel.screen == "refill")
    assert rig.lcd.lines == ["ISI KARTU BLANKO    ", "Jumlah: 0           ",
                             "JEDA -10  MENU +10  ", "ULANG +1  OK batal  "]
    for name in ("menu", "menu", "extra", "pause"):
        rig.press(name)
    assert rig.panel.refill_count == 11
    rig.hold("menu", lambda: rig.panel.refill_count == 111)
    rig.hold("pause", lambda: rig.panel.refill_count == 11)
    assert rig.lcd.lines[1] == "Jumlah: 11          "
    assert rig.kinds() == []  # no pause, no report while counting
    rig.press("ok")
    assert rig.intents() == [OperatorIntent("silence"), OperatorIntent("refill", count=11)]
    assert rig.panel.screen == "fault"
    assert rig.lcd.lines[3] == "Dicatat +11 kartu   "


def test_refill_count_stays_within_0_and_9999(rig: Rig) -> None:
    rig.panel.show(READY)
    rig.hold("extra", lambda: rig.panel.screen == "refill")
    rig.press("pause")
    assert rig.panel.refill_count == 0
    for _ in range(1001):
        rig.press("menu")
    assert rig.panel.refill_count == 9999


def test_refill_at_zero_cancels(rig: Rig) -> None:
    rig.panel.show(READY)
    rig.hold("extra", lambda: rig.panel.screen == "refill")
    rig.press("ok")
    assert rig.intents() == []
    assert rig.panel.screen == "status"
    assert rig.lcd.lines[3] == "Isi dibatalkan      "


def test_a_fault_does_not_break_into_refill_entry(rig: Rig) -> None:
    rig.panel.show(READY)
    rig.hold("extra", lambda: rig.panel.screen == "refill")
    rig.panel.show(JAM)
    assert rig.panel.screen == "refill"
    assert rig.panel.lights.pattern.red == "on"


def test_buzzer_sounds_on_jam_and_empty_and_ok_silences_it(rig: Rig) -> None:
    buzzer = rig.pin(CONFIG.buzzer)
    rig.panel.show(READY)
    assert not buzzer.state
    rig.panel.show(JAM)
    assert wait_until(lambda: toggled(buzzer))
    rig.press("ok")
    assert rig.kinds() == ["silence", "retry"]
    assert rig.panel.lights.pattern.buzzer == "off"
    buzzer.clear_states()
    rig.panel.show(replace(JAM, queue_pending=2))  # the same jam stays silenced
    time.sleep(0.05)
    assert not buzzer.state and not toggled(buzzer)
    rig.panel.show(replace(JAM, reasons=("media-jam-error", "media-empty-error")))
    assert wait_until(lambda: toggled(buzzer))  # a new alarm sounds again
    rig.panel.show(READY)
    assert rig.panel.lights.pattern.buzzer == "off" and not buzzer.state
    rig.press("ok")
    assert rig.kinds() == ["retry"]  # nothing to silence


def test_other_faults_do_not_sound_the_buzzer(rig: Rig) -> None:
    rig.panel.show(replace(READY, reasons=("cover-open-error",)))
    assert rig.panel.lights.pattern.buzzer == "off"
    assert not rig.pin(CONFIG.buzzer).state


@pytest.mark.parametrize(("view", "expected"), [
    (READY, ("on", "off", "off")),
    (PRINTING, ("off", "on", "off")),
    (JAM, ("off", "off", "on")),
    (EMPTY, ("off", "off", "on")),
    (replace(READY, paused=True, reasons=("paused",)), ("blink", "off", "off")),
    (LOW, ("on", "blink", "off")),
    (OFFLINE, ("on", "blink", "off")),
    (UNCERTAIN, ("off", "off", "blink")),
], ids=["ready", "printing", "jam", "empty", "paused", "stock-low", "offline", "uncertain"])
def test_leds_follow_the_state(rig: Rig, view: PanelView, expected: tuple[str, ...]) -> None:
    rig.panel.show(view)
    for name, wanted in zip(LEDS, expected, strict=True):
        pin = rig.pin(LEDS[name])
        if wanted == "blink":
            pin.clear_states()
            assert wait_until(lambda pin=pin: toggled(pin)), f"{name} does not blink"
        else:
            assert pin.state == (wanted == "on"), name


def test_notices_go_away_by_themselves() -> None:
    rig = Rig(timing=replace(TIMING, notice_s=0.05))
    try:
        rig.panel.show(READY)
        rig.press("extra")
        assert rig.lcd.lines[3] == "Tahan tombol 3 detik"
        assert wait_until(lambda: rig.lcd.lines[3] == "Habis dalam: -      ")
    finally:
        rig.panel.close()


def test_the_next_action_ends_a_notice(rig: Rig) -> None:
    rig.panel.show(READY)
    rig.press("extra")
    rig.hold("extra", lambda: rig.panel.screen == "refill")
    assert rig.lcd.lines[3] == "ULANG +1  OK batal  "


def test_a_pin_clash_is_refused_and_frees_the_pins_taken() -> None:
    factory = MockFactory()
    clash = replace(CONFIG, button_menu=CONFIG.led_red)
    with pytest.raises(GPIOPinInUse):
        DevicePanel(clash, print, lcd=MemoryLcd(), pin_factory=factory, timing=TIMING)
    DevicePanel(CONFIG, print, lcd=MemoryLcd(), pin_factory=factory, timing=TIMING).close()


def test_pins_come_from_the_config() -> None:
    config = replace(CONFIG, button_pause=26, led_green=16)
    rig = Rig(config)
    try:
        rig.panel.show(READY)
        assert rig.pin(16).state
        rig.pin(26).drive_low()
        rig.pin(26).drive_high()
        assert rig.kinds() == ["pause-toggle"]
    finally:
        rig.panel.close()


def test_close_frees_the_pins_and_ignores_later_views(rig: Rig) -> None:
    rig.panel.show(READY)
    rig.panel.close()
    assert rig.lcd.closed
    frames = rig.lcd.frames
    rig.panel.show(JAM)
    assert rig.lcd.frames == frames
    again = DevicePanel(CONFIG, rig.events.put, lcd=MemoryLcd(), pin_factory=rig.factory,
                        timing=TIMING)
    again.close()


def toggled(pin) -> bool:
    """The pin went both high and low since its states were last cleared."""
    states = [state.state for state in pin.states]
    return True in states and False in states and len(states) >= 3
