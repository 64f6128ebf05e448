"""The district page in a real browser: headless Debian Chromium driven by Playwright.

The real station (conftest's simulators) and MQTT-only simulated stations on a
real Mosquitto, `kiosk district web` in front of them. Chromium or Playwright
missing is a failure that says how to install them, never a skip.
"""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import datetime

import pytest

from kiosk.district.web.server import DistrictWeb
from kiosk.sim.fleet import Fleet
from tests.conftest import STATION, StationThread

SHOWN_WITHIN_MS = 2000


@pytest.fixture
def web(broker):
    page = DistrictWeb(broker.url, listen=("127.0.0.1", 0)).start()
    yield page
    page.stop()


@pytest.fixture
def tab(chromium, web):
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="id-ID")
    browser_tab = context.new_page()
    errors: list[str] = []
    browser_tab.on("pageerror", lambda error: errors.append(str(error)))
    browser_tab.on("console", lambda message: errors.append(message.text)
                   if "Content Security Policy" in message.text else None)  # CSP violations
    browser_tab.goto(web.url)
    yield browser_tab
    context.close()
    assert not errors, f"the page's script failed: {errors}"


@pytest.fixture
def fleet(broker):
    sims = Fleet(broker.url, ["sim-1", "sim-2"]).start()
    yield sims
    sims.close()


def api(web: DistrictWeb) -> dict:
    with urllib.request.urlopen(web.url + "api/district", timeout=5) as response:
        return json.load(response)


def reasons(district) -> list[str]:
    return district.states.get(STATION, {}).get("printer_state_reasons", [])


def test_a_jam_at_a_station_shows_within_two_seconds_and_clears_when_it_clears(
        station_settings, district, tray_sim, fleet, tab, web):
    station_settings["tray"]["path_jam_s"] = 0.5  # a card held in the path beam is a jam
    card = f'[data-station="{STATION}"]'
    with StationThread(station_settings, district):
        tab.wait_for_selector(f'{card} [data-field="route"].yes', timeout=10_000)
        tab.wait_for_selector('[data-station="sim-1"]', timeout=10_000)
        real = next(s for s in api(web)["stations"] if s["id"] == STATION)
        assert (real["refused"], real["invalid_messages"]) == ([], 0)  # a real state passes
        tray_sim.set_path(True)
        assert district.wait_for(lambda: "media-jam-error" in reasons(district), 5)
        tab.wait_for_selector(f'{card} [data-reasons*="media-jam-error"]',
                              timeout=SHOWN_WITHIN_MS)
        text = tab.inner_text(card)
        assert "Kartu macet di printer" in text  # in plain words
        assert "tidak: Kartu macet di printer" in text  # the router skips it, and why
        tray_sim.set_path(False)
        assert district.wait_for(lambda: "media-jam-error" not in reasons(district), 5)
        tab.wait_for_selector(f'{card} [data-field="route"].yes', timeout=SHOWN_WITHIN_MS)
        assert "media-jam-error" not in tab.get_attribute(f'{card} [data-field="reasons"]',
                                                          "data-reasons")


def test_the_forecast_on_the_page_is_the_one_of_the_api_and_says_order_blanks(fleet, tab, web):
    fleet.set("sim-1", queue={"pending": 300}, stock={"remaining": 120, "minutes_to_empty": 90})
    fleet.set("sim-2", printer_state="stopped", printer_state_reasons=["media-jam-error"],
              stock={"remaining": 80}, counters={"printed": 95, "spoiled": 5})
    for n in range(5):
        fleet.complete("sim-1", f"R-{n}")
    tab.wait_for_function("(want) => document.getElementById('blanks-short').dataset.value"
                          " === want", arg=str(expected_short()), timeout=10_000)
    body = api(web)
    forecast = body["forecast"]
    shown = {name: tab.get_attribute(f"#{name}", "data-value") for name in
             ("rate", "blanks-needed", "blanks-on-hand", "blanks-short", "done-at",
              "backlog-total")}
    assert shown == {
        "rate": str(body["rate_per_hour"]) if body["rate_per_hour"] % 1
        else str(int(body["rate_per_hour"])),
        "blanks-needed": str(forecast["blanks_needed"]),
        "blanks-on-hand": str(forecast["blanks_on_hand"]),
        "blanks-short": str(forecast["blanks_short"]),
        "done-at": shown["done-at"],  # moves on with the clock: compared below
        "backlog-total": str(body["backlog"]["waiting"] + body["backlog"]["at_stations"]),
    }
    done_page, done_api = (datetime.fromisoformat(v.replace("Z", "+00:00"))
                           for v in (shown["done-at"], forecast["backlog_done_at"]))
    assert abs((done_page - done_api).total_seconds()) <= 3
    assert body["rate_per_hour"] == 60.0 and forecast["assumptions"]["stations_counted"] == [
        "sim-1"]
    order = tab.locator("#order-now")
    assert order.is_visible() and "Pesan blangko sekarang" in order.text_content()
    assert "5 menit terakhir" in tab.inner_text("#assumptions")  # the window, said
    tab.click('[data-lang="en"]')
    assert "Order blank cards now" in order.text_content()
    assert "Card jammed in the printer" in tab.inner_text('[data-station="sim-2"]')


def expected_short() -> int:
    # 300 records queued at sim-1; sim-2 spoiled 5 blanks for 95 cards printed
    needed = -(-300 * (95 + 5) // 95)  # ceil(300 * (1 + 5/95)) = 316
    return needed - (120 + 80)


def test_a_broker_outage_is_shown_and_clears_when_the_broker_is_back(broker, fleet, tab):
    tab.wait_for_selector('[data-station="sim-1"]', timeout=10_000)
    assert tab.locator('[data-banner="broker-down"]').count() == 0
    broker.kill()
    tab.wait_for_selector('[data-banner="broker-down"]', timeout=SHOWN_WITHIN_MS + 1000)
    assert tab.locator('[data-station="sim-1"]').count() == 1  # the last known stays
    broker.start()
    tab.wait_for_selector('[data-banner="broker-down"]', state="detached", timeout=10_000)


def test_the_router_gone_and_the_page_server_gone_are_said(fleet, tab, web):
    tab.wait_for_selector('[data-station="sim-1"]', timeout=10_000)  # the page is live
    fleet.client.publish("ektp/v1/3210/_router/availability", b"offline", qos=1, retain=True)
    tab.wait_for_selector('[data-banner="router-down"]', timeout=SHOWN_WITHIN_MS)
    web.stop()
    tab.wait_for_selector('[data-banner="server-down"]', timeout=5_000)
    time.sleep(0.2)
