"""The district's register of blanks on a real Mosquitto: ``kiosk district custody keep``.

Stations here only publish ``blank`` events as a station does (mqtt.md: schema, boot_id,
seq, ts, QoS 1 on ``{root}/{d}/{s}/events``); the keeper runs on a thread of the test or
as its own process (SIGTERM). Faults are put at chosen moments: a keeper that never
acknowledges, a commit that fails.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import sys
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from kiosk.district.custody.keep import EVENT_SCHEMA, FOREIGN_COMMAND, Keeper
from kiosk.district.custody.register import Register
from tests.conftest import DISTRICT, ServiceProcess, wait_until
from tests.support.custody import keeping

PREFIX = f"ektp/v1/{DISTRICT}"
UID_A, UID_B, UID_C = "04A1B2C3D4E5F6", "04A1B2C3D4E5F7", "0422334455667788990A"


class StationSim:
    """Publishes blank events as a station does: its own boot_id, seq +1 per message."""

    def __init__(self, broker, name: str) -> None:
        self.name, self.boot_id, self.seq = name, str(uuid.uuid4()), 0
        self.commands: list[tuple[str, dict, bytes]] = []  # (name, body, correlation)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                                  client_id=f"{DISTRICT}-{name}-{self.boot_id[:6]}")
        self.client.on_connect = lambda c, *a: c.subscribe(f"{PREFIX}/{name}/cmd/+", 1)
        self.client.on_message = self._on_command
        self._subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert self._subscribed.wait(10), "the simulated station could not subscribe"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def blank(self, uid: str | None, outcome: str = "printed", category: str | None = None,
              record_id: str | None = "R-1", ts: str | None = None, **extra) -> dict:
        self.seq += 1
        return {"schema": "ektp.event/1", "boot_id": self.boot_id, "seq": self.seq,
                "ts": ts or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "type": "blank", "uid": uid, "record_id": record_id, "document": "ektp",
                "outcome": outcome, "category": category, "detail": "", **extra}

    def send(self, body: dict | bytes) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        info = self.client.publish(f"{PREFIX}/{self.name}/events", data, qos=1)
        info.wait_for_publish(10)
        assert info.is_published(), "the broker did not take a station event"

    def _on_command(self, client, userdata, message) -> None:
        body = json.loads(message.payload)
        correlation = message.properties.CorrelationData
        self.commands.append((message.topic.rsplit("/", 1)[1], body, correlation))
        props = mqtt.Properties(mqtt.PacketTypes.PUBLISH)
        props.CorrelationData = correlation
        client.publish(message.properties.ResponseTopic, json.dumps({"ok": True}), qos=1,
                       properties=props)


def kept(db: Path) -> int:
    with sqlite3.connect(db) as connection:
        return connection.execute("SELECT COUNT(*) FROM blanks").fetchone()[0]


def rows(db: Path, sql: str = "SELECT uid, outcome, category FROM blanks ORDER BY id") -> list:
    with sqlite3.connect(db) as connection:
        return connection.execute(sql).fetchall()


class NeverAcks(Keeper):
    """Commits every event and acknowledges none: a crash right after each commit."""

    def _ack(self, mid: int, generation: int) -> None:
        pass


class CountsAgain(Keeper):
    """Counts the events the broker delivered again (a positive signal that it did)."""

    again = 0

    def _keep(self, msg) -> None:
        before = self.register.count()
        super()._keep(msg)
        if self.register.count() == before and msg.topic.endswith("/events"):
            type(self).again += 1


def test_an_event_delivered_again_after_a_crash_before_its_ack_is_kept_once(broker, tmp_path):
    db, station = tmp_path / "custody.db", StationSim(broker, "st-1")
    try:
        with keeping(broker.url, db, NeverAcks, client_id="custody-once"):
            for n in range(20):
                station.send(station.blank(f"04A1B2C3D4{n:04X}", record_id=f"R-{n}"))
            assert wait_until(lambda: kept(db) == 20, 20)
        CountsAgain.again = 0
        with keeping(broker.url, db, CountsAgain, client_id="custody-once"):
            assert wait_until(lambda: CountsAgain.again == 20, 20), \
                f"the broker delivered {CountsAgain.again} of 20 unacknowledged events again"
        assert kept(db) == 20
    finally:
        station.close()


def test_nothing_is_acknowledged_before_its_commit(broker, tmp_path):
    """The first keeper's commit fails (a full disk): it dies, the next one keeps it all."""
    db, station = tmp_path / "custody.db", StationSim(broker, "st-1")

    class DiskFull(Keeper):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)

            def full(*args) -> None:
                raise sqlite3.OperationalError("database or disk is full")
            self.register.add = full  # the batch's transaction rolls back, run() ends

    try:
        with keeping(broker.url, db, DiskFull, client_id="custody-disk") as keeper:
            for n in range(5):
                station.send(station.blank(f"04A1B2C3D4{n:04X}", record_id=f"R-{n}"))
            assert wait_until(lambda: keeper.failure, 10), "the failing commit was never tried"
        assert kept(db) == 0
        with keeping(broker.url, db, client_id="custody-disk"):
            assert wait_until(lambda: kept(db) == 5, 20), f"{kept(db)} of 5 events kept"
    finally:
        station.close()


