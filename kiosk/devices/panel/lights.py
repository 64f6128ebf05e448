"""The panel's three LEDs and its buzzer: what they show for a `PanelView`, and driving them.

Owns the light rules (green: ready, amber: printing, red: fault; blinking:
look at the screen), the alarm rule for the buzzer (a jam or an empty tray
sounds it, OK silences it until a new alarm, it stops by itself when the
alarm clears) and the gpiozero devices that carry them out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gpiozero import LED, Buzzer

from kiosk.devices.panel.screens import is_error, is_warning
from kiosk.station.core.events import PanelView

if TYPE_CHECKING:  # the station's configuration is handed in; devices do not import it
    from kiosk.station.config import PanelSection

ALARM_REASONS = frozenset({"media-jam-error", "media-empty-error"})
LIGHTS = ("green", "amber", "red")


@dataclass(frozen=True)
class LightPattern:
    """Each LED "off", "on" or "blink"; the buzzer "off" or "beep"."""

    green: str = "off"
    amber: str = "off"
    red: str = "off"
    buzzer: str = "off"


def pattern_for(view: PanelView | None, *, buzzing: bool = False) -> LightPattern:
    """The lights for *view* (all dark before the first view).

    green on: ready for cards; green blinking: paused. amber on: printing;
    amber blinking: a warning (stock low, tray door, tray sensor, server offline...).
    red on: printing is stopped by a fault; red blinking: a card waits for a decision.
    """
    if view is None:
        return LightPattern(buzzer="beep" if buzzing else "off")
    error = any(is_error(r) for r in view.reasons)
    warning = any(is_warning(r) for r in view.reasons) or not view.broker_connected
    quiet = not error and not view.uncertain
    if quiet and view.paused:
        green = "blink"
    elif quiet and view.printer_state == "idle":
        green = "on"
    else:
        green = "off"
    amber = "blink" if warning else "on" if view.printer_state == "processing" else "off"
    red = "on" if error else "blink" if view.uncertain else "off"
    return LightPattern(green, amber, red, "beep" if buzzing else "off")


class Alarm:
    """When the buzzer sounds; no device, only the rule::

        alarm = Alarm()
        alarm.update(view.reasons)   # True: sound the buzzer
        alarm.silence()              # the OK button: quiet until a new alarm reason
    """

    def __init__(self, reasons: frozenset[str] = ALARM_REASONS) -> None:
        self.reasons = reasons
        self._active: frozenset[str] = frozenset()
        self._silenced: frozenset[str] = frozenset()

    @property
    def sounding(self) -> bool:
        return bool(self._active - self._silenced)

    def update(self, reasons: tuple[str, ...]) -> bool:
        """Take the current reasons; returns whether the buzzer should sound."""
        self._active = self.reasons & frozenset(reasons)
        self._silenced &= self._active  # an alarm that cleared sounds again if it returns
        return self.sounding

    def silence(self) -> bool:
        """Quiet the current alarms; returns whether the buzzer was sounding."""
        was = self.sounding
        self._silenced = self._active
        return was


class Lights:
    """Green, amber and red LEDs and an active buzzer on BCM pins from `PanelSection`.

    Wiring (hardware/panel.md): each LED from its pin through 330 Ω to GND
    (active high); the buzzer through an NPN transistor (the pin drives the base
    through 1 kΩ), so the pin never carries the buzzer's current::

        lights = Lights(config.panel)
        lights.set(pattern_for(view, buzzing=True))
        lights.close()

    `set` changes only what differs, so a blinking LED keeps its rhythm
    while the same pattern is set again.
    """

    def __init__(
        self,
        config: PanelSection,
        *,
        pin_factory: Any = None,
        blink_s: float = 0.5,
        beep_s: float = 0.25,
    ) -> None:
        self.blink_s = blink_s
        self.beep_s = beep_s
        self.pattern = LightPattern()
        self._devices: list[Any] = []
        try:
            self.leds = {
                name: self._add(LED(getattr(config, f"led_{name}"), pin_factory=pin_factory))
                for name in LIGHTS
            }
            self.buzzer = self._add(Buzzer(config.buzzer, pin_factory=pin_factory))
        except Exception:
            self.close()
            raise

    def _add(self, device: Any) -> Any:
        self._devices.append(device)
        return device

    def set(self, pattern: LightPattern) -> None:
        for name in LIGHTS:
            wanted = getattr(pattern, name)
            if wanted != getattr(self.pattern, name):
                self._drive(self.leds[name], wanted)
        if pattern.buzzer != self.pattern.buzzer:
            if pattern.buzzer == "beep":
                self.buzzer.beep(on_time=self.beep_s, off_time=self.beep_s * 2)
            else:
                self.buzzer.off()
        self.pattern = pattern

    def _drive(self, led: LED, wanted: str) -> None:
        if wanted == "blink":
            led.blink(on_time=self.blink_s, off_time=self.blink_s)
        elif wanted == "on":
            led.on()
        else:
            led.off()

    def close(self) -> None:
        for device in reversed(self._devices):
            device.close()
        self._devices.clear()
