"""The page's memory under a hostile station's floods (issue 24, attack 6), measured on
`kiosk district web` as its own process (its resident set, /proc/PID/status) on a real
Mosquitto with the district's ACL.

Before: 512 completed events with 250 KB ids took the page from 67 to 193 MB for good; one
4 MB reason and 100 clients that do not read took it to 959 MB. The bound stated in
docs/district.md ("The page's memory") is checked here: at most PEAK_MIB above the page's
resident set before the floods, during them, and at most AFTER_MIB once they are over.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import urllib.request

from kiosk.sim.broker import free_port
from tests.conftest import DISTRICT, ServiceProcess, wait_until
from tests.district.hostile import PREFIX, TOOLS

PEAK_MIB = 24
AFTER_MIB = 16


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


class Peak(threading.Thread):
    """The highest resident set of a process, sampled every 20 ms until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            self.peak = max(self.peak, rss_mib(self.pid))

    def __enter__(self) -> Peak:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.join(5)


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def test_the_page_stays_within_its_memory_bound_under_a_station_s_floods(
        tmp_path, acl_broker, stations, office):
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    page = ServiceProcess([sys.executable, "-m", "kiosk.district.cli", "web", "--url",
                           acl_broker.url, "--district", DISTRICT, "--username", TOOLS[2],
                           "--listen", f"127.0.0.1:{port}"], tmp_path / "web.log").start()
    pid = page.process.pid
    assert wait_until(lambda: _stations(url) == {"st-a", "st-b"}, 15)
    for _ in range(3):  # warm: every handler and code path run once
        get(url + "api/district"), get(url + "api/history")
    baseline = rss_mib(pid)
    liar = stations["st-b"]
    with Peak(pid) as peak:
        big_id = "R" * 250_000
        for n in range(512):  # ids far over 64 characters: the broker keeps them from the page
            liar.client.publish(f"{PREFIX}/st-b/events", json.dumps({
                "type": "job", "job_state": "completed", "record_id": f"{big_id}{n}"}), qos=1)
        for n in range(600):  # ids of the largest valid size: 512 kept, then the oldest go
            liar.client.publish(f"{PREFIX}/st-b/events", json.dumps({
                "type": "job", "job_state": "completed", "record_id": f"{n:064d}"}), qos=1)
        liar.publish("state", json.dumps({"printer_state": "idle", "printer_state_reasons": [
            "x" * 4_000_000]}).encode(), retain=True)
        readers = [_not_reading(port) for _ in range(100)]
        for n in range(300):  # states as large as the page keeps, each one new
            liar.state(printer_state_reasons=[f"r{n}-{k}-" + "w" * 50 for k in range(32)],
                       counters={"printed": n})
        ok = wait_until(lambda: _printed(url, "st-b") == 299, 20)
        assert ok, (_printed(url, "st-b"), get(url + "api/district"))
        for sock in readers:
            sock.close()
    assert wait_until(lambda: _stations(url) == {"st-a", "st-b"}, 5)  # still answering
    during = peak.peak - baseline
    after = rss_mib(pid) - baseline
    print(f"page RSS: baseline {baseline:.1f} MiB, peak +{during:.1f} MiB, after +{after:.1f}"
          " MiB")
    assert during <= PEAK_MIB, f"the page grew {during:.1f} MiB under the floods"
    assert after <= AFTER_MIB, f"the page kept {after:.1f} MiB after the floods"
    assert page.terminate() == 0


def _stations(url: str) -> set[str]:
    try:
        return {s["id"] for s in get(url + "api/district")["stations"]}
    except OSError:
        return set()


def _printed(url: str, name: str) -> int | None:
    entry = next((s for s in get(url + "api/district")["stations"] if s["id"] == name), None)
    return entry and entry["counters"]["printed"]


def _not_reading(port: int) -> socket.socket:
    """A client that asks for the event stream and never reads a byte of it."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(b"GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    time.sleep(0)
    return sock
