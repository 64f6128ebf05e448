"""A message far beyond the record limit: the station's peak memory, beside its memory at rest.

The station (``kiosk run``, its own process, with the printer and tray simulators) is
sent one message of ``--mib`` MiB (default 64) on its jobs topic, then a valid record.
Printed: its peak RSS at rest (the baseline, same run), after the large message, and
whether the record after it still printed. With the Maximum Packet Size the station asks
for in its CONNECT, the broker drops the large message for it and its memory stays flat.
"""

from __future__ import annotations

import argparse
import json
import time

import paho.mqtt.client as mqtt
from harness import World, peak_rss_mb, signed_payloads, stop
from paho.mqtt.enums import CallbackAPIVersion

from kiosk.sim.printer import PrinterSimulator
from kiosk.sim.tray import TraySimulator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=64)
    args = parser.parse_args()
    world = World()
    printer = PrinterSimulator(str(world.dir / "printer"), card_seconds=0.05)
    tray = TraySimulator(str(world.dir / "tray"), cards=100)
    printer.start()
    tray.start()
    station = world.start_station(world.station_toml(printer.path, tray.path))
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", world.broker.port)
    client.loop_start()
    try:
        time.sleep(3)  # connected, printer ready
        at_rest = peak_rss_mb(station.pid)
        topic = "ektp/v1/3210/bench-01/jobs"
        client.publish(topic, b"x" * (args.mib << 20), qos=1).wait_for_publish(60)
        time.sleep(3)
        after = peak_rss_mb(station.pid)
        (record,) = signed_payloads(world.key, 1)
        client.publish(topic, record, qos=1).wait_for_publish(10)
        deadline = time.monotonic() + 30
        while printer.printed < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        print(json.dumps({"message_mib": args.mib, "peak_rss_at_rest_mb": round(at_rest, 1),
                          "peak_rss_after_mb": round(after, 1),
                          "next_record_printed": printer.printed == 1}))
        print(f"station peak RSS: {at_rest:.1f} MB at rest (baseline) -> {after:.1f} MB after a"
              f" {args.mib} MiB message; the record after it printed: {printer.printed == 1}")
    finally:
        client.disconnect()
        client.loop_stop()
        stop(station)
        printer.stop()
        tray.stop()
        world.close()


if __name__ == "__main__":
    main()
