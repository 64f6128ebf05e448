"""`kiosk district web` on a real broker: the JSON of station.md, the stream, the router's state."""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import pytest

from kiosk.district.router import Router
from kiosk.district.web.server import DistrictWeb
from kiosk.sim.fleet import Fleet
from tests.conftest import wait_until

STATION_KEYS = {"id", "availability", "printer_state", "printer_state_reasons", "accepting_jobs",
                "queue", "stock", "counters", "state_age_s", "takes_records",
                # what the district makes of a station's word (issue 24), beside station.md's
                "state_invalid", "refused", "invalid_messages", "lies", "stock_doubtful",
                "documents"}


@pytest.fixture
def page(broker):
    web = DistrictWeb(broker.url, listen=("127.0.0.1", 0)).start()
    yield web
    web.stop()


@pytest.fixture
def fleet(broker):
    sims = Fleet(broker.url, ["sim-1", "sim-2"]).start()
    yield sims
    sims.close()


def get(page: DistrictWeb, path: str) -> dict:
    with urllib.request.urlopen(page.url + path.lstrip("/"), timeout=5) as response:
        assert response.headers["Content-Type"].startswith("application/json")
        return json.load(response)


def test_api_district_has_the_shape_of_station_md(page, fleet):
    fleet.set("sim-2", printer_state="stopped", printer_state_reasons=["media-jam-error"])
    assert wait_until(lambda: len(get(page, "/api/district")["stations"]) == 2, 5)
    body = get(page, "/api/district")
    assert body["schema"] == "ektp.district-view/1" and body["district"] == "3210"
    assert time.strptime(body["ts"], "%Y-%m-%dT%H:%M:%SZ")
    assert body["router"] in ("online", "offline", "unknown")
    assert set(body) == {"schema", "district", "ts", "broker", "router", "stations", "backlog",
                         "rate_per_hour", "forecast"}
    for entry in body["stations"]:
        assert set(entry) - {"why_not"} == STATION_KEYS
        assert entry["availability"] in ("online", "offline")
        assert set(entry["queue"]) == {"pending", "held", "processing"}
        assert {"remaining", "low_threshold", "sensor_estimate"} <= set(entry["stock"])
        assert set(entry["counters"]) == {"printed", "spoiled", "rejected"}
        assert isinstance(entry["state_age_s"], int)
    jammed = next(s for s in body["stations"] if s["id"] == "sim-2")
    assert (jammed["takes_records"], jammed["why_not"]) == (False, "media-jam-error")
    # station.md's two, and per document what waits and what no station prints (issue 28)
    assert set(body["backlog"]) == {"waiting", "at_stations", "by_document", "no_printer"}
    assert isinstance(body["rate_per_hour"], int | float)
    assert {"backlog_done_at", "blanks_needed", "blanks_on_hand", "blanks_short"} <= set(
        body["forecast"])


def test_the_page_and_its_files_are_served_from_the_package(page):
    with urllib.request.urlopen(page.url, timeout=5) as response:
        html = response.read().decode()
    assert response.headers["Content-Type"].startswith("text/html")
    assert "/static/app.js" in html and "http" not in html.split("<body>")[1]  # no CDN
    for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
        with urllib.request.urlopen(page.url + "static/" + name, timeout=5) as response:
            assert response.headers["Content-Type"].startswith(kind)
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(page.url + "static/..%2f__init__.py", timeout=5)


def test_the_stream_pushes_a_change_within_two_seconds(page, fleet):
    assert wait_until(lambda: len(get(page, "/api/district")["stations"]) == 2, 5)
    seen: list[tuple[float, dict]] = []
    response = urllib.request.urlopen(page.url + "api/stream", timeout=5)

    def read() -> None:
        kind = None
        try:
            for raw in response:
                line = raw.decode().strip()
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind == "district":
                    seen.append((time.monotonic(), json.loads(line[6:])))
        except (OSError, AttributeError, ValueError):  # closed by the test
            return

    threading.Thread(target=read, daemon=True).start()
    try:
        assert wait_until(lambda: seen, 5)
        changed_at = time.monotonic()
        fleet.set("sim-1", counters={"printed": 77})

        def printed() -> bool:
            return any(s["counters"]["printed"] == 77 for _, body in seen
                       for s in body["stations"] if s["id"] == "sim-1")

        assert wait_until(printed, 5)
        arrived = next(at for at, body in seen for s in body["stations"]
                       if s["id"] == "sim-1" and s["counters"]["printed"] == 77)
        assert arrived - changed_at < 2.0
    finally:
        response.close()


