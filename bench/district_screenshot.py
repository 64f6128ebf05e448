"""docs/district-page.png: the district page during a demo-like run, by headless Chromium.

The demo's world (a real station on simulators, printing signed sample
records, kiosk/sim/demo.py) plus five MQTT-only simulated stations
(kiosk/sim/fleet.py): one printing, one jammed, one low on blank cards, one
offline, one draining; a day of their completed cards is replayed with its
past timestamps, and the router's retained backlog is published as a router
would (no router runs here). Not a bench: a picture, made the way the tests
drive the browser.

    python bench/district_screenshot.py [docs/district-page.png]
"""

from __future__ import annotations

import random
import sys
import tempfile
import threading
import time
from pathlib import Path

from harness import ROOT

from kiosk.sim.demo import Demo
from kiosk.sim.fleet import Fleet

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def stamp(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def replay_day(fleet: Fleet, now: float) -> None:
    """A day of completed cards at the simulated stations, office hours busier."""
    rng = random.Random(17)
    for hours_ago in range(23, 0, -1):
        hour = time.gmtime(now - hours_ago * 3600).tm_hour + 7  # WIB
        busy = 8 <= hour % 24 <= 16
        for n in range(rng.randint(40, 60) if busy else rng.randint(0, 4)):
            station = rng.choice(["majalengka-02", "majalengka-03", "majalengka-04"])
            fleet.complete(station, f"D-{hours_ago}-{n}",
                           ts=stamp(now - hours_ago * 3600 + rng.uniform(0, 3600)))


def set_scene(fleet: Fleet) -> None:
    fleet.set("majalengka-02", printer_state="processing",
              queue={"pending": 14, "held": 0, "processing": 1},
              stock={"remaining": 212, "minutes_to_empty": 350},
              counters={"printed": 388, "spoiled": 6})
    fleet.set("majalengka-03", printer_state="stopped", printer_state_reasons=["media-jam-error"],
              queue={"pending": 9, "held": 0, "processing": 1},
              stock={"remaining": 140, "minutes_to_empty": None},
              counters={"printed": 301, "spoiled": 9, "rejected": 1})
    fleet.set("majalengka-04", printer_state_reasons=["media-low-warning"],
              queue={"pending": 12}, stock={"remaining": 44, "minutes_to_empty": 38},
              counters={"printed": 412, "spoiled": 4})
    fleet.set("majalengka-05", accepting_jobs=False, queue={"pending": 3},
              stock={"remaining": 95}, counters={"printed": 120, "spoiled": 2})
    fleet.set("majalengka-06", stock={"remaining": 60}, counters={"printed": 77, "spoiled": 1})
    fleet.availability("majalengka-06", "offline")
    fleet.client.publish("ektp/v1/3210/_router/availability", b"online", qos=1, retain=True)
    fleet.client.publish("ektp/v1/3210/_router/state",
                         b'{"schema": "ektp.router-state/1", "waiting": 16812,'
                         b' "at_stations": {"demo-01": 1, "majalengka-02": 15,'
                         b' "majalengka-03": 10, "majalengka-04": 12, "majalengka-05": 1}}',
                         qos=1, retain=True)


def printing(fleet: Fleet, stop: threading.Event) -> None:
    """The two printing stations go on printing while the picture is taken."""
    printed, stock, n = {"majalengka-02": 388, "majalengka-04": 412}, {
        "majalengka-02": 212, "majalengka-04": 44}, 0
    while not stop.wait(3.0):
        for name in printed:
            n += 1
            printed[name] += 1
            stock[name] -= 1
            fleet.set(name, counters={"printed": printed[name]}, stock={"remaining": stock[name]})
            fleet.complete(name, f"L-{n}")


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "docs" / "district-page.png")
    from playwright.sync_api import sync_playwright

    demo = Demo(Path(tempfile.mkdtemp(prefix="kiosk-shot-")), cards=30, card_seconds=0.8)
    stop = threading.Event()
    fleet = None
    try:
        demo.start()
        fleet = Fleet(demo.broker.url, [f"majalengka-0{n}" for n in range(2, 7)]).start()
        replay_day(fleet, time.time())
        set_scene(fleet)
        threading.Thread(target=printing, args=(fleet, stop), daemon=True).start()
        demo.inject_faults()
        feeder = threading.Thread(target=demo.feed, args=(_Quiet(),), daemon=True)
        feeder.start()
        time.sleep(40)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                                 args=CHROMIUM_ARGS)
            tab = browser.new_page(viewport={"width": 1360, "height": 900}, locale="id-ID",
                                   timezone_id="Asia/Jakarta")
            tab.goto(demo.web.url)
            tab.wait_for_selector('[data-station="demo-01"] svg', timeout=20_000)
            time.sleep(11)  # a fresh history event (every 10 s) for the stock plots
            tab.screenshot(path=str(out), full_page=True)
            browser.close()
        print(f"wrote {out}")
    finally:
        stop.set()
        if fleet is not None:
            fleet.close()
        demo.stop()


class _Quiet:
    """What Demo.feed needs of a rich Progress, without a terminal."""

    def add_task(self, *args, **kwargs) -> int:
        return 0

    def update(self, *args, **kwargs) -> None:
        pass


if __name__ == "__main__":
    main()
