"""A backlog released at once: 16,851 records (the Majalengka backlog of seeds/README.md)
with realistic photos, queued at the broker while the station is away, then taken in.

The station (``kiosk run``, its own process) has a broker session; it is stopped, the
district publishes the whole backlog (signed sample records, 300x400 JPEG photo and PNG
signature, about 14.5 KB each) and the station is started again. It spools every record
(validation, signature check, one durable commit per batch) and acknowledges it only after
the commit. The broker is configured to let out 20 unacknowledged messages at a time
(``max_inflight_messages 20``, and the station asks for a Receive Maximum of 32), but
Mosquitto 2.0.11 stops holding to that once acknowledgements flow: the backlog comes as
fast as the broker can send it, and the station's own intake window (kiosk/station/mqttlink.py)
keeps it in the socket and at the broker. Meanwhile the printer prints at a real
printer's pace.

Printed beside the station's spooling rate, measured in the same run: a raw SQLite insert
of the same rows into the spool's schema with the same durability (WAL,
``synchronous=FULL``), committing every 20 rows (an ideal host acknowledging in windows of
20: the goal's baseline), every ``MAX_BATCH`` rows (the station's largest commit), every
row, and all rows at once; the rate a bare paho client takes the same backlog from the
same broker, acking on arrival; and the rate of the station's record checks alone (JSON,
fields, image headers, Ed25519 signature) on the same rows. Receiving, checking and
inserting one after the other bounds what a station that checks before it acknowledges
can reach in one Python process. Then the peak RSS of ``kiosk run``, and checks:
every record spooled once, none left unacknowledged at the broker, the outbox empty.
Goals: >= 50 % of the raw insert rate, RSS <= 80 MB.

    python bench/burst.py [--records 16851] [--card-s 15]
"""

from __future__ import annotations

import argparse
import sqlite3
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from harness import (
    DISTRICT,
    STATION,
    World,
    peak_rss_mb,
    raw_insert_rate,
    signed_payloads,
    stop,
    unacknowledged,
)
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from rich.console import Console
from rich.table import Table

from kiosk.contract.record import parse_record
from kiosk.contract.signing import Verifier
from kiosk.district.client import DistrictClient
from kiosk.sim.printer import PrinterSimulator
from kiosk.sim.tray import TraySimulator
from kiosk.station.loop import MAX_BATCH

BACKLOG = 16_851  # seeds/README.md: E-KTP waiting to be printed in Majalengka
IN_FLIGHT = 20  # kiosk/sim/broker.py: max_inflight_messages


class Burst:
    """One run: the backlog queued at the broker, then taken in by the station."""

    def __init__(self, world: World, count: int, card_s: float) -> None:
        self.world, self.count = world, count
        self.printer = PrinterSimulator(str(world.dir / "printer"), card_seconds=card_s,
                                        feeder=count + 10)
        self.tray = TraySimulator(str(world.dir / "tray"), cards=150)
        self.config = None
        self.spool = world.dir / "spool.db"

    def run(self, payloads: list[bytes]) -> dict[str, float]:
        self.printer.start()
        self.tray.start()
        self.config = self.world.station_toml(self.printer.path, self.tray.path)
        district = DistrictClient(self.world.broker.url, keep_events=False).wait_connected()
        try:
            self._open_session(district)
            published = self._publish(district, payloads)
            figures = self._take_in()
            figures["publish_s"] = published
        finally:
            district.close()
            self.printer.stop()
            self.tray.stop()
        return figures

    def _open_session(self, district: DistrictClient) -> None:
        """Start the station once so the broker keeps its session, then stop it."""
        station = self.world.start_station(self.config)
        try:
            if not district.wait_for(lambda: district.availability.get(STATION) == "online", 30):
                raise RuntimeError("the station did not come online")
        finally:
            stop(station)

    def _publish(self, district: DistrictClient, payloads: list[bytes]) -> float:
        start = time.monotonic()
        topic = district.topic(STATION, "jobs")
        infos = [district.publish(topic, payload) for payload in payloads]
        for info in infos:
            info.wait_for_publish(120)
        return time.monotonic() - start

    def _take_in(self) -> dict[str, float]:
        station = self.world.start_station(self.config)
        started = time.monotonic()
        try:
            while self._spooled() < self.count:
                if station.poll() is not None:
                    raise RuntimeError("the station died; see its log")
                time.sleep(0.2)
            took = time.monotonic() - started
            while self._outbox() and time.monotonic() - started < took + 120:
                time.sleep(0.2)
            rss = peak_rss_mb(station.pid)
        finally:
            stop(station)
        first, last, distinct = self._received()
        return {"rate": (self.count - 1) / (last - first), "took_s": took, "rss_mb": rss,
                "distinct": distinct, "outbox": self._outbox(),
                "unacked": unacknowledged(self.world.broker.port, f"{DISTRICT}-{STATION}")}

    def _query(self, sql: str) -> tuple:
        db = sqlite3.connect(f"file:{self.spool}?mode=ro", uri=True)
        try:
            return db.execute(sql).fetchone()
        except sqlite3.OperationalError:  # not created yet
            return (0, 0, 0)
        finally:
            db.close()

    def _spooled(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM jobs")[0])

    def _outbox(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM outbox")[0])

    def _received(self) -> tuple[float, float, int]:
        return self._query("SELECT MIN(received_at), MAX(received_at),"
                           " COUNT(DISTINCT record_id) FROM jobs")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=BACKLOG)
    parser.add_argument("--card-s", type=float, default=15.0,
                        help="print time per card (a real printer: 15-30 s)")
    args = parser.parse_args()
    console = Console()
    world = World()
    try:
        made = time.monotonic()
        payloads = signed_payloads(world.key, args.records)
        made = time.monotonic() - made
        size = sum(map(len, payloads)) / len(payloads)
        console.print(f"{args.records} signed records made in {made:.1f} s, "
                      f"{size / 1000:.1f} KB each on average")
        figures = Burst(world, args.records, args.card_s).run(payloads)
        raw = {n: raw_insert_rate(world.dir, payloads, n)
               for n in (IN_FLIGHT, MAX_BATCH, 1, len(payloads))}
        figures["checks"] = check_rate(payloads, world.public)
        figures["receive"] = receive_rate(world, payloads)
    finally:
        world.close()
    report(console, args.records, figures, raw)


def receive_rate(world: World, payloads: list[bytes]) -> float:
    """Records/s a bare paho client takes the same backlog from the same broker: queued
    for its persistent session while it is away, then each message acked on arrival
    (manual ack, MQTT 5, as the station does), with nothing else done."""
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    props.ReceiveMaximum = 32
    done = threading.Event()
    count = 0

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        nonlocal count
        client.ack(message.mid, message.qos)
        count += 1
        if count == len(payloads):
            done.set()

    def connect() -> mqtt.Client:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bare-paho",
                             protocol=mqtt.MQTTv5, manual_ack=True)
        client.on_message = on_message
        client.connect("127.0.0.1", world.broker.port, clean_start=False, properties=props)
        return client

    client = connect()
    client.subscribe("bench/bare", 1)
    client.loop(1.0)
    client.disconnect()
    district = DistrictClient(world.broker.url, keep_events=False).wait_connected()
    try:
        for info in [district.publish("bench/bare", payload) for payload in payloads]:
            info.wait_for_publish(120)
    finally:
        district.close()
    client = connect()
    start = time.monotonic()
    client.loop_start()
    done.wait(600)
    took = time.monotonic() - start
    client.disconnect()
    client.loop_stop()
    return count / took