def test_events_sent_while_the_keeper_is_away_or_the_broker_restarts_are_kept(
        broker, tmp_path):
    db, station = tmp_path / "custody.db", StationSim(broker, "st-1")
    try:
        with keeping(broker.url, db):  # the persistent session is made
            pass
        for n in range(3):  # the keeper is stopped: the broker keeps them for its session
            station.send(station.blank(f"04A1B2C3D4{n:04X}", record_id=f"R-{n}"))
        with keeping(broker.url, db) as keeper:
            assert wait_until(lambda: kept(db) == 3, 20)
            station.close()
            broker.restart()
            assert wait_until(lambda: keeper._connected, 30), "keeper did not reconnect"
            station = StationSim(broker, "st-1")
            station.send(station.blank(UID_A, record_id="R-after"))
            assert wait_until(lambda: kept(db) == 4, 20)
    finally:
        station.close()


def test_bad_station_input_is_rejected_with_a_reason_and_the_next_event_is_kept(
        broker, tmp_path, caplog):
    db, station = tmp_path / "custody.db", StationSim(broker, "st-1")
    bad = {
        b"not json {": "not UTF-8 JSON",
        b"[1, 2]": "not a JSON object",
        json.dumps(station.blank(UID_A, colour="red")).encode(): "unknown member 'colour'",
        json.dumps(station.blank("04a1b2c3d4e5f6")).encode(): "is not upper-case hex",
        json.dumps(station.blank("04A1B2C3D4")).encode(): "is not upper-case hex",
        json.dumps(station.blank(UID_A, "invalid", "hilang")).encode(): "category \"hilang\"",
        json.dumps(station.blank(UID_A, detail="x" * 20_000)).encode(): "over the 16384",
    }
    caplog.set_level(logging.WARNING, logger="kiosk.district.custody.keep")
    try:
        with keeping(broker.url, db) as keeper:
            for payload in bad:
                station.send(payload)
            station.send(station.blank(None, "invalid", "gagal-cetak", record_id="R-9"))
            station.send({"schema": "ektp.event/1", "type": "job", "record_id": "R-9"})
            assert wait_until(lambda: kept(db) == 1, 20)
            assert wait_until(lambda: keeper.rejected == len(bad), 5)
        with keeping(broker.url, db) as again:  # acknowledged: the session gives none back
            station.send(station.blank(UID_B, record_id="R-10"))
            assert wait_until(lambda: kept(db) == 2, 20)
            assert again.rejected == 0
        assert rows(db) == [(None, "invalid", "gagal-cetak"), (UID_B, "printed", None)]
        journal = caplog.text
        for reason in bad.values():
            assert reason in journal, f"no reason {reason!r} in the journal"
    finally:
        station.close()


def test_a_foreign_blank_is_flagged_at_the_district_and_the_station_told_in_seconds(
        broker, district, tmp_path):
    db = tmp_path / "custody.db"
    register = Register(db)
    register.receive("shipment-1.csv", [(1, UID_A), (2, UID_B)], "2026-12-01")
    register.close()
    station = StationSim(broker, "st-1")
    try:
        with keeping(broker.url, db):
            station.send(station.blank(UID_A, record_id="R-1"))
            station.send(station.blank(UID_C, record_id="R-2"))
            assert wait_until(lambda: station.commands, 5), "the station was not told"
            name, body, correlation = station.commands[0]
            assert (name, body["uid"], body["record_id"]) == (FOREIGN_COMMAND, UID_C, "R-2")
            assert correlation.decode() == body["request_id"]  # once per request (mqtt.md)
            assert wait_until(lambda: rows(db, "SELECT reply FROM notices") == [
                ('{"ok": true}',)], 5), "the station's answer was not booked"
            assert district.wait_for(lambda: any(
                e["type"] == "foreign-blank-warning" and e["uid"] == UID_C
                for e in district.events if e.get("schema") == EVENT_SCHEMA), 5)
        assert len(station.commands) == 1  # UID_A is in the manifest
        assert rows(db, "SELECT uid, foreign_uid FROM blanks ORDER BY id") == [
            (UID_A, 0), (UID_C, 1)]
    finally:
        station.close()


def test_a_foreign_blank_notice_unanswered_is_sent_again_with_the_same_request_id(
        broker, tmp_path):
    db = tmp_path / "custody.db"
    register = Register(db)
    register.receive("shipment-1.csv", [(1, UID_A)], "2026-12-01")
    register.close()
    station = StationSim(broker, "st-1")
    station.client.on_message = lambda c, u, m: station.commands.append(
        (m.topic, json.loads(m.payload), m.properties.CorrelationData))  # never answers
    try:
        with keeping(broker.url, db):
            station.send(station.blank(UID_C, record_id="R-2"))
            assert wait_until(lambda: len(station.commands) == 1, 5)
        with keeping(broker.url, db):
            assert wait_until(lambda: len(station.commands) == 2, 5), "not sent again"
        assert station.commands[0][1] == station.commands[1][1]
    finally:
        station.close()


