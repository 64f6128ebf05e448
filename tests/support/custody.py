"""Rigs for the custody end-to-end test: stations that encode inline on a private pcscd, the
district's custody keeper, and the district's command line, all in this process.

A `ChipStation` is one real `kiosk.station.loop.Station` on a thread with its own Evolis
printer simulator on a pty, whose blanks carry chips laid on one reader of the shared
pcscd (one pcscd per process: PCSCLITE_CSOCK_NAME is read once, kiosk/sim/pcscd.py), its
own spool, ``[encoder] mode = "inline"`` and the ``demo`` personalizer.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import threading
import time
from contextlib import contextmanager, redirect_stdout
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from kiosk.district.cli import main as district_main
from kiosk.district.client import DistrictClient
from kiosk.district.custody.keep import Keeper
from kiosk.sim.printer import PrinterSimulator
from kiosk.station.config import from_dict
from kiosk.station.loop import Station
from tests.support.wait import wait_until

DISTRICT = "3210"


class ChipStation:
    """Station *name* printing on its own simulator, encoding at pcscd reader *reader*."""

    def __init__(self, name: str, directory: Path, *, broker_url: str, public_key: str,
                 reader: str, encoder_port: int, uids: list[bytes], feeder: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.uids = [uid.hex().upper() for uid in uids]  # its blanks' chips, in feed order
        self.sim = PrinterSimulator(str(directory / "printer"), card_seconds=0.02,
                                    receive_timeout=0.8, feeder=feeder, uids=uids,
                                    encoder_port=encoder_port)
        self.sim.start()
        self.settings = {
            "station": {"district": DISTRICT, "id": name, "spool": str(directory / "spool.db")},
            "mqtt": {"url": broker_url, "keepalive_s": 5},
            "printer": {"port": self.sim.path, "print_seconds": 2.0, "setting_timeout_s": 0.5,
                        "download_timeout_s": 1.0, "poll_s": 0.1, "resync_s": 1.2},
            "tray": {"enabled": False, "port": str(directory / "no-tray")},
            "security": {"trusted_keys": [public_key]},
            "encoder": {"mode": "inline", "reader": reader, "personalizer": "demo",
                        "timeout_s": 10.0, "card_wait_s": 5.0},
        }
        self.station: Station | None = None
        self.thread: threading.Thread | None = None

    def start(self, district: DistrictClient) -> ChipStation:
        self.station = Station(from_dict(self.settings))
        self.thread = threading.Thread(target=self.station.run, name=self.name, daemon=True)
        self.thread.start()
        wait_until(lambda: district.availability.get(self.name) == "online", 15,
                   what=f"{self.name} online")
        return self

    def stop(self) -> None:
        if self.station is not None and self.thread is not None:
            self.station.stop()
            self.thread.join(timeout=20)
            assert not self.thread.is_alive(), f"{self.name} did not stop"
            self.station = self.thread = None
        self.sim.stop()

    def meta(self, key: str, default: str = "") -> str:
        """A value of the spool's ``meta`` table, read on a connection of its own."""
        with sqlite3.connect(self.settings["station"]["spool"]) as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def register(self) -> list[tuple]:
        """The station's own register of blanks: (uid, record_id, outcome, category)."""
        with sqlite3.connect(self.settings["station"]["spool"]) as db:
            return db.execute("SELECT uid, record_id, outcome, category FROM blanks"
                              " ORDER BY id").fetchall()


@contextmanager
def keeping(broker_url: str, db: Path, keeper_class=Keeper, **options):
    """A keeper on a thread of the test, connected, stopped (and joined) at the end; what
    ended its run() early is in ``keeper.failure``."""
    keeper = keeper_class(broker_url, str(db), district=DISTRICT, **options)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            keeper.run()
        except BaseException as error:  # the test looks at it
            failure.append(error)

    thread = threading.Thread(target=run, name="custody-keeper", daemon=True)
    thread.start()
    keeper.failure = failure
    try:
        assert wait_until(lambda: keeper._connected or failure, 10), "keeper never connected"
        yield keeper
    finally:
        keeper.stop()
        thread.join(20)
        assert not thread.is_alive(), "the keeper did not stop"


@contextmanager
def keeper_running(broker_url: str, db: Path):
    """`keeping`, and nothing may have ended the keeper's run early."""
    with keeping(broker_url, db) as keeper:
        assert not keeper.failure, keeper.failure
        yield keeper
    assert not keeper.failure, keeper.failure


class NoteWatcher:
    """The keeper's notes on ``{root}/{d}/_custody/events`` as sent (the district client
    files every event under its topic's station, which would hide the note's own), each
    with the monotonic time it arrived (``heard_at``)."""

    def __init__(self, broker_url: str, root: str = "ektp/v1") -> None:
        host, port = broker_url.removeprefix("mqtt://").rsplit(":", 1)
        self.notes: list[dict] = []
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                                  client_id="custody-note-watcher")
        self.client.on_connect = lambda c, *a: c.subscribe(
            f"{root}/{DISTRICT}/_custody/events", 1)
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._heard
        self.client.connect(host, int(port))
        self.client.loop_start()
        assert self._subscribed.wait(10), "the note watcher could not subscribe"

    def _heard(self, client, userdata, message) -> None:
        self.notes.append({**json.loads(message.payload), "heard_at": time.monotonic()})

    def of(self, kind: str) -> list[dict]:
        return [note for note in list(self.notes) if note["type"] == kind]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def custody(*args: str) -> str:
    """``kiosk district custody ARGS`` in this process: its standard output (exit 0)."""
    out = io.StringIO()
    with redirect_stdout(out):
        code = district_main(["custody", *args])
    assert code == 0, f"custody {' '.join(args)} exited {code}: {out.getvalue()}"
    return out.getvalue()


def csv_rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
