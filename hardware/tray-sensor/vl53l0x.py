"""Our own minimal driver for ST's VL53L0X time-of-flight sensor (I2C, address 0x29).

It probes the sensor and runs it in back-to-back ranging, polled without
blocking. It deliberately skips ST's long initialisation (reference SPAD
selection, VHV and phase calibration, tuning table): the sensor then ranges
with its power-on settings. Absolute accuracy is left to the station's
calibration (``$PKSKC,CAL``: the empty height absorbs the offset); see
hardware/README.md for what that costs. Register addresses are those of ST's
register map (API header vl53l0x_device.h).
"""

IDENTIFICATION_MODEL_ID = 0xC0
MODEL_ID = 0xEE
SYSRANGE_START = 0x00
SYSTEM_INTERRUPT_CONFIG_GPIO = 0x0A
SYSTEM_INTERRUPT_CLEAR = 0x0B
RESULT_INTERRUPT_STATUS = 0x13
RESULT_RANGE_MM = 0x1E  # RESULT_RANGE_STATUS (0x14) + 10, big-endian millimetres
GPIO_HV_MUX_ACTIVE_HIGH = 0x84
I2C_MODE = 0x88
VHV_CONFIG_PAD_SCL_SDA_EXTSUP_HV = 0x89
STOP_VARIABLE = 0x91  # on ST's internal page, reached through 0x80 / 0xFF / 0x00

MODE_BACK_TO_BACK = 0x02
NEW_SAMPLE_READY = 0x04
NO_TARGET_MM = 8190  # this or above: nothing in range


class VL53L0X:
    """One sensor on a ``machine.I2C`` bus.

    Wiring: VIN 3V3, GND, SDA/SCL to the bus (breakouts carry their pull-ups),
    XSHUT to a GPIO held high (low resets the sensor). Usage::

        tof = VL53L0X(i2c)           # OSError if no VL53L0X answers
        mm = tof.read_mm()           # None until a new sample is ready
    """

    def __init__(self, i2c, address=0x29):
        self.i2c = i2c
        self.address = address
        if self._read(IDENTIFICATION_MODEL_ID) != MODEL_ID:
            raise OSError(f"no VL53L0X at 0x{address:02X}")
        self._write(VHV_CONFIG_PAD_SCL_SDA_EXTSUP_HV,
                    self._read(VHV_CONFIG_PAD_SCL_SDA_EXTSUP_HV) | 0x01)  # 2.8 V pad levels
        self._write(I2C_MODE, 0x00)
        stop_variable = self._private_page(lambda: self._read(STOP_VARIABLE))
        self._write(SYSTEM_INTERRUPT_CONFIG_GPIO, NEW_SAMPLE_READY)
        self._write(GPIO_HV_MUX_ACTIVE_HIGH, self._read(GPIO_HV_MUX_ACTIVE_HIGH) & ~0x10)
        self._write(SYSTEM_INTERRUPT_CLEAR, 0x01)
        self._private_page(lambda: self._write(STOP_VARIABLE, stop_variable))
        self._write(SYSRANGE_START, MODE_BACK_TO_BACK)

    def read_mm(self):
        """The newest distance in millimetres, or None if no new sample yet."""
        if self._read(RESULT_INTERRUPT_STATUS) & 0x07 == 0:
            return None
        high, low = self.i2c.readfrom_mem(self.address, RESULT_RANGE_MM, 2)
        self._write(SYSTEM_INTERRUPT_CLEAR, 0x01)
        return high << 8 | low

    def _private_page(self, action):
        """Run *action* with ST's internal register page open (the stop-variable dance)."""
        for register, value in ((0x80, 0x01), (0xFF, 0x01), (0x00, 0x00)):
            self._write(register, value)
        result = action()
        for register, value in ((0x00, 0x01), (0xFF, 0x00), (0x80, 0x00)):
            self._write(register, value)
        return result

    def _read(self, register):
        return self.i2c.readfrom_mem(self.address, register, 1)[0]

    def _write(self, register, value):
        self.i2c.writeto_mem(self.address, register, bytes([value & 0xFF]))
