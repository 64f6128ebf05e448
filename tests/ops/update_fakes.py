"""Releases for the updater's tests: small real bundles whose station behaves as told.

A fake release is a real bundle (signed, with a manifest and a payload) whose
``venv/bin/kiosk`` is a script on this interpreter running ``fake_station`` below, in
one of these modes (the file ``mode`` in the release):
  good       sd_notify READY and WATCHDOG, the real HealthReporter, a real MQTT connection
  exit       exits at once (status 1)
  no-broker  as good, but its broker is a closed port: never connected
  hang       READY and one good health report, then nothing (no watchdog, no report)
  no-printer as good, but the printer is never reached (unplugged)
It opens the spool (SQLite, WAL, synchronous=FULL) and notes its start there, as the
station does, so the tests can see the spool intact after every fault.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from kiosk.contract.signing import generate_key_pair, load_private_key
from kiosk.ops.update import bundle
from kiosk.ops.update import bundle as bundles
from kiosk.ops.update.cli import load_settings
from kiosk.ops.update.health import read_report
from kiosk.ops.update.layout import Layout
from kiosk.ops.update.platform import platform_of
from kiosk.ops.update.supervisor import LocalSupervisor, SupervisorError
from kiosk.station.spool import Spool

WORKTREE = Path(__file__).resolve().parents[2]
SCRIPT = """#!{python}
import sys
sys.path.insert(0, {worktree!r})
from tests.ops.update_fakes import fake_station
sys.exit(fake_station(__file__, sys.argv[1:]))
"""


def interpreter() -> str:
    """The interpreter a fake release's environment runs on (this one's base)."""
    return os.path.realpath(sys.executable)


def make_bundle(out: Path, version: str, key, *, mode: str = "good",
                spool: tuple[int, tuple[int, int]] = (0, (0, 0)),
                platform=None) -> Path:
    work = out.parent / f".build-{version}-{mode}"
    shutil.rmtree(work, ignore_errors=True)
    (work / "venv" / "bin").mkdir(parents=True)
    script = work / "venv" / "bin" / "kiosk"
    script.write_text(SCRIPT.format(python=sys.executable, worktree=str(WORKTREE)))
    script.chmod(0o755)
    os.symlink(interpreter(), work / "venv" / "bin" / "python")
    (work / "mode").write_text(mode)
    (work / "venv" / "filler.bin").write_bytes(os.urandom(200_000))  # a payload of some size
    plat = platform or platform_of(interpreter())
    bundle.build(out, work, version=version, platform_name=f"test-{plat.machine}",
                 platform=plat, interpreter=interpreter(), key=key, spool=spool)
    shutil.rmtree(work)
    return out


HEALTH_S = 6.0


@pytest.fixture
def release_key(tmp_path):
    private, public = generate_key_pair(tmp_path, name="release")
    return load_private_key(private), public


class Station:
    """A station's disk (root, spool, config) and its unit under a real supervisor."""

    def __init__(self, tmp: Path, broker_url: str, public_key: Path, extra: str = "") -> None:
        self.tmp, self.root = tmp, tmp / "opt-kiosk"
        self.spool = tmp / "state" / "spool.db"
        self.config = tmp / "station.toml"
        self.socket = str(tmp / "unit.sock")
        self.config.write_text(
            f'[station]\ndistrict = "3210"\nid = "st-1"\nspool = "{self.spool}"\n'
            f'[mqtt]\nurl = "{broker_url}"\n{extra}'
            f'[update]\ntrusted_keys = ["{public_key}"]\nhealth_s = {HEALTH_S}\n'
            f'root = "{self.root}"\nsettle_s = 2.5\nstale_s = 2.0\ncard_wait_s = 5\n')
        spool = Spool(self.spool)  # the real schema
        spool.close()
        self.layout = Layout(self.root)
        self.daemon: subprocess.Popen | None = None

    def install(self, path: Path) -> None:
        """The first install: unpack and point ``current`` at it (no unit yet)."""
        manifest = bundles.verify(path, load_settings(str(self.config)).keys)
        self.layout.releases.mkdir(parents=True)
        bundles.unpack(path, manifest, self.layout.release(manifest.version))
        self.layout.point_at(manifest.version)

    def start_unit(self) -> None:
        command = [sys.executable, "-m", "kiosk.ops.update.supervise", "--socket", self.socket,
                   "--watchdog-s", "3", "--start-timeout-s", "4", "--restart-s", "0.1", "--",
                   str(self.root / "current" / "venv" / "bin" / "kiosk"), "run",
                   "--config", str(self.config)]
        self.log = open(self.tmp / "unit.log", "ab")  # noqa: SIM115
        self.daemon = subprocess.Popen(command, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.socket):
            assert time.monotonic() < deadline, "the supervisor did not start"
            time.sleep(0.02)

    def stop_unit(self) -> None:
        if self.daemon is None:
            return
        with contextlib.suppress(SupervisorError):
            LocalSupervisor(self.socket).ask("quit", timeout=20)
        try:
            self.daemon.wait(timeout=20)
        except subprocess.TimeoutExpired:  # a stuck supervisor: its stations go with it
            for pid, _ in self.running():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
            self.daemon.kill()
            self.daemon.wait()
        finally:
            self.daemon = None
            self.log.close()

    def update(self, *args: str, env: dict | None = None,
               timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "kiosk", "update", "--config", str(self.config),
             "--supervisor", f"local:{self.socket}", *args],
            capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})

    def running(self) -> list[tuple[int, str]]:
        """(pid, version) of every station process of this root (from /proc and its report)."""
        found = []
        marker = str(self.root / "current" / "venv" / "bin" / "kiosk").encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if marker in cmdline.split(b"\0")[:2]:  # the script's interpreter runs it
                found.append(int(entry.name))
        report = read_report(self.spool.parent / "health.json") or {}
        return [(pid, report.get("release") if report.get("pid") == pid else "?")
                for pid in found]

    def wait_running(self, version: str, timeout: float = 15) -> None:
        """Until exactly one station process runs, it is *version*, and reports healthy."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            running = self.running()
            report = read_report(self.spool.parent / "health.json") or {}
            if (len(running) == 1 and running[0][1] == version and report.get("broker")
                    and time.time() - report.get("ts", 0) < 1.5):
                return
            time.sleep(0.05)
        raise AssertionError(f"wanted {version} alone and healthy, running: {self.running()}")

    def events(self) -> list[dict]:
        path = self.spool.parent / "update-events.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() \
            else []

    def spool_intact(self) -> None:
        db = sqlite3.connect(f"file:{self.spool}?mode=ro", uri=True)
        try:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert db.execute("SELECT count(*) FROM fake_starts").fetchone()[0] >= 1
        finally:
            db.close()


@pytest.fixture
def station(tmp_path, broker, release_key):
    key, public = release_key
    node = Station(tmp_path, broker.url, public)
    node.install(make_bundle(tmp_path / "old.bundle", "1.0", key))
    node.start_unit()
    try:
        node.wait_running("1.0")
        yield node
    finally:  # also when it never came up: no supervisor may outlive its test
        node.stop_unit()
    assert node.running() == [], "a station process outlived its supervisor"


def fake_station(script: str, argv: list[str]) -> int:
    from kiosk.ops.systemd import Notifier
    from kiosk.ops.update.health import HealthReporter, health_path

    release = Path(os.path.realpath(script)).parents[2]
    mode = (release / "mode").read_text().strip()
    version = release.name
    with open(argv[argv.index("--config") + 1], "rb") as handle:
        config = tomllib.load(handle)
    if mode == "exit":
        return 1
    spool = Path(config["station"]["spool"])
    db = sqlite3.connect(spool, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS fake_starts (version TEXT, pid INTEGER, at REAL)")
    db.execute("INSERT INTO fake_starts VALUES (?, ?, ?)", (version, os.getpid(), time.time()))
    notifier = Notifier.from_environment()
    reporter = HealthReporter(health_path(spool), version, notifier.notify, period_s=0.2)
    url = config["mqtt"]["url"] if mode != "no-broker" else "mqtt://127.0.0.1:1"
    client = _connect(url, f"fake-{os.getpid()}")
    printer = "connecting" if mode == "no-printer" else "reached"
    reporter.facts = lambda: {"broker": client.is_connected(), "printer": printer,
                              "reasons": ["none"]}
    reporter.notify("READY=1")
    if mode == "hang":
        reporter.facts = lambda: {"broker": True, "printer": "reached", "reasons": ["none"]}
        reporter._write()
        time.sleep(3600)
    while True:
        reporter.notify("WATCHDOG=1")
        time.sleep(0.05)


def _connect(url: str, client_id: str):
    import paho.mqtt.client as mqtt

    host, _, port = url.removeprefix("mqtt://").partition(":")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5)
    client.connect_async(host, int(port or 1883))
    client.loop_start()
    return client
