"""A pseudo-terminal that stands in for a USB serial device.

The simulator holds the master side; the station opens the slave side with
pyserial exactly as it opens a real port. The slave is reached through a
stable symlink (as udev gives ``/dev/kiosk-printer``), so the device can
vanish (both ends closed, the link removed, like a cable pulled) and come back
under the same name on a new pty.
"""

from __future__ import annotations

import contextlib
import os
import pty
import select
import threading
import tty


class PtyPort:
    """The device end of a pseudo-terminal, published at *link* if given.

    ``path`` is what the station opens. ``read`` and ``write`` work on the
    master side. ``vanish`` and ``reappear`` simulate unplugging and plugging
    the device back in.
    """

    def __init__(self, link: str | None = None) -> None:
        self.link = link
        self._lock = threading.Lock()
        self._master = -1
        self._slave = -1
        self._slave_name = ""
        self._open()

    @property
    def path(self) -> str:
        return self.link or self._slave_name

    @property
    def present(self) -> bool:
        return self._master >= 0

    def _open(self) -> None:
        master, slave = pty.openpty()
        tty.setraw(slave)  # no echo, no line discipline: bytes pass untouched
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self._slave_name = os.ttyname(slave)
        if self.link:
            tmp = f"{self.link}.tmp{os.getpid()}"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            os.symlink(self._slave_name, tmp)
            os.replace(tmp, self.link)

    def read(self, size: int = 4096, timeout: float | None = None) -> bytes:
        """Bytes the station wrote; b"" on timeout or while vanished."""
        master = self._master
        if master < 0:
            return b""
        try:
            ready, _, _ = select.select([master], [], [], timeout)
        except (OSError, ValueError):
            return b""
        if not ready:
            return b""
        try:
            return os.read(master, size)
        except (BlockingIOError, OSError):
            return b""

    def write(self, data: bytes) -> None:
        """Send *data* to the station; silently lost while vanished."""
        view = memoryview(data)
        while view:
            master = self._master
            if master < 0:
                return
            try:
                written = os.write(master, view)
            except BlockingIOError:
                select.select([], [master], [], 0.5)
                continue
            except OSError:
                return
            view = view[written:]

    def vanish(self) -> None:
        """Close both ends and remove the link, as when the cable is pulled."""
        with self._lock:
            if self.link:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.link)
            for fd in (self._master, self._slave):
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._master = self._slave = -1

    def reappear(self) -> None:
        """Plug the device back in under the same link."""
        with self._lock:
            if self._master < 0:
                self._open()

    def close(self) -> None:
        self.vanish()
