"""The district page at scale: update latency and the server's memory, 3 and 500 stations.

One private Mosquitto; ``kiosk district web`` as its own process; simulated
stations (kiosk/sim/fleet.py, MQTT only) that each print a card every
``--card-every`` seconds (a retained state and a ``completed`` event per card).
One probe station changes its state every 0.5 s; the figure is the time from
that publish to the first ``district`` document on the page's stream
(``/api/stream``, read here as a browser would) that shows it, and to the
moment headless Chromium (``--browser``) shows it on the page itself (the
page's own rendering of every station card included). The baseline,
measured on the same messages in the same run, is the broker's own delivery:
publish → a plain subscriber's ``on_message``. Peak RSS is the web process's
VmHWM at the end of each run. Printed figures, not pass/fail.

    python bench/district_web.py [--stations 3 500] [--samples 40] [--card-every 10] [--browser]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
import urllib.request

import paho.mqtt.client as mqtt
from harness import DISTRICT, ROOT, World, ms, peak_rss_mb, percentile, stop
from paho.mqtt.enums import CallbackAPIVersion

from kiosk.sim.broker import free_port
from kiosk.sim.fleet import Fleet

PROBE = "sim-000"


class StreamReader:
    """Reads the page's SSE stream; notes when the probe's ``printed`` first showed each value."""

    def __init__(self, url: str) -> None:
        self.seen: dict[int, float] = {}
        self.documents = 0
        self.response = urllib.request.urlopen(url + "api/stream", timeout=30)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        kind = None
        try:
            for raw in self.response:
                line = raw.decode()
                if line.startswith("event: "):
                    kind = line[7:].strip()
                elif line.startswith("data: ") and kind == "district":
                    at = time.monotonic()
                    self.documents += 1
                    for station in json.loads(line[6:])["stations"]:
                        if station["id"] == PROBE:
                            self.seen.setdefault(station["counters"]["printed"], at)
        except (OSError, ValueError, AttributeError):
            return

    def close(self) -> None:
        self.response.close()


class Subscriber:
    """The baseline: a plain subscriber to the probe's state topic."""

    def __init__(self, port: int) -> None:
        self.seen: dict[int, float] = {}
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"ektp/v1/{DISTRICT}/{PROBE}/state", qos=1)
        self.client.loop_start()

    def _on_message(self, client, userdata, message) -> None:
        printed = json.loads(message.payload)["counters"]["printed"]
        self.seen.setdefault(printed, time.monotonic())

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def background(fleet: Fleet, names: list[str], card_every: float, stop_at: threading.Event):
    """Every station but the probe prints a card every *card_every* s, spread over time."""
    printed = dict.fromkeys(names, 0)
    stock = dict.fromkeys(names, 10_000)
    gap = card_every / max(1, len(names))
    while not stop_at.is_set():
        for name in names:
            if stop_at.is_set():
                return
            printed[name] += 1
            stock[name] -= 1
            fleet.set(name, counters={"printed": printed[name]}, stock={"remaining": stock[name]})
            fleet.complete(name, f"{name}-{printed[name]}")
            time.sleep(gap)


SHOWN = """marker => {
  const cell = document.querySelector('[data-station="sim-000"] [data-field="counters"]');
  return cell !== null && cell.textContent.startsWith(marker + " /");
}"""
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def open_tab(url: str):
    """The page in headless Chromium; returns (tab, closer)."""
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
    tab = browser.new_page(viewport={"width": 1360, "height": 900})
    tab.goto(url)
    tab.wait_for_selector('[data-station="sim-000"]', state="attached", timeout=30_000)

    def close() -> None:
        browser.close()
        playwright.stop()

    return tab, close


def run(world: World, stations: int, samples: int, card_every: float,
        browser: bool = False) -> dict:
    names = [f"sim-{n:03d}" for n in range(stations)]
    port = free_port()
    log = open(world.dir / f"web-{stations}.log", "ab")  # noqa: SIM115 - closed below
    web = subprocess.Popen([sys.executable, "-m", "kiosk", "district", "web", "--url",
                            world.broker.url, "--listen", f"127.0.0.1:{port}"],
                           stdout=log, stderr=log, cwd=ROOT)
    fleet = Fleet(world.broker.url, names)
    stop_at = threading.Event()
    reader = subscriber = close_tab = None
    shown: list[float] = []
    try:
        url = wait_for_page(port)
        fleet.start()
        subscriber = Subscriber(world.broker.port)
        reader = StreamReader(url)
        loader = threading.Thread(target=background,
                                  args=(fleet, names[1:], card_every, stop_at), daemon=True)
        loader.start()
        tab = None
        if browser:
            tab, close_tab = open_tab(url)
        time.sleep(3.0)  # retained states in, the load running
        sent: dict[int, float] = {}
        for marker in range(1, samples + 1):
            sent[marker] = time.monotonic()
            fleet.set(PROBE, counters={"printed": marker})
            if tab is not None:
                tab.wait_for_function(SHOWN, arg=marker, polling="raf", timeout=10_000)
                shown.append(time.monotonic() - sent[marker])
            time.sleep(max(0.0, sent[marker] + 0.5 - time.monotonic()))
        time.sleep(2.5)
        page = [reader.seen[m] - sent[m] for m in sent if m in reader.seen]
        broker = [subscriber.seen[m] - sent[m] for m in sent if m in subscriber.seen]
        return {"stations": stations, "page": page, "broker": broker, "missed": samples - len(page),
                "rss_mb": peak_rss_mb(web.pid), "documents": reader.documents, "shown": shown}
    finally:
        stop_at.set()
        if close_tab is not None:
            close_tab()
        for part in (reader, subscriber, fleet):
            if part is not None:
                part.close()
        stop(web)
        log.close()


def wait_for_page(port: int, timeout: float = 20.0) -> str:
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "api/district", timeout=2).close()
            return url
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("kiosk district web did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=int, nargs="+", default=[3, 500])
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--card-every", type=float, default=10.0,
                        help="seconds between cards at each simulated station")
    parser.add_argument("--browser", action="store_true",
                        help="also time the change on the page in headless Chromium")
    args = parser.parse_args()
    world = World()
    try:
        print(f"{'stations':>8}  {'page p50':>10}  {'page p95':>10}  {'broker p50':>10}"
              f"  {'broker p95':>10}  {'peak RSS':>9}  missed")
        for count in args.stations:
            r = run(world, count, args.samples, args.card_every, args.browser)
            print(f"{count:>8}  {ms(percentile(r['page'], 50)):>10}"
                  f"  {ms(percentile(r['page'], 95)):>10}  {ms(percentile(r['broker'], 50)):>10}"
                  f"  {ms(percentile(r['broker'], 95)):>10}  {r['rss_mb']:>6.1f} MB"
                  f"  {r['missed']}", flush=True)
            if r["shown"]:
                print(f"{'':>8}  in Chromium: p50 {ms(percentile(r['shown'], 50))},"
                      f" p95 {ms(percentile(r['shown'], 95))}", flush=True)
        print(f"(load: every station prints a card every {args.card_every:g} s: a state and"
              f" an event each; {args.samples} probe changes per row)")
    finally:
        world.close()


if __name__ == "__main__":
    main()
