"""The tray board's hardware: pin map, sensor sampling and reset cause (RP2040, MicroPython).

The pin map here is the one in hardware/README.md; change both together.
"""

import machine
from trayproto import Debounced, Reading, StackFilter, height_um, temp_dC
from vl53l0x import NO_TARGET_MM, VL53L0X

I2C_ID = 0
SDA_PIN = 4  # GP4 = I2C0 SDA
SCL_PIN = 5  # GP5 = I2C0 SCL
XSHUT_PIN = 6  # VL53L0X shutdown: high = running
LOW_STOCK_PIN = 10
DOOR_PIN = 11
BEAM_PIN = 12
MAINTENANCE_PIN = 15  # jumper to GND at boot: no protocol, no watchdog, REPL free
TEMP_ADC = 4  # RP2040 internal temperature sensor
I2C_HZ = 400000

# Input levels that mean "yes", for the parts in the bill of materials.
NO_CARD_LEVEL = 1  # TCRT5000 module: DO high when nothing reflects
DOOR_OPEN_LEVEL = 1  # switch closes to GND when the door is shut; open reads the pull-up
BEAM_BROKEN_LEVEL = 0  # IR break-beam receiver pulls low when the beam is interrupted

FLOOR_DISTANCE_MM = 180  # sensor window to tray floor; the station's CAL trims the rest
STALE_MS = 500  # no good distance for this long: height -1 (sensor fault)
RETRY_MS = 1000  # a failed sensor is reset with XSHUT and probed again this often
RESET_NAMES = ("PWRON", "WDT", "HARD", "SOFT", "DEEPSLEEP")


def reset_cause():
    """``machine.reset_cause()`` by name (PWRON, WDT, ...), as ``$PKSKB`` reports it."""
    code = machine.reset_cause()
    for name in RESET_NAMES:
        if getattr(machine, name + "_RESET", None) == code:
            return name
    return "UNKNOWN"


def maintenance_jumper():
    """True when GP15 is tied to GND: the firmware stays out of the way for updates."""
    return machine.Pin(MAINTENANCE_PIN, machine.Pin.IN, machine.Pin.PULL_UP).value() == 0


class Board:
    """The sensors of the tray, sampled by ``sample(now_ms)`` and read by ``reading()``.

    Wiring (hardware/README.md): VL53L0X on I2C0 GP4/GP5 with XSHUT on GP6;
    low-stock sensor GP10, door switch GP11, break-beam GP12, all with the
    internal pull-up so that a broken wire reads "no card" / "door open".
    """

    def __init__(self):
        pin = machine.Pin
        self._low_pin = pin(LOW_STOCK_PIN, pin.IN, pin.PULL_UP)
        self._door_pin = pin(DOOR_PIN, pin.IN, pin.PULL_UP)
        self._beam_pin = pin(BEAM_PIN, pin.IN, pin.PULL_UP)
        self._xshut = pin(XSHUT_PIN, pin.OUT, value=1)
        self._i2c = machine.I2C(I2C_ID, sda=pin(SDA_PIN), scl=pin(SCL_PIN), freq=I2C_HZ)
        self._adc = machine.ADC(TEMP_ADC)
        self._low = Debounced(self._low_pin.value())
        self._door = Debounced(self._door_pin.value())
        self._beam = Debounced(self._beam_pin.value(), hold_ms=2)  # a card passes in ~0.1 s
        self._filter = StackFilter()
        self._tof = None
        self._retry_at = 0
        self._last_good = None

    def sample(self, now_ms):
        self._low.update(now_ms, self._low_pin.value())
        self._door.update(now_ms, self._door_pin.value())
        self._beam.update(now_ms, self._beam_pin.value())
        self._sample_distance(now_ms)

    def reset_cause(self):
        return reset_cause()

    def reading(self):
        return Reading(
            height_um(FLOOR_DISTANCE_MM * 1000, self._filter.distance_um()),
            self._low.value == NO_CARD_LEVEL,
            self._door.value == DOOR_OPEN_LEVEL,
            self._beam.value == BEAM_BROKEN_LEVEL,
            temp_dC(self._adc.read_u16()),
        )

    def _sample_distance(self, now_ms):
        if self._tof is None and not self._probe(now_ms):
            return
        try:
            distance_mm = self._tof.read_mm()
        except OSError:
            self._fail(now_ms)
            return
        if distance_mm is not None and distance_mm < NO_TARGET_MM:
            self._filter.add(distance_mm)
            self._last_good = now_ms
        if self._last_good is None or now_ms - self._last_good > STALE_MS:
            self._filter.clear()

    def _probe(self, now_ms):
        if now_ms < self._retry_at:
            return False
        if not self._xshut.value():  # out of reset: the sensor needs ~2 ms to boot
            self._xshut.value(1)
            self._retry_at = now_ms + 5
            return False
        try:
            self._tof = VL53L0X(self._i2c)
        except OSError:
            self._fail(now_ms)
            return False
        return True

    def _fail(self, now_ms):
        self._tof = None
        self._filter.clear()
        self._xshut.value(0)
        self._retry_at = now_ms + RETRY_MS
