"""The device panel: four buttons, the 20 × 4 LCD and the lights, for office staff.

Owns the gpiozero buttons, the screen menu and refill-entry state machine, and
turning presses and holds into `OperatorIntent` events for the station core. It
decides nothing about jobs: the core sends a `PanelView`, the panel shows it.

A press acts when the button is let go; holding a button for ``hold_s`` (3 s)
does the hold action instead, at once, and the release does nothing more.
A hold that has no action of its own on that screen counts as a press.

    button        press             hold 3 s
    JEDA/PAUSE    pause-toggle      (as press)
    OK            silence, retry    uncertain screen: confirm-uncertain; else as press
    MENU          next screen       shift-report
    ULANG/EXTRA   hint "hold 3 s"   uncertain screen: reprint-uncertain; else refill entry

In refill entry: JEDA −10 (hold −100), MENU +10 (hold +100), ULANG +1, OK books
the count (``refill`` with count) or, at 0, cancels. "silence" is sent only
when the buzzer was sounding.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from gpiozero import Button

from kiosk.devices.panel import screens
from kiosk.devices.panel.lcd import LcdBackend
from kiosk.devices.panel.lights import Alarm, Lights, pattern_for
from kiosk.station.core.events import Intent, OperatorIntent, PanelView

if TYPE_CHECKING:  # the station's configuration is handed in; devices do not import it
    from kiosk.station.config import PanelSection

BUTTONS = ("pause", "ok", "menu", "extra")
REFILL_MAX = 9999
REFILL_STEPS = {("press", "pause"): -10, ("hold", "pause"): -100, ("press", "menu"): 10,
                ("hold", "menu"): 100, ("press", "extra"): 1, ("hold", "extra"): 1}


@dataclass(frozen=True)
class PanelTiming:
    """Seconds: how long a hold is, debouncing, blink and beep rhythm, notice time."""

    hold_s: float = 3.0
    bounce_s: float = 0.05
    blink_s: float = 0.5
    beep_s: float = 0.25
    notice_s: float = 4.0


def local_ip() -> str | None:
    """The address of the interface holding the default route; no packet is sent."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect(("192.0.2.1", 9))  # TEST-NET-1: a UDP connect only picks the route
            return sock.getsockname()[0]
    except OSError:
        return None


class PanelMenu:
    """Which screen is up and what a press or hold means there; no device, no thread::

        menu = PanelMenu(emit, "id")
        menu.update(view)          # jumps to the fault / uncertain screen when one appears
        notice = menu.hold("ok")   # may emit an OperatorIntent; returns a notice line or None
        lines = menu.lines(local_ip)
    """

    def __init__(self, emit: Callable[[object], None], language: str = "id") -> None:
        self.emit = emit
        self.language = language
        self.view: PanelView | None = None
        self.screen = "status"
        self.refill: int | None = None  # the count being entered, None outside refill entry

    def update(self, view: PanelView) -> None:
        before, self.view = self.view, view
        old_errors = _errors(before.reasons) if before else set()
        old_uncertain = set(before.uncertain) if before else set()
        if self.refill is None:  # refill entry is not interrupted: the tray is open anyway
            if _errors(view.reasons) - old_errors:
                self.screen = "fault"
            elif view.chip_prompt and view.chip_prompt != (before and before.chip_prompt):
                self.screen = "chip"  # desk mode: the operator is asked to do something now
            elif set(view.uncertain) - old_uncertain:
                self.screen = "uncertain"
        available = screens.available(view)
        if self.screen not in available:
            self.screen = "uncertain" if "uncertain" in available else "status"

    def press(self, button: str) -> str | None:
        if self.refill is not None:
            return self._refill("press", button)
        if button == "pause":
            self.emit(OperatorIntent(Intent.PAUSE_TOGGLE))
        elif button == "ok":
            self.emit(OperatorIntent(Intent.RETRY))
        elif button == "menu":
            self._next_screen()
        elif button == "extra":
            return screens.notice("hold-hint", self.language)
        return None

    def hold(self, button: str) -> str | None:
        if self.refill is not None:
            return self._refill("hold", button)
        waiting = self.view.uncertain if self.view and self.screen == "uncertain" else ()
        if button == "ok" and waiting:
            self.emit(OperatorIntent(Intent.CONFIRM_UNCERTAIN, record_id=waiting[0]))
            return screens.notice("confirmed", self.language)
        if button == "extra" and waiting:
            self.emit(OperatorIntent(Intent.REPRINT_UNCERTAIN, record_id=waiting[0]))
            return screens.notice("reprint", self.language)
        made = self.view.last_made if self.view and self.screen == "made" else None
        if button == "extra" and made:
            self.emit(OperatorIntent(Intent.DECLARE_DAMAGED, record_id=made))
            return screens.notice("declared", self.language)
        if button == "extra":
            self.refill = 0
            return None
        if button == "menu":
            self.emit(OperatorIntent(Intent.SHIFT_REPORT))
            return screens.notice("report", self.language)
        return self.press(button)

    def lines(self, ip: Callable[[], str | None] = lambda: None) -> screens.Lines:
        if self.refill is not None:
            return screens.refill_screen(self.refill, self.language)
        if self.view is None:
            return screens.splash(self.language)
        address = ip() if self.screen == "network" else None
        return screens.render(self.view, self.screen, self.language, ip=address)

    def _next_screen(self) -> None:
        if self.view is None:
            return
        available = screens.available(self.view)
        index = available.index(self.screen) if self.screen in available else -1
        self.screen = available[(index + 1) % len(available)]

    def _refill(self, how: str, button: str) -> str | None:
        if button == "ok":
            count, self.refill = self.refill, None
            if not count:
                return screens.notice("refill-cancelled", self.language)
            self.emit(OperatorIntent(Intent.REFILL, count=count))
            return screens.notice("refilled", self.language, count)
        assert self.refill is not None
        self.refill = min(max(self.refill + REFILL_STEPS[how, button], 0), REFILL_MAX)
        return None


