"""A private Mosquitto broker on a free loopback port, for the demo and the tests.

It runs with its own configuration and persistence file in a directory of its
own, so it never touches the machine's broker. ``kill()`` ends it hard (as a
power cut would), ``stop()`` ends it cleanly (it saves its persistence file),
``start()`` brings it back on the same port with the same store.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

INSTALL_HINT = (
    "Mosquitto is not installed. Install it with your package manager, e.g. "
    "'sudo apt-get install mosquitto' (Debian, Ubuntu, Raspberry Pi OS), "
    "'brew install mosquitto' (macOS), or see https://mosquitto.org/download/."
)


class MosquittoMissing(RuntimeError):
    """No mosquitto binary: the message says how to install it."""


def find_mosquitto() -> str:
    """Path of the mosquitto binary, or MosquittoMissing with install advice."""
    candidates = (shutil.which("mosquitto"), "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise MosquittoMissing(INSTALL_HINT)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Broker:
    """A Mosquitto process of our own.

    ``extra_config`` lines are appended to the generated mosquitto.conf (a TLS
    listener, an ACL file...). ``url`` is what a station's config points at.
    """

    def __init__(
        self,
        directory: str | Path | None = None,
        *,
        port: int | None = None,
        persistence: bool = True,
        extra_config: str = "",
        listener: str | None = None,
    ) -> None:
        self.binary = find_mosquitto()
        self.dir = Path(directory or tempfile.mkdtemp(prefix="kiosk-broker-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.persistence = persistence
        self.extra_config = extra_config
        self.listener = listener
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.dir / "mosquitto.conf"

    def _write_config(self) -> None:
        lines = [
            self.listener or f"listener {self.port} 127.0.0.1",
            "allow_anonymous true" if not self.listener else "",
            # Started as root, Mosquitto drops to its own user and then cannot write here.
            f"user {getpass.getuser()}",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.dir}/",
            "autosave_interval 1",
            "autosave_on_changes false",
            "max_queued_messages 100000",
            "max_inflight_messages 20",
            "log_dest file " + str(self.dir / "mosquitto.log"),
            "log_type error",
            "log_type warning",
            "log_type notice",
            self.extra_config,
        ]
        self.config_path.write_text("\n".join(line for line in lines if line) + "\n")

    def start(self, timeout: float = 10.0) -> Broker:
        if self.running:
            return self
        self._write_config()
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self._wait_listening(timeout)
        return self

    def _wait_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited at start: {self._output()}")
            with contextlib.suppress(OSError), socket.create_connection(
                ("127.0.0.1", self.port), timeout=0.2
            ):
                return
            time.sleep(0.02)
        raise RuntimeError(f"mosquitto did not listen on port {self.port} within {timeout} s")

    def _output(self) -> str:
        assert self.process is not None
        err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
        log_file = self.dir / "mosquitto.log"
        return err + (log_file.read_text(errors="replace") if log_file.exists() else "")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Clean shutdown: Mosquitto writes its persistence file first."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """Hard stop, as a crash or power cut."""
        self._end(signal.SIGKILL)

    def _end(self, sig: int) -> None:
        if not self.running:
            return
        assert self.process is not None
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
