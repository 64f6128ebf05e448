"""Releases for the updater's tests: small real bundles whose station behaves as told.

A fake release is a real bundle (signed, with a manifest and a payload) whose
``venv/bin/kiosk`` is a script on this interpreter running ``fake_station`` below, in
one of these modes (the file ``mode`` in the release):
  good       sd_notify READY and WATCHDOG, the real HealthReporter, a real MQTT connection
  exit       exits at once (status 1)
  no-broker  as good, but its broker is a closed port: never connected
  hang       READY and one good health report, then nothing (no watchdog, no report)
It opens the spool (SQLite, WAL, synchronous=FULL) and notes its start there, as the
station does, so the tests can see the spool intact after every fault.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import time
import tomllib
from pathlib import Path

from kiosk.ops.update import bundle
from kiosk.ops.update.platform import platform_of

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
    reporter.facts = lambda: {"broker": client.is_connected(), "printer": "reached",
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
