"""A private pcscd with Debian's virtual reader driver, for the chip's tests and the demo.

chip.md, "Testing chips without hardware": `PcscServer` runs Debian's ``pcscd -f`` as a
child with its own configuration directory (one reader entry per `VirtualReader`, each
with its own copy of ``libifdvpcd.so``: readers sharing one loaded copy overwrite each
other's slots) and its own UNIX socket, handed over the systemd way (fd 3, ``LISTEN_FDS``,
``LISTEN_PID``). Each reader has two slots; a virtual card (kiosk/sim/chip.py) connects
to TCP port ``PORT`` for the first slot and ``PORT + 1`` for the second.

PC/SC clients find the server through ``PCSCLITE_CSOCK_NAME``, which libpcsclite reads
once per process: `client_socket` gives every server of this process the same path (one
server at a time), and sets the variable before any client library call.

Stopped by its pid (SIGTERM, then SIGKILL); it never outlives the object that started it
(stop, ``with``, the interpreter's exit) nor the process (PR_SET_PDEATHSIG, even after a
kill -9).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = ("pcscd or its virtual reader driver is missing: install them with"
                " 'apt-get install pcscd vsmartcard-vpcd libpcsclite-dev' (or run scripts/setup)")
VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
RUN_DIR = Path("/run/pcscd")  # pcscd 1.9 writes its pid file here whatever its socket is
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
PR_SET_PDEATHSIG = 1
_running: set[PcscServer] = set()


class PcscdMissing(RuntimeError):
    """No pcscd or no vpcd driver here: the message says how to install them."""


def find_pcscd() -> str:
    """The pcscd binary, or PcscdMissing with the install hint."""
    pcscd = shutil.which("pcscd") or "/usr/sbin/pcscd"
    if not os.access(pcscd, os.X_OK) or not VPCD_DRIVER.exists():
        raise PcscdMissing(INSTALL_HINT)
    return pcscd


def client_socket() -> str:
    """This process's PC/SC socket path, exported as ``PCSCLITE_CSOCK_NAME``."""
    path = os.environ.get("PCSCLITE_CSOCK_NAME")
    if not path:
        path = str(Path(tempfile.gettempdir()) / f"kiosk-pcscd-{os.getpid()}.comm")
        os.environ["PCSCLITE_CSOCK_NAME"] = path
    return path


def free_port_pair() -> int:
    """A TCP port PORT with PORT + 1 free as well (a vpcd reader's two slots)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            if port >= 65535:
                continue
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise RuntimeError("no two consecutive free TCP ports")


@dataclass(frozen=True)
class VirtualReader:
    """One vpcd reader: its friendly name and the TCP port of its first slot."""

    name: str
    port: int

    def slot(self, index: int = 0) -> str:
        """The PC/SC name pcscd gives slot *index* (its first reader of this name)."""
        return f"{self.name} 00 {index:02d}"


class PcscServer:
    """pcscd with *readers* (names; ports chosen free) in *directory*, on its own socket."""

    def __init__(self, directory: str | Path, readers: tuple[str, ...] = ("Kiosk Encoder",),
                 *, log_apdus: bool = False) -> None:
        self.directory = Path(directory)
        self.readers = [VirtualReader(name, free_port_pair()) for name in readers]
        self.socket_path = client_socket()
        self.log_apdus = log_apdus
        self.process: subprocess.Popen[bytes] | None = None
        self._unplugged: set[str] = set()

    @property
    def config_dir(self) -> Path:
        return self.directory / "reader.conf.d"

    @property
    def log_path(self) -> Path:
        return self.directory / "pcscd.log"

    def reader(self, name: str | None = None) -> VirtualReader:
        """The reader called *name* (the first one if None)."""
        return next(r for r in self.readers if name is None or r.name == name)

    def start(self, timeout: float = START_TIMEOUT) -> PcscServer:
        """Start pcscd and wait until every reader is listed; RuntimeError if it is not."""
        pcscd = find_pcscd()
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config_dir.mkdir(exist_ok=True)
        self._write_config()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(self.socket_path)
            listener.listen(16)
            # The shell's pid is pcscd's after exec: LISTEN_PID must name pcscd itself.
            launch = ('LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" -f -c "$1" $2 3<&0 0</dev/null')
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(
                    ["sh", "-c", launch, pcscd, str(self.config_dir),
                     "-a" if self.log_apdus else ""],
                    stdin=listener.fileno(), stdout=log, stderr=subprocess.STDOUT,
                    preexec_fn=_die_with_parent)
        finally:
            listener.close()
        _running.add(self)
        listed = [r.slot(0) for r in self.readers if r.name not in self._unplugged]
        if not self.wait_for_readers(listed, timeout):
            self.stop()
            raise RuntimeError(f"pcscd did not list its readers within {timeout:g} s:"
                               f" {self.log_tail()}")
        return self

    def stop(self) -> None:
        """Stop pcscd by its pid; its socket file goes with it."""
        process, self.process = self.process, None
        _running.discard(self)
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)

    def __enter__(self) -> PcscServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- a reader unplugged and plugged back ------------------------------------------
    # pcscd 1.9 built with libudev does not rescan serial readers on SIGUSR1 (`pcscd -H`):
    # it is restarted on the same socket without (or with) the reader, as after a USB
    # reader was pulled; clients see their context fail, then a listing without it.

    def unplug(self, name: str) -> None:
        """Reader *name* disappears from pcscd's list (its cards' links drop with it)."""
        self.reader(name)
        self._unplugged.add(name)
        self._restart()

    def plug(self, name: str) -> None:
        """Reader *name* is listed again; a card lying on it reconnects."""
        self._unplugged.discard(name)
        self._restart()

    def _restart(self) -> None:
        if self.process is not None:
            self.stop()
            self.start()

    def _write_config(self) -> None:
        for old in self.config_dir.iterdir():
            old.unlink()
        for reader in self.readers:
            if reader.name in self._unplugged:
                continue
            driver = self.directory / f"libifdvpcd-{reader.port}.so"
            if not driver.exists():
                shutil.copy(VPCD_DRIVER, driver)
            (self.config_dir / _file_name(reader.name)).write_text(
                f'FRIENDLYNAME "{reader.name}"\n'
                f"DEVICENAME /dev/null:{reader.port}\n"
                f"LIBPATH {driver}\n"
                f"CHANNELID {reader.port}\n")

    # -- observation --------------------------------------------------------------------

    def wait_for_readers(self, names: list[str], timeout: float, *,
                         present: bool = True) -> bool:
        """True once every slot in *names* is listed (or, with present=False, none is)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            listed = set(list_readers())
            if all((name in listed) == present for name in names):
                return True
            time.sleep(0.05)
        return False

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def list_readers() -> list[str]:
    """The reader slots this process's pcscd lists ([] when none or no pcscd)."""
    from smartcard import scard  # the `chip` extra; the caller checked it

    result, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if result != scard.SCARD_S_SUCCESS:
        return []
    try:
        result, readers = scard.SCardListReaders(context, [])
        return list(readers) if result == scard.SCARD_S_SUCCESS else []
    finally:
        scard.SCardReleaseContext(context)


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the process that started it dies, even by
    SIGKILL (Linux PR_SET_PDEATHSIG; kept across exec)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _file_name(reader: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in reader)


@atexit.register
def _stop_all() -> None:
    for server in list(_running):
        server.stop()
