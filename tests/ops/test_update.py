"""kiosk update: a good release runs; a bad bundle or a bad release leaves the old one running.

Real parts: real bundles (signed, tar, gzip), a supervisor of real processes in the role of
systemd (sd_notify READY/WATCHDOG, restart always: kiosk.ops.update.supervise), fake
stations that speak sd_notify and MQTT to the real Mosquitto, the real spool (SQLite).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from kiosk.contract.signing import generate_key_pair, load_private_key
from kiosk.ops.update import bundle as bundles
from kiosk.ops.update.bundle import BundleError
from kiosk.ops.update.cli import load_settings
from kiosk.ops.update.health import read_report
from kiosk.ops.update.layout import Layout
from kiosk.ops.update.platform import Platform
from kiosk.ops.update.supervisor import LocalSupervisor, SupervisorError
from kiosk.ops.update.updater import Updater
from kiosk.station.spool import Spool
from tests.ops.update_fakes import make_bundle

HEALTH_S = 6.0


@pytest.fixture
def release_key(tmp_path):
    private, public = generate_key_pair(tmp_path, name="release")
    return load_private_key(private), public


class Station:
    """A station's disk (root, spool, config) and its unit under a real supervisor."""

    def __init__(self, tmp: Path, broker_url: str, public_key: Path) -> None:
        self.tmp, self.root = tmp, tmp / "opt-kiosk"
        self.spool = tmp / "state" / "spool.db"
        self.config = tmp / "station.toml"
        self.socket = str(tmp / "unit.sock")
        self.config.write_text(
            f'[station]\ndistrict = "3210"\nid = "st-1"\nspool = "{self.spool}"\n'
            f'[mqtt]\nurl = "{broker_url}"\n'
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
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            self.daemon.wait()
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
        return [(pid, report.get("version") if report.get("pid") == pid else "?")
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
    node.wait_running("1.0")
    yield node
    node.stop_unit()
    assert node.running() == [], "a station process outlived its supervisor"


def test_a_good_release_runs_and_the_last_two_are_kept(station, release_key, tmp_path):
    key, _ = release_key
    done = station.update(str(make_bundle(tmp_path / "b2.bundle", "2.0", key)))
    assert done.returncode == 0, done.stdout + done.stderr
    station.wait_running("2.0")
    assert station.layout.current_version() == "2.0"
    done = station.update(str(make_bundle(tmp_path / "b3.bundle", "3.0", key)))
    assert done.returncode == 0, done.stdout + done.stderr
    station.wait_running("3.0")
    assert station.layout.installed() == ["2.0", "3.0"]
    assert [(e["version"], e["outcome"]) for e in station.events()] == [
        ("2.0", "updated"), ("3.0", "updated")]
    station.spool_intact()


@pytest.mark.parametrize("mode, why", [
    ("exit", "restarted 3 times"),
    ("no-broker", "has not reached the broker"),
    ("hang", "hung"),  # the report goes stale (2 s) before the watchdog (3 s) kills it
])
def test_a_release_that_does_not_come_up_is_rolled_back(station, release_key, tmp_path,
                                                        mode, why):
    key, _ = release_key
    started = time.monotonic()
    done = station.update(str(make_bundle(tmp_path / "bad.bundle", "2.0", key, mode=mode)))
    took = time.monotonic() - started
    assert done.returncode == 1, done.stdout + done.stderr
    station.wait_running("1.0")
    assert station.layout.current_version() == "1.0"
    (event,) = station.events()
    assert (event["version"], event["outcome"]) == ("2.0", "rolled-back"), event
    assert why in event["detail"] and "1.0 runs again" in event["detail"], event["detail"]
    assert took < HEALTH_S + 15, f"{took:.1f} s"
    station.spool_intact()


def _refused(station: Station, path: Path, reason: str) -> None:
    before = sorted(p.name for p in station.layout.releases.iterdir())
    pid = station.running()
    done = station.update(str(path))
    assert done.returncode == 1, done.stdout + done.stderr
    assert reason in done.stdout, done.stdout
    assert sorted(p.name for p in station.layout.releases.iterdir()) == before
    assert station.layout.current_version() == "1.0"
    assert station.running() == pid  # the same process: never restarted
    (event,) = station.events()
    assert event["outcome"] == "refused" and reason in event["detail"]


def test_a_bundle_signed_by_another_key_is_refused(station, tmp_path):
    other = load_private_key(generate_key_pair(tmp_path, name="other")[0])
    _refused(station, make_bundle(tmp_path / "x.bundle", "2.0", other), "unknown-key")


def test_an_altered_manifest_is_refused(station, release_key, tmp_path):
    path = make_bundle(tmp_path / "x.bundle", "2.0", release_key[0])
    data = path.read_bytes()
    at = data.index(b'"version":"2.0"')
    path.write_bytes(data[:at] + b'"version":"2.1"' + data[at + 15:])
    _refused(station, path, "bad-signature")


def test_a_bundle_for_another_platform_is_refused(station, release_key, tmp_path):
    arm = Platform("aarch64", f"{sys.version_info[0]}.{sys.version_info[1]}")
    _refused(station, make_bundle(tmp_path / "x.bundle", "2.0", release_key[0], platform=arm),
             "bundle is for aarch64")


def test_a_bundle_for_another_python_is_refused(station, release_key, tmp_path):
    other = Platform(os.uname().machine, "3.9")
    _refused(station, make_bundle(tmp_path / "x.bundle", "2.0", release_key[0], platform=other),
             "bundle is for Python 3.9")


def test_a_truncated_bundle_is_refused(station, release_key, tmp_path):
    path = make_bundle(tmp_path / "x.bundle", "2.0", release_key[0])
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    _refused(station, path, "truncated")


def test_a_payload_changed_after_signing_is_refused(station, release_key, tmp_path):
    path = make_bundle(tmp_path / "x.bundle", "2.0", release_key[0])
    with tarfile.open(path) as outer:
        payload = outer.getmember("payload.tar.gz")
    data = bytearray(path.read_bytes())
    data[payload.offset_data + payload.size // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    _refused(station, path, "digest-mismatch")


def test_a_spool_migration_the_old_release_cannot_open_is_refused(station, release_key,
                                                                   tmp_path):
    path = make_bundle(tmp_path / "x.bundle", "2.0", release_key[0], spool=(1, (0, 1)))
    _refused(station, path, "could not open after a rollback")


def test_a_full_disk_while_unpacking_leaves_everything_as_it_was(station, release_key,
                                                                  tmp_path):
    path = make_bundle(tmp_path / "x.bundle", "2.0", release_key[0])
    writes = []

    def full_disk(fd: int, data: bytes) -> int:
        writes.append(len(data))
        if len(writes) == 3:  # the third write finds the disk full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return os.write(fd, data)

    settings = load_settings(str(station.config))
    said = []
    updater = Updater(settings, LocalSupervisor(station.socket), write=full_disk,
                      say=said.append)
    pid = station.running()
    outcome = updater.update(path)
    assert outcome.outcome == "refused" and "No space left on device" in outcome.detail
    assert station.layout.installed() == ["1.0"]
    assert not list(station.layout.releases.glob(".*"))  # no half-unpacked directory
    assert station.running() == pid and station.layout.current_version() == "1.0"


def test_the_update_waits_for_the_card_in_the_printer(station, release_key, tmp_path):
    spool = Spool(station.spool)
    spool.add_job("r-1", 0, "************1234", b"{}")
    spool.update_job("r-1", state="processing", phase="picked")
    proc = subprocess.Popen(
        [sys.executable, "-m", "kiosk", "update", "--config", str(station.config),
         "--supervisor", f"local:{station.socket}",
         str(make_bundle(tmp_path / "b2.bundle", "2.0", release_key[0]))],
        stdout=subprocess.PIPE, text=True)
    try:
        assert "verified" in proc.stdout.readline()
        assert "a card is in the printer" in proc.stdout.readline()
        assert station.layout.current_version() == "1.0"
        assert not station.layout.release("2.0").exists()
        spool.update_job("r-1", state="completed", phase=None)
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        spool.close()
    station.wait_running("2.0")


def test_a_card_that_stays_in_the_printer_refuses_the_update(station, release_key, tmp_path):
    spool = Spool(station.spool)
    spool.add_job("r-1", 0, "************1234", b"{}")
    spool.update_job("r-1", state="processing", phase="picking")
    spool.close()
    done = station.update(str(make_bundle(tmp_path / "b2.bundle", "2.0", release_key[0])))
    assert done.returncode == 1 and "a card stayed in the printer" in done.stdout
    assert station.layout.installed() == ["1.0"]


def test_check_changes_nothing(station, release_key, tmp_path):
    done = station.update("--check", str(make_bundle(tmp_path / "b.bundle", "2.0",
                                                      release_key[0])))
    assert done.returncode == 0 and "good for this station" in done.stdout, done.stderr
    assert station.layout.installed() == ["1.0"] and station.events() == []


def test_bad_update_configuration_names_its_keys(tmp_path):
    config = tmp_path / "station.toml"
    config.write_text('[station]\ndistrict = "3210"\nid = "st-1"\n'
                      '[update]\nhealth_s = 0\ntrusted_keys = []\nspeed = 3\n')
    done = subprocess.run([sys.executable, "-m", "kiosk", "update", "--config", str(config),
                           "x.bundle"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    for key in ("update.health_s", "update.trusted_keys", "update.speed"):
        assert key in done.stderr, done.stderr


def test_a_bundle_that_is_not_one(tmp_path, release_key):
    junk = tmp_path / "junk.bundle"
    junk.write_bytes(b"not a tar at all" * 100)
    keys = bundles.trusted_keys([release_key[1]])
    with pytest.raises(BundleError) as refused:
        bundles.verify(junk, keys)
    assert refused.value.reason == "not-a-bundle"