class DevicePanel:
    """The four buttons, the LCD and the lights on BCM pins from `PanelSection`.

    Wiring (hardware/panel.md): each button between its pin and GND (internal
    pull-up, so pressed reads low); LEDs and buzzer as in `kiosk.devices.panel.lights.Lights`;
    the LCD is the backend given (`kiosk.devices.panel.lcd.open_lcd`), which the panel closes::

        panel = DevicePanel(config.panel, queue.put, lcd=open_lcd(config.panel.lcd))
        panel.show(view)     # from the station loop, on each Show action
        panel.close()

    ``emit`` receives `OperatorIntent` events from gpiozero's threads. The button
    map is in the module docstring and in docs/operator-guide.md.
    """

    def __init__(
        self,
        config: PanelSection,
        emit: Callable[[object], None],
        *,
        lcd: LcdBackend,
        pin_factory: Any = None,
        timing: PanelTiming = PanelTiming(),
        ip_lookup: Callable[[], str | None] = local_ip,
    ) -> None:
        self.emit = emit
        self.lcd = lcd
        self.timing = timing
        self.ip_lookup = ip_lookup
        self.menu = PanelMenu(emit, config.language)
        self.alarm = Alarm()
        self.lines: screens.Lines = screens.splash(config.language)
        self._lock = threading.RLock()
        self._held: set[str] = set()
        self._notice: str | None = None
        self._notice_seq = 0
        self._notice_timer: threading.Timer | None = None
        self._closed = False
        self.lights = Lights(config, pin_factory=pin_factory,
                             blink_s=timing.blink_s, beep_s=timing.beep_s)
        self.buttons: dict[str, Button] = {}
        try:
            for name in BUTTONS:
                self.buttons[name] = self._button(name, getattr(config, f"button_{name}"),
                                                  pin_factory)
        except Exception:  # a pin in use or no pin library: free what was taken
            self._release_pins()
            raise
        self._redraw()

    def _button(self, name: str, pin: int, pin_factory: Any) -> Button:
        button = Button(pin, pull_up=True, bounce_time=self.timing.bounce_s,
                        hold_time=self.timing.hold_s, pin_factory=pin_factory)
        button.when_pressed = partial(self._on_press, name)
        button.when_held = partial(self._on_held, name)
        button.when_released = partial(self._on_release, name)
        return button

    @property
    def screen(self) -> str:
        """"refill" during refill entry, else the menu's screen name."""
        return "refill" if self.menu.refill is not None else self.menu.screen

    @property
    def refill_count(self) -> int | None:
        return self.menu.refill

    def show(self, view: PanelView) -> None:
        """Show *view* on the LCD and lights (from the station's thread)."""
        with self._lock:
            if self._closed:
                return
            self.menu.update(view)
            self.alarm.update(view.reasons)
            self._redraw()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            timer, self._notice_timer = self._notice_timer, None
        if timer:
            timer.cancel()
        self._release_pins()  # not under the lock: closing joins gpiozero's threads
        self.lcd.close()

    def _release_pins(self) -> None:
        for button in self.buttons.values():
            button.close()
        self.lights.close()

    # -- gpiozero callbacks (their threads) ----------------------------------------

    def _on_press(self, name: str) -> None:
        with self._lock:
            self._held.discard(name)

    def _on_held(self, name: str) -> None:
        with self._lock:
            self._held.add(name)
            self._act(name, "hold")

    def _on_release(self, name: str) -> None:
        with self._lock:
            if name in self._held:
                self._held.discard(name)
            else:
                self._act(name, "press")

    def _act(self, name: str, how: str) -> None:
        if self._closed:
            return
        if name == "ok" and self.alarm.silence():
            self.emit(OperatorIntent(Intent.SILENCE))
        self._set_notice(self.menu.press(name) if how == "press" else self.menu.hold(name))
        self._redraw()

    # -- drawing ------------------------------------------------------------------

    def _set_notice(self, line: str | None) -> None:
        """Show *line* at the bottom for notice_s; None (any other action) ends a notice."""
        if self._notice_timer:
            self._notice_timer.cancel()
        self._notice, self._notice_timer = line, None
        self._notice_seq += 1
        if line:
            timer = threading.Timer(self.timing.notice_s, self._end_notice, (self._notice_seq,))
            timer.daemon = True
            timer.start()
            self._notice_timer = timer

    def _end_notice(self, seq: int) -> None:
        with self._lock:
            if seq == self._notice_seq and not self._closed:
                self._notice = None
                self._redraw()

    def _redraw(self) -> None:
        lines = self.menu.lines(self.ip_lookup)
        if self._notice:
            lines = screens.overlay(lines, self._notice)
        self.lines = lines
        self.lcd.write(lines)
        self.lights.set(pattern_for(self.menu.view, buzzing=self.alarm.sounding))


def _errors(reasons: tuple[str, ...]) -> set[str]:
    return {reason for reason in reasons if screens.is_error(reason)}