def test_the_router_retains_its_backlog_and_the_page_shows_it(broker, page, fleet, tmp_path,
                                                              district):
    router = Router(broker.url, str(tmp_path / "router.db"))
    thread = threading.Thread(target=router.run, daemon=True)
    thread.start()
    try:
        fleet.set("sim-2", accepting_jobs=False)
        assert wait_until(lambda: get(page, "/api/district")["router"] == "online", 10)
        assert wait_until(lambda: router.states.get("sim-2", {}).get("accepting_jobs")
                          is False and "sim-1" in router.states, 10)  # it knows them
        for n in range(3):
            district.send_inbox({"schema": "ektp.record/1", "record_id": f"R-{n}"})
        want = {"waiting": 0, "at_stations": 3, "by_document": {}, "no_printer": []}
        assert wait_until(lambda: get(page, "/api/district")["backlog"] == want, 10)
        retained = router_state(broker)
        assert (retained["waiting"], retained["at_stations"]) == (0, {"sim-1": 3})
        for n in range(3):
            fleet.complete("sim-1", f"R-{n}")
        assert wait_until(lambda: get(page, "/api/district")["backlog"]["at_stations"] == 0, 10)
        assert router_state(broker)["at_stations"] == {}
        fleet.set("sim-1", accepting_jobs=False)
        assert wait_until(lambda: router.states["sim-1"].get("accepting_jobs") is False, 10)
        district.send_inbox({"schema": "ektp.record/1", "record_id": "R-9"})
        assert wait_until(lambda: get(page, "/api/district")["backlog"]["waiting"] == 1, 10)
    finally:
        router.stop()
        thread.join(10)
    assert wait_until(lambda: get(page, "/api/district")["router"] == "offline", 5)


def router_state(broker) -> dict:
    """The retained ``_router/state``, read by a client of its own."""
    from kiosk.district.client import DistrictClient

    with DistrictClient(broker.url, persistent=False) as reader:
        assert reader.wait_for(lambda: "_router" in reader.states, 5)
        return reader.states["_router"]


def test_kiosk_demo_prints_the_page_address_and_serves_it_while_it_runs(tmp_path):
    import os
    import re
    import signal
    import subprocess
    import sys

    demo = subprocess.Popen(
        [sys.executable, "-m", "kiosk", "demo", "--cards", "6", "--card-seconds", "0.3"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
        start_new_session=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(demo.stdout), daemon=True).start()
    try:
        assert wait_until(lambda: any("district page:" in line for line in lines), 60), lines
        url = re.search(r"http://\S+/", next(x for x in lines if "district page:" in x))[0]

        def shows_both_stations() -> bool:  # the E-KTP station and the KIA one (issue 28)
            with urllib.request.urlopen(url + "api/district", timeout=5) as response:
                stations = json.load(response)["stations"]
            return [(s["id"], s["documents"]) for s in stations] == [
                ("demo-01", ["ektp"]), ("demo-kia", ["kia"])]

        assert wait_until(shows_both_stations, 20)
        assert demo.wait(120) == 0
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)  # its broker too: it is in the demo's session
            demo.wait(10)


def test_kiosk_district_web_serves_until_sigterm_and_refuses_a_bad_listen(broker):
    import signal
    import subprocess
    import sys

    from kiosk.sim.broker import free_port

    bad = subprocess.run([sys.executable, "-m", "kiosk", "district", "web", "--url", broker.url,
                          "--listen", "8080"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "HOST:PORT" in bad.stderr
    port = free_port()
    web = subprocess.Popen([sys.executable, "-m", "kiosk", "district", "web", "--url",
                            broker.url, "--listen", f"127.0.0.1:{port}"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           start_new_session=True)
    try:
        def answers() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/district",
                                            timeout=2) as response:
                    return json.load(response)["broker"] == "online"
            except OSError:
                return False

        assert wait_until(answers, 20)
        web.send_signal(signal.SIGTERM)
        assert web.wait(15) == 0
        assert f"http://127.0.0.1:{port}/" in web.stdout.read()
    finally:
        if web.poll() is None:
            web.kill()
            web.wait(10)
