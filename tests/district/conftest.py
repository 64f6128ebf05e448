"""Fixtures of the district's tests: headless Chromium for the page, and the hostile-station
rig (issue 24; its parts are tests/district/hostile.py)."""

from __future__ import annotations

import os

import pytest

from kiosk.contract.mqtt import Credentials
from kiosk.district.client import DistrictClient
from kiosk.ops.pki import acl_for_district
from kiosk.sim.broker import Broker
from tests.conftest import DISTRICT
from tests.district.hostile import TOOLS, Station

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
INSTALL_HINT = ("headless Chromium is needed for the page's tests: run scripts/setup, or "
                "'sudo apt-get install chromium chromium-driver' and "
                "\".venv/bin/pip install -e '.[test]'\" (Playwright; never 'playwright install')")


@pytest.fixture(scope="module")
def chromium():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} not found: {INSTALL_HINT}", pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"Playwright for Python is missing: {INSTALL_HINT}", pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def acl_broker(tmp_path, mosquitto):
    """Mosquitto with the district's documented ACL (`kiosk pki acl`); usernames as given
    (no TLS here: tests/ops/test_tls.py proves the certificate is the username)."""
    acl = tmp_path / "acl.conf"
    acl.write_text(acl_for_district("ektp/v1", DISTRICT, ["st-a", "st-b"],
                                    district_users=TOOLS))
    server = Broker(tmp_path / "acl-broker", extra_config=f"acl_file {acl}").start()
    yield server
    server.kill()


@pytest.fixture
def office(acl_broker):
    """A district tool's client (district-3210): sends to the inbox, hears everything."""
    client = DistrictClient(acl_broker.url, district=DISTRICT,
                            credentials=Credentials(username=TOOLS[0])).wait_connected()
    yield client
    client.close()


@pytest.fixture
def stations(acl_broker):
    """st-a, honest (prints what it gets), and st-b, whose key an attacker holds."""
    made = {"st-a": Station(acl_broker, "st-a", honest=True),
            "st-b": Station(acl_broker, "st-b", honest=False)}
    yield made
    for station in made.values():
        station.close()
