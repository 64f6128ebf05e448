"""Real parts for the tests: a Mosquitto of our own, device simulators on ptys, the station.

Mosquitto missing is a test failure that says how to install it, never a skip.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import ClassVar

import pytest

os.environ.setdefault("GPIOZERO_PIN_FACTORY", "mock")

from kiosk.contract.signing import generate_key_pair, load_private_key, sign_record
from kiosk.district.client import DistrictClient
from kiosk.sim.broker import Broker, MosquittoMissing, find_mosquitto
from kiosk.sim.printer import PrinterSimulator
from kiosk.sim.samples import make_record
from kiosk.sim.tray import TraySimulator
from kiosk.station.config import from_dict
from kiosk.station.loop import Station
from tests.support.wait import wait_until  # noqa: F401  (the one wait: tests/support/wait.py)

STATION = "st-1"
DISTRICT = "3210"


@pytest.fixture(scope="session")
def mosquitto() -> str:
    try:
        return find_mosquitto()
    except MosquittoMissing as missing:
        pytest.fail(str(missing), pytrace=False)


@pytest.fixture
def broker(tmp_path, mosquitto):
    server = Broker(tmp_path / "broker").start()
    yield server
    server.kill()


@pytest.fixture(scope="session")
def district_key(tmp_path_factory):
    private, public = generate_key_pair(tmp_path_factory.mktemp("keys"))
    return load_private_key(private), public


@pytest.fixture
def signed(district_key):
    """signed(i, **changes) → a signed sample record dict."""
    private, _ = district_key

    def make(index: int, **changes) -> dict:
        body = make_record(index)
        body.update(changes)
        return sign_record(body, private)

    return make


@pytest.fixture
def printer_sim(tmp_path):
    sim = PrinterSimulator(str(tmp_path / "printer"), card_seconds=0.02, receive_timeout=0.8)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def tray_sim(tmp_path):
    sim = TraySimulator(str(tmp_path / "tray"), cards=150)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def station_settings(tmp_path, broker, printer_sim, tray_sim, district_key):
    """The station's configuration as a dict; tests change it before starting."""
    return {
        "station": {"district": DISTRICT, "id": STATION, "spool": str(tmp_path / "spool.db")},
        "mqtt": {"url": broker.url, "keepalive_s": 5},
        "printer": {"port": printer_sim.path, "print_seconds": 2.0, "setting_timeout_s": 0.5,
                    "download_timeout_s": 1.0, "poll_s": 0.1,
                    "resync_s": 1.2},
        "tray": {"port": tray_sim.path},
        "security": {"trusted_keys": [str(district_key[1])]},
    }


class StationThread:
    """The station in this process, on a thread (stopped cleanly at the end)."""

    def __init__(self, settings: dict, district: DistrictClient | None = None) -> None:
        self.station = Station(from_dict(settings))
        self.thread = threading.Thread(target=self.station.run, daemon=True)
        self.district = district

    def __enter__(self) -> Station:
        self.thread.start()
        if self.district:  # subscribed once it says online: records sent now are queued
            assert self.district.wait_for(
                lambda: self.district.availability.get(STATION) == "online", 10)
        return self.station

    def __exit__(self, *exc: object) -> None:
        self.station.stop()
        self.thread.join(timeout=20)
        assert not self.thread.is_alive(), "station did not stop"


class ServiceProcess:
    """A long-running command of ours as its own process, for kill -9.

    Every one started is killed at the end of its test, whatever the test's fate
    (`_no_service_process_outlives_its_test`).
    """

    started: ClassVar[list[ServiceProcess]] = []

    def __init__(self, command: list[str], log: Path) -> None:
        self.command = command
        self.log = log
        self.process: subprocess.Popen | None = None

    def start(self) -> ServiceProcess:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=log,
                                            start_new_session=True)
        ServiceProcess.started.append(self)
        return self

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self) -> int:
        assert self.process is not None
        self.process.terminate()
        return self.process.wait(timeout=20)

    def kill_if_running(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


class StationProcess(ServiceProcess):
    """``kiosk run`` as its own process."""

    def __init__(self, settings: dict, directory: Path) -> None:
        self.config = directory / "station.toml"
        self.config.write_text(to_toml(settings))
        super().__init__([sys.executable, "-m", "kiosk", "run", "--config", str(self.config)],
                         directory / "station.log")


@pytest.fixture(autouse=True)
def _no_service_process_outlives_its_test():
    yield
    while ServiceProcess.started:
        ServiceProcess.started.pop().kill_if_running()


def to_toml(settings: dict) -> str:
    lines = []
    for section, body in settings.items():
        lines.append(f"[{section}]")
        for key, value in body.items():
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return str(value)


@pytest.fixture
def district(broker):
    client = DistrictClient(broker.url, district=DISTRICT).wait_connected()
    yield client
    client.close()




@pytest.fixture(scope="session")
def cupsd_present() -> None:
    from kiosk.sim.cups import CupsMissing, find_cups

    try:
        find_cups()
        import cups  # noqa: F401  (the `ipp` extra)
    except (CupsMissing, ImportError) as missing:
        pytest.fail(f"{missing} (or: scripts/setup; pip install -e '.[ipp]')", pytrace=False)


@pytest.fixture
def cups_server(tmp_path, cupsd_present):
    """A private cupsd with the queue "card" on the simulated card printer."""
    from kiosk.sim.cups import CupsServer

    server = CupsServer(tmp_path / "cups", card_seconds=0.1).start()
    yield server
    server.stop()
