"""`kiosk district watch` against a station in hostile hands (issue 24, attack 8), on a real
Mosquitto: a deep-JSON state killed the client's thread (then it showed 1 of 3 stations
without a word), ``1e999`` crashed the table, and escape sequences in a station's strings
reached the operator's terminal (window title, clear screen)."""

from __future__ import annotations

import json
import subprocess
import sys

from rich.console import Console

from kiosk.district.view import station_table
from tests.conftest import DISTRICT

PREFIX = f"ektp/v1/{DISTRICT}"
ESCAPES = "\x1b]0;PWNED\x07\x1b[2J\x1b[H\x9b31m\r"


def publish(client, station: str, leaf: str, payload: bytes) -> None:
    client.client.publish(f"{PREFIX}/{station}/{leaf}", payload, qos=1,
                          retain=True).wait_for_publish(5)


def hostile_district(district) -> None:
    """st-a honest; st-b sends deep JSON then 1e999; st-c sends markup and escapes."""
    good = {"printer_state": "idle", "printer_state_reasons": ["none"], "accepting_jobs": True,
            "queue": {"pending": 1, "held": 0, "processing": 0}, "ts": "2026-01-01T00:00:00Z"}
    for name in ("st-a", "st-b", "st-c"):
        publish(district, name, "availability", b"online")
    publish(district, "st-b", "state", b"[" * 1000)
    publish(district, "st-b", "events", b'{"type": "job", "x": ' + b"[" * 5000 + b"}")
    publish(district, "st-b", "state", b'{"printer_state": "idle", "stock": {"remaining": 1e999}}')
    publish(district, "st-c", "state", json.dumps({
        **good, "printer_state": f"[bold red]idle{ESCAPES}",
        "printer_state_reasons": [f"media-jam-error{ESCAPES}", "[link=http://x]y[/link]"],
        "stock": {"remaining": 1e30, "minutes_to_empty": 1e300},
        "counters": {"printed": -5, "spoiled": "many"}, "ts": ESCAPES}).encode())
    publish(district, "st-a", "state", json.dumps(good).encode())  # after the others


def test_the_watch_client_survives_any_state_and_shows_every_station(broker, district):
    hostile_district(district)
    assert district.wait_for(lambda: "st-a" in district.states, 5), (
        "the client's thread died on a station's message")
    console = Console(record=True, width=250, force_terminal=False)
    console.print(station_table(district))
    text = console.export_text()
    rows = {name: next(line for line in text.splitlines() if f"│ {name}" in line)
            for name in ("st-a", "st-b", "st-c")}
    assert "invalid state: not JSON: 1e999 is not a finite" in rows["st-b"]  # cell wraps
    assert "[bold red]" in rows["st-c"] and "[link=" in text  # shown as text, not markup
    assert "\x1b" not in text and "\x9b" not in text and "\x07" not in text
    assert rows["st-c"].count("?") >= 3  # 1e30 stock, 1e300 minutes, -5 printed, "many" spoiled


def test_kiosk_district_watch_once_prints_station_strings_as_text_only(broker, district):
    hostile_district(district)
    assert district.wait_for(lambda: "st-a" in district.states, 5)
    done = subprocess.run(
        [sys.executable, "-m", "kiosk.district.cli", "watch", "--once", "--url", broker.url,
         "--district", DISTRICT], capture_output=True, timeout=30,
        env={"COLUMNS": "250", "TERM": "xterm-256color", "PATH": "/usr/bin:/bin",
             "FORCE_COLOR": "1"})  # a terminal's colours: rich's own escapes, none of theirs
    out = done.stdout.decode(errors="replace")
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    for name in ("st-a", "st-b", "st-c"):
        assert name in out
    assert "PWNED" in out  # the text itself is shown...
    assert "\x1b]0;" not in out and "\x1b[2J" not in out and "\x07" not in out  # ...inert
