"""``usblp://PATH``: a USB printer-class device as a pyserial port.

A usblp device node reads and writes bytes but has no line settings, so baud
rate, parity and the like are accepted and ignored; timeouts behave as for a
serial port. Used as ``port = "usblp:///dev/kiosk-printer"`` in the station's
configuration (udev gives the printer that stable name).
"""

from __future__ import annotations

import contextlib
import os
import select
from urllib.parse import urlsplit

from serial.serialutil import (
    PortNotOpenError,
    SerialBase,
    SerialException,
    SerialTimeoutException,
    Timeout,
)


class Serial(SerialBase):
    """A byte-stream device node behind the pyserial API."""

    def open(self) -> None:
        if self._port is None:
            raise SerialException("usblp: a device path is required")
        if self.is_open:
            raise SerialException("port already open")
        path = urlsplit(self._port).path
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError as error:
            raise SerialException(error.errno, f"could not open {path}: {error}") from error
        self.is_open = True

    def close(self) -> None:
        if self.is_open:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self.is_open = False

    def _reconfigure_port(self) -> None:
        """Nothing to configure: a printer-class device has no line settings."""

    @property
    def in_waiting(self) -> int:
        if not self.is_open:
            raise PortNotOpenError()
        ready, _, _ = select.select([self._fd], [], [], 0)
        return 1 if ready else 0

    def read(self, size: int = 1) -> bytes:
        if not self.is_open:
            raise PortNotOpenError()
        data = bytearray()
        timeout = Timeout(self._timeout)
        while len(data) < size:
            ready, _, _ = select.select([self._fd], [], [], timeout.time_left())
            if not ready:
                break
            chunk = self._read_some(size - len(data))
            data += chunk
            if timeout.expired():
                break
        return bytes(data)

    def _read_some(self, size: int) -> bytes:
        try:
            chunk = os.read(self._fd, size)
        except BlockingIOError:
            return b""
        except OSError as error:
            raise SerialException(f"read failed: {error}") from error
        if not chunk:
            raise SerialException("device reports readiness to read but returned no data "
                                  "(device disconnected?)")
        return chunk

    def write(self, data: bytes) -> int:
        if not self.is_open:
            raise PortNotOpenError()
        view = memoryview(bytes(data))
        timeout = Timeout(self._write_timeout)
        while view:
            _, ready, _ = select.select([], [self._fd], [], timeout.time_left())
            if not ready:
                raise SerialTimeoutException("write timeout: the printer takes nothing")
            try:
                view = view[os.write(self._fd, view):]
            except BlockingIOError:
                continue
            except OSError as error:
                raise SerialException(f"write failed: {error}") from error
        return len(data)

    def reset_input_buffer(self) -> None:
        while self.in_waiting:
            if not self._read_some(4096):
                break

    def reset_output_buffer(self) -> None:
        """The kernel's usblp buffer cannot be flushed from here."""