def test_a_uid_used_twice_is_flagged_and_a_card_declared_invalid_after_print_is_not(
        broker, tmp_path):
    db = tmp_path / "custody.db"
    one, two = StationSim(broker, "st-1"), StationSim(broker, "st-2")
    try:
        with keeping(broker.url, db):
            one.send(one.blank(UID_A, record_id="R-1"))
            one.send(one.blank(UID_A, "invalid", "perubahan-elemen-data", record_id="R-1"))
            one.send(one.blank(UID_B, record_id="R-2"))
            two.send(two.blank(UID_B, record_id="R-3"))  # two blanks with one UID
            two.send(two.blank(UID_B, record_id="R-3"))  # the same change again: kept once
            assert wait_until(lambda: kept(db) == 4, 20)
        flags = rows(db, "SELECT station, uid, duplicate FROM blanks ORDER BY id")
        assert flags[:3] == [("st-1", UID_A, None), ("st-1", UID_A, None),
                             ("st-1", UID_B, None)]
        assert flags[3][:2] == ("st-2", UID_B)
        assert "printed again" in flags[3][2] and "R-2" in flags[3][2]
    finally:
        one.close()
        two.close()


class KeeperProcess(ServiceProcess):
    def __init__(self, broker, db: Path, directory: Path) -> None:
        super().__init__([sys.executable, "-m", "kiosk.district.cli", "custody", "keep",
                          "--url", broker.url, "--district", DISTRICT, "--db", str(db)],
                         directory / "keep.log")


def test_the_keep_command_ends_on_sigterm_and_keeps_what_came(broker, district, tmp_path):
    db, station = tmp_path / "custody.db", StationSim(broker, "st-1")
    keeper = KeeperProcess(broker, db, tmp_path).start()
    try:
        assert district.wait_for(
            lambda: district.availability.get("_custody") == "online", 20), \
            (tmp_path / "keep.log").read_text()
        station.send(station.blank(UID_A))
        assert wait_until(lambda: db.exists() and kept(db) == 1, 20)
        assert keeper.terminate() == 0
        assert district.wait_for(lambda: district.availability.get("_custody") == "offline", 5)
    finally:
        station.close()


def test_the_berita_acara_lists_exactly_the_invalid_blanks_the_stations_reported(
        broker, tmp_path):
    """Two stations, a day of cards with failures, every event sent twice (an outbox that
    re-sends after a lost PUBACK): the berita acara has each invalid blank once."""
    import csv
    import io
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from kiosk.district.cli import main

    db = tmp_path / "custody.db"
    stations = [StationSim(broker, "st-1"), StationSim(broker, "st-2")]
    categories = ("gagal-encode", "gagal-cetak", "rusak", "perubahan-elemen-data")
    reported = set()
    try:
        with keeping(broker.url, db):
            for n in range(60):
                station = stations[n % 2]
                invalid = n % 6 == 5
                category = categories[n // 6 % 4] if invalid else None
                event = station.blank(f"0422334455{n:010X}", "invalid" if invalid else "printed",
                                      category, record_id=f"R-{n:03d}")
                station.send(event)
                station.send(event)
                if invalid:
                    reported.add((event["uid"], category, station.name, f"R-{n:03d}"))
            assert wait_until(lambda: kept(db) == 60, 20)
        today = datetime.now(ZoneInfo("Asia/Jakarta")).date().isoformat()
        out = tmp_path / "ba.csv"
        assert main(["custody", "report", "--db", str(db), "--from", today, "--to", today,
                     "--format", "csv", "-o", str(out)]) == 0
        listed = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
        labels = {"Gagal encode": "gagal-encode", "Gagal cetak": "gagal-cetak",
                  "Rusak": "rusak", "Perubahan elemen data": "perubahan-elemen-data"}
        assert len(listed) == len(reported) == 10
        assert {(r["uid"], labels[r["kategori"]], r["stasiun"], r["record_id"])
                for r in listed} == reported
    finally:
        for station in stations:
            station.close()


def test_a_busy_keeper_sent_sigterm_many_times_exits_each_time(broker, district, tmp_path):
    """As the router (test_router_signal.py): a flood of bad events, a storm of SIGTERMs."""
    from tests.station.test_stop_signal import stops_under_a_storm

    for round_ in range(2):
        directory = tmp_path / str(round_)
        directory.mkdir()
        keeper = KeeperProcess(broker, directory / "custody.db", directory)
        keeper.command += ["--client-id", f"custody-{round_}"]  # no backlog from the last one
        district.availability.pop("_custody", None)
        keeper.start()
        try:
            assert district.wait_for(
                lambda: district.availability.get("_custody") == "online", 20), f"round {round_}"
            stops_under_a_storm(keeper.process, district, f"{PREFIX}/st-1/events", round_)
        finally:
            if keeper.process.poll() is None:
                keeper.kill()
