"""sd_notify against a real unix datagram socket, the station's watchdog pings, the unit file."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from kiosk.ops.install import render_unit
from kiosk.ops.systemd import Notifier
from kiosk.station.config import from_dict
from kiosk.station.loop import Station

SYSTEMD_HINT = ("systemd-analyze is missing: install it with 'apt-get install -y systemd' "
                "(Debian, Raspberry Pi OS)")


class NotifySocket:
    """What systemd holds: a bound AF_UNIX datagram socket that collects messages."""

    def __init__(self, address: str | bytes) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.messages: list[str] = []

    def receive(self, timeout: float) -> list[str]:
        """Every datagram that arrives within *timeout* seconds (also kept in .messages)."""
        got = []
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                got.append(self.sock.recv(4096).decode())
            except TimeoutError:
                break
        self.messages += got
        return got

    def wait_for(self, wanted: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                message = self.sock.recv(4096).decode()
            except TimeoutError:
                return False
            self.messages.append(message)
            if wanted in message.splitlines():
                return True
        return False

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_path():
    directory = tempfile.mkdtemp(prefix="sd-")  # a short path: AF_UNIX allows 107 bytes
    yield os.path.join(directory, "notify")
    shutil.rmtree(directory)


@pytest.fixture
def systemd_socket(notify_path):
    server = NotifySocket(notify_path)
    yield server
    server.close()


# -- the Notifier --------------------------------------------------------------------------


def test_ready_and_stopping_carry_a_status_line(systemd_socket, notify_path):
    notifier = Notifier(notify_path)
    assert notifier.notify("READY=1")
    assert notifier.notify("STOPPING=1")
    assert notifier.status("printing\n3 queued")
    assert systemd_socket.receive(0.2) == [
        "READY=1\nSTATUS=running", "STOPPING=1\nSTATUS=stopping", "STATUS=printing 3 queued"]


def test_abstract_socket_address():
    name = f"kiosk-test-{uuid.uuid4().hex}"
    server = NotifySocket(b"\0" + name.encode())
    try:
        notifier = Notifier.from_environment({"NOTIFY_SOCKET": "@" + name})
        assert notifier.notify("READY=1")
        assert server.receive(0.2) == ["READY=1\nSTATUS=running"]
    finally:
        server.close()


def test_watchdog_from_environment_only_for_this_process(notify_path):
    mine = {"NOTIFY_SOCKET": notify_path, "WATCHDOG_USEC": "4000000",
            "WATCHDOG_PID": str(os.getpid())}
    assert Notifier.from_environment(mine).watchdog_s == 4.0
    assert Notifier.from_environment({**mine, "WATCHDOG_PID": "1"}).watchdog_s is None
    assert Notifier.from_environment({**mine, "WATCHDOG_USEC": "x"}).watchdog_s is None


def test_without_notify_socket_nothing_is_sent():
    notifier = Notifier.from_environment({"WATCHDOG_USEC": "1000000"})
    assert not notifier.enabled
    assert not notifier.notify("READY=1")
    assert not notifier.notify("WATCHDOG=1")


def test_watchdog_pings_limited_to_half_the_period(systemd_socket, notify_path):
    now = [100.0]
    notifier = Notifier(notify_path, watchdog_usec=2_000_000, clock=lambda: now[0])
    sent = []
    for t in (100.0, 100.3, 100.99, 101.0, 101.5, 102.0, 102.01):
        now[0] = t
        sent.append(notifier.notify("WATCHDOG=1"))
    assert sent == [True, False, False, True, False, True, False]
    assert systemd_socket.receive(0.2) == ["WATCHDOG=1"] * 3


def test_no_watchdog_configured_means_no_pings(systemd_socket, notify_path):
    notifier = Notifier(notify_path)
    assert not notifier.notify("WATCHDOG=1")
    assert notifier.notify("READY=1")
    assert systemd_socket.receive(0.2) == ["READY=1\nSTATUS=running"]


def test_vanished_socket_is_reported_once_and_never_raises(notify_path, caplog):
    notifier = Notifier(notify_path)  # nobody bound it
    assert not notifier.notify("READY=1")
    assert not notifier.status("still here")
    warnings = [r for r in caplog.records if "cannot notify systemd" in r.getMessage()]
    assert len(warnings) == 1


# -- the real station loop -----------------------------------------------------------------


def test_station_pings_stop_while_its_loop_hangs(station_settings, systemd_socket, notify_path):
    notifier = Notifier(notify_path, watchdog_usec=200_000)
    station = Station(from_dict(station_settings), notify=notifier.notify)
    thread = threading.Thread(target=station.run, daemon=True)
    release, hung = threading.Event(), threading.Event()
    handle = station.core.handle

    def stuck(event):
        hung.set()
        release.wait(30)
        return handle(event)

    thread.start()
    try:
        assert systemd_socket.wait_for("READY=1", 15)
        assert systemd_socket.wait_for("WATCHDOG=1", 5)
        assert systemd_socket.wait_for("WATCHDOG=1", 5)
        station.core.handle = stuck  # the next event (a tick within 1 s) blocks the loop
        assert hung.wait(5)
        systemd_socket.receive(0.05)  # what left before the hang
        # Healthy, the loop pings at least once a second.
        assert "WATCHDOG=1" not in systemd_socket.receive(2.5)
        release.set()
        assert systemd_socket.wait_for("WATCHDOG=1", 3)
    finally:
        release.set()
        station.stop()
        thread.join(timeout=20)
    assert not thread.is_alive()
    systemd_socket.receive(0.2)
    assert "STOPPING=1\nSTATUS=stopping" in systemd_socket.messages


# -- the unit file ---------------------------------------------------------------------------


def unit_settings(text: str) -> dict[tuple[str, str], str]:
    section, settings = "", {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings[(section, key)] = value
    return settings


def test_unit_runs_the_station_under_a_watchdog():
    unit = unit_settings(render_unit("/opt/kiosk/venv"))
    assert unit[("Service", "Type")] == "notify"
    assert unit[("Service", "ExecStart")] == (
        "/opt/kiosk/venv/bin/kiosk run --config /etc/kiosk/station.toml")
    assert unit[("Service", "Restart")] == "always"
    # Exit 2 is a configuration `kiosk run` refused (station.md): restarting cannot fix it.
    assert unit[("Service", "RestartPreventExitStatus")] == "2"
    assert unit[("Service", "User")] == "kiosk"
    watchdog = unit[("Service", "WatchdogSec")]
    assert watchdog.endswith("s") and int(watchdog[:-1]) >= 10  # the loop pings every second
    assert unit[("Install", "WantedBy")] == "multi-user.target"
    for breaks_devices in ("PrivateDevices", "DevicePolicy", "DeviceAllow", "PrivateUsers",
                           "ProtectClock"):
        assert ("Service", breaks_devices) not in unit


def verify(unit_text: str, directory: Path) -> list[str]:
    """systemd-analyze verify's complaints about the unit (ExecStart made to exist)."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.fail(SYSTEMD_HINT, pytrace=False)
    unit = directory / "kiosk.service"
    unit.write_text(unit_text)
    done = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True,
                          timeout=60)
    complaints = [line for line in (done.stdout + done.stderr).splitlines()
                  if "kiosk.service" in line]
    if done.returncode:
        complaints.append(f"exit status {done.returncode}")
    return complaints


