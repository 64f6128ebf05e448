"""The district router with three stations: records per second, and inbox → printer start.

Three stations run as their own processes (as under systemd) with printer and
tray simulators here, the router runs as ``kiosk district route`` in its own
process, all on one private Mosquitto. Printed figures, not pass/fail:

- latency on idle stations: inbox publish → the first byte of the job at a
  printer, beside the same record published straight to a station's ``jobs``
  topic (the router's cost is the difference) and the broker's own QoS 1
  publish → delivery latency, all measured in this run;
- throughput of a burst: inbox publishes confirmed per second, records routed
  per second (the router's ``routed`` events) and records spooled per second at
  the stations (their ``pending`` events), beside the broker alone relaying
  record-sized QoS 1 messages to one subscriber.

    python bench/route.py [--records 300] [--latency 30] [--card-seconds 0.05]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from collections import Counter, deque

import paho.mqtt.client as mqtt
from harness import DISTRICT, ROOT, World, broker_latency, ms, percentile, stop
from paho.mqtt.enums import CallbackAPIVersion
from rich.console import Console
from rich.table import Table

from kiosk.contract.signing import sign_record
from kiosk.district.client import DistrictClient
from kiosk.sim.printer import PrinterSimulator
from kiosk.sim.samples import make_record
from kiosk.sim.tray import TraySimulator

STATIONS = ("st-1", "st-2", "st-3")


class District:
    """Broker, three stations with simulators, the router, and an observer."""

    def __init__(self, card_seconds: float) -> None:
        self.world = World()
        self.printers = {name: PrinterSimulator(str(self.world.dir / f"printer-{name}"),
                                                card_seconds=card_seconds, feeder=100_000)
                         for name in STATIONS}
        self.trays = {name: TraySimulator(str(self.world.dir / f"tray-{name}"))
                      for name in STATIONS}
        for device in (*self.printers.values(), *self.trays.values()):
            device.start()
        self.processes = [self._station(name) for name in STATIONS]
        self.processes.append(self._spawn("router", [
            "-m", "kiosk.district.cli", "route", "--url", self.world.broker.url,
            "--district", DISTRICT, "--db", str(self.world.dir / "router.db"),
            "--release-after", "0"]))
        self.client = DistrictClient(self.world.broker.url, district=DISTRICT).wait_connected()
        ready = self.client.wait_for(lambda: all(
            self.client.availability.get(name) == "online" for name in (*STATIONS, "_router"))
            and all(self.client.states.get(n, {}).get("printer_state") == "idle"
                    for n in STATIONS), 30)
        if not ready:
            raise RuntimeError(f"stations or router did not start; logs in {self.world.dir}")

    def _station(self, name: str) -> subprocess.Popen:
        config = self.world.dir / f"{name}.toml"
        config.write_text(
            f'[station]\ndistrict = "{DISTRICT}"\nid = "{name}"\n'
            f'spool = "{self.world.dir / f"{name}.db"}"\n'
            f'[mqtt]\nurl = "{self.world.broker.url}"\n'
            f'[printer]\nport = "{self.printers[name].path}"\n'
            f'[tray]\nport = "{self.trays[name].path}"\n'
            f'[security]\ntrusted_keys = ["{self.world.public}"]\n')
        return self._spawn(name, ["-m", "kiosk", "run", "--config", str(config)])

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.world.dir / f"{name}.log", "ab")  # noqa: SIM115 - lives with the process
        return subprocess.Popen([sys.executable, *argv], stdout=log, stderr=log, cwd=ROOT)

    def first_bytes(self) -> int:
        return sum(len(p.job_first_byte_at) for p in self.printers.values())

    def newest_first_byte(self) -> float:
        return max(p.job_first_byte_at[-1] for p in self.printers.values()
                   if p.job_first_byte_at)

    def close(self) -> None:
        self.client.close()
        for process in self.processes:
            stop(process)
        for device in (*self.printers.values(), *self.trays.values()):
            device.stop()
        self.world.close()


def records(world: World, count: int, seed: int) -> list[dict]:
    return [sign_record(make_record(i, seed=seed), world.key) for i in range(1, count + 1)]


def latency(district: District, batch: list[dict], send) -> list[float]:
    """One record at a time on idle stations: publish → first byte at whichever printer."""
    figures = []
    for record in batch:
        before = district.first_bytes()
        sent = send(record)
        if not district.client.wait_for(lambda b=before: district.first_bytes() > b, 10):
            continue
        figures.append(district.newest_first_byte() - sent)
        rid = record["record_id"]
        district.client.wait_for(lambda rid=rid: district.client.final_state(rid) == "completed",
                                 10)
        time.sleep(0.05)  # every station idle again
    return figures


def burst(district: District, batch: list[dict]) -> dict[str, float]:
    """All records at once into the inbox; seconds until each stage has seen them all."""
    client, ids = district.client, {r["record_id"] for r in batch}
    routed = lambda: sum(1 for e in client.events  # noqa: E731
                         if e["station"] == "_router" and e["type"] == "routed"
                         and e.get("record_id") in ids)  # not its `completed` events
    spooled = lambda: sum(1 for e in client.events_of("job")  # noqa: E731
                          if e["job_state"] == "pending" and e["record_id"] in ids)
    start = time.monotonic()
    in_flight = deque(client.publish(client.inbox_topic, record) for record in batch)
    while in_flight:
        in_flight.popleft().wait_for_publish(30)
    published = time.monotonic()
    client.wait_for(lambda: routed() >= len(batch), 120)
    routed_at = time.monotonic()
    client.wait_for(lambda: spooled() >= len(batch), 120)
    return {"published": published - start, "routed": routed_at - start,
            "spooled": time.monotonic() - start}


def broker_throughput(port: int, count: int, size: int) -> float:
    """Messages per second the broker relays, QoS 1, one publisher → one subscriber."""
    got = threading.Semaphore(0)
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sub.on_message = lambda *args: got.release()
    sub.connect("127.0.0.1", port)
    sub.subscribe("bench/throughput", qos=1)
    sub.loop_start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    time.sleep(0.3)
    payload = b"x" * size
    start = time.monotonic()
    for _ in range(count):
        pub.publish("bench/throughput", payload, qos=1)
    for _ in range(count):
        got.acquire(timeout=30)
    elapsed = time.monotonic() - start
    for client in (pub, sub):
        client.disconnect()
        client.loop_stop()
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=300, help="records in the burst")
    parser.add_argument("--latency", type=int, default=30, help="records timed one by one")
    parser.add_argument("--card-seconds", type=float, default=0.05)
    args = parser.parse_args()
    console = Console()
    district = District(args.card_seconds)
    try:
        world, client = district.world, district.client
        via_router = latency(district, records(world, args.latency, seed=1), client.send_inbox)
        turn = iter(STATIONS * args.latency)
        direct = latency(district, records(world, args.latency, seed=2),
                         lambda record: client.publish_record(next(turn), record))
        batch = records(world, args.records, seed=3)
        stages = burst(district, batch)
        burst_ids = {record["record_id"] for record in batch}
        spread = Counter(e["station"] for e in client.events_of("job")
                         if e["job_state"] == "pending" and e["record_id"] in burst_ids)
        size = len(batch[0]["photo_jpeg"]) + 4_000
        broker = broker_latency(world.broker.port)
        relay = broker_throughput(world.broker.port, args.records, size)
    finally:
        district.close()
    report(console, via_router, direct, broker, stages, args.records, relay, spread)


def report(console, via_router, direct, broker, stages, count, relay, spread) -> None:
    table = Table(title="Latency, idle stations: publish → first byte at a printer")
    for column in ("path", "p50", "p95", "max", "n"):
        table.add_column(column, justify="right" if column != "path" else "left")
    for name, values in (("inbox → router → station → printer", via_router),
                         ("station jobs topic → printer (no router)", direct),
                         ("baseline: broker publish → delivery", broker)):
        table.add_row(name, ms(percentile(values, 50)), ms(percentile(values, 95)),
                      ms(max(values)), str(len(values)))
    console.print(table)
    overhead = percentile(via_router, 50) - percentile(direct, 50)
    console.print(f"router's cost at p50: {ms(overhead)} "
                  f"({overhead / percentile(broker, 50):.1f} × the broker's own latency)")
    table = Table(title=f"Throughput: a burst of {count} records into the inbox")
    for column in ("stage", "all seen after", "records/s"):
        table.add_column(column, justify="right" if column != "stage" else "left")
    labels = {"published": "inbox publishes confirmed (PUBACK)",
              "routed": "routed by the router", "spooled": "spooled at the stations"}
    for key, label in labels.items():
        table.add_row(label, f"{stages[key]:.2f} s", f"{count / stages[key]:.0f}")
    table.add_row("baseline: broker alone, QoS 1 relay", "", f"{relay:.0f}")
    console.print(table)
    console.print("spread over the stations: " + ", ".join(
        f"{name} {spread.get(name, 0)}" for name in STATIONS))
    console.print(f"all on one machine with {os.cpu_count()} CPUs: broker, router, three"
                  " stations rendering cards, six device simulators and this observer")


if __name__ == "__main__":
    main()