def check_rate(payloads: list[bytes], public_key: Path) -> float:
    """Records/s through the station's own checks alone (JSON, every field, photo and
    signature headers, the Ed25519 signature): the CPU each record costs before it is
    spooled, which no raw insert pays."""
    verifier = Verifier.from_pem_files([public_key], required=True)
    sample = payloads[:3000]
    start = time.perf_counter()
    for payload in sample:
        parse_record(payload, verifier=verifier)
    return len(sample) / (time.perf_counter() - start)


def report(console: Console, count: int, figures: dict[str, float],
           raw: dict[int, float]) -> None:
    table = Table(title=f"{count} records released at once")
    for column in ("who", "records/s", "vs raw, 20 per commit"):
        table.add_column(column)
    base = raw[IN_FLIGHT]
    table.add_row("station (kiosk run): spooled and acknowledged", f"{figures['rate']:.0f}",
                  f"{figures['rate'] / base:.0%}")
    table.add_row(f"raw SQLite insert, same rows, {IN_FLIGHT} per commit (baseline)",
                  f"{base:.0f}", "100%")
    table.add_row(f"raw SQLite insert, {MAX_BATCH} per commit (the station's largest)",
                  f"{raw[MAX_BATCH]:.0f}", f"{raw[MAX_BATCH] / base:.0%}")
    table.add_row("raw SQLite insert, one commit per row", f"{raw[1]:.0f}",
                  f"{raw[1] / base:.0%}")
    table.add_row("raw SQLite insert, all rows in one commit", f"{raw[count]:.0f}",
                  f"{raw[count] / base:.0%}")
    table.add_row("bare paho client, same backlog from the same broker, acked on arrival",
                  f"{figures['receive']:.0f}", f"{figures['receive'] / base:.0%}")
    checks = figures["checks"]
    table.add_row("the station's record checks alone (no broker, no SQLite)", f"{checks:.0f}",
                  f"{checks / base:.0%}")
    ceiling = 1 / (1 / base + 1 / checks + 1 / figures["receive"])
    table.add_row("receive + checks + raw insert, one after the other (one thread's "
                  "ceiling)", f"{ceiling:.0f}", f"{ceiling / base:.0%}")
    console.print(table)
    console.print(f"broker publish of the backlog: {figures['publish_s']:.1f} s; station took "
                  f"it in in {figures['took_s']:.1f} s (from its start)")
    console.print(f"peak RSS of kiosk run: {figures['rss_mb']:.1f} MB (goal <= 80 MB); "
                  f"rate {figures['rate'] / base:.0%} of the baseline (goal >= 50 %)")
    console.print(f"checks: spooled {figures['distinct']} distinct of {count}, left "
                  f"unacknowledged at the broker {figures['unacked']}, outbox "
                  f"{figures['outbox']}")


if __name__ == "__main__":
    main()