@pytest.fixture
def venv(tmp_path) -> str:
    program = tmp_path / "venv" / "bin" / "kiosk"
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    return str(program.parent.parent)


def test_unit_passes_systemd_analyze_verify(tmp_path, venv):
    assert verify(render_unit(venv), tmp_path) == []


def test_systemd_analyze_verify_catches_a_broken_unit(tmp_path, venv):
    broken = render_unit(venv).replace("Type=notify", "Type=notfiy")
    assert verify(broken, tmp_path)


# -- the service as systemd runs it ------------------------------------------------------------


def test_kiosk_run_talks_to_systemd_and_logs_for_the_journal(
    station_settings, systemd_socket, notify_path, tmp_path
):
    from tests.conftest import to_toml

    config = tmp_path / "station.toml"
    config.write_text(to_toml(station_settings))
    log = tmp_path / "journal.log"
    with open(log, "wb") as journal:
        # journald's stream is a socket; systemd names it by device:inode, as here.
        stat = os.fstat(journal.fileno())
        env = {**os.environ, "NOTIFY_SOCKET": notify_path, "WATCHDOG_USEC": "2000000",
               "JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino}"}
        process = subprocess.Popen([sys.executable, "-m", "kiosk", "run", "--config", str(config)],
                                   stdout=journal, stderr=journal, env=env)
        try:
            assert systemd_socket.wait_for("READY=1", 20), log.read_text()
            assert systemd_socket.wait_for("WATCHDOG=1", 5)
        finally:
            process.terminate()
            assert process.wait(timeout=20) == 0
    systemd_socket.receive(0.5)
    assert any("STOPPING=1" in m for m in systemd_socket.messages)
    lines = [line for line in log.read_text().splitlines() if line]
    assert lines and all(line.startswith("<") for line in lines), lines[:5]
