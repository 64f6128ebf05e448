"""The custody page in headless Chromium: the register kept from a real Mosquitto.

Stations publish blank events (test_custody_keep.StationSim), the keeper keeps them, and
`kiosk district web --custody-db` serves ``/custody``: per station and for the district,
today and this month, printed and invalid per category, the foreign and duplicate UIDs,
and the day's berita acara as PDF and CSV.
"""

from __future__ import annotations

import shutil
import subprocess
import urllib.request

import pytest

from kiosk.district.custody.register import Register
from kiosk.district.web.server import DistrictWeb
from tests.conftest import wait_until
from tests.district.test_custody_keep import UID_A, UID_B, UID_C, StationSim, kept
from tests.support.custody import keeping

SHOWN_WITHIN_MS = 10_000


@pytest.fixture
def register_db(tmp_path):
    db = tmp_path / "custody.db"
    register = Register(db)
    register.receive("kiriman-1.txt", [(1, UID_A), (2, UID_B)], "2026-12-01")
    register.close()
    return db


@pytest.fixture
def web(broker, register_db):
    page = DistrictWeb(broker.url, listen=("127.0.0.1", 0), custody_db=str(register_db)).start()
    yield page
    page.stop()


def field(tab, station: str, name: str) -> str:
    return tab.inner_text(f'#counts tr[data-station="{station}"] [data-field="{name}"]')


def test_the_page_shows_the_register_per_station_and_links_the_days_berita_acara(
        broker, register_db, web, chromium):
    one, two = StationSim(broker, "st-1"), StationSim(broker, "st-2")
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="id-ID")
    errors: list[str] = []
    try:
        with keeping(broker.url, register_db):
            one.send(one.blank(UID_A, record_id="R-1"))
            one.send(one.blank(UID_B, "invalid", "gagal-encode", record_id="R-2"))
            two.send(two.blank(UID_C, record_id="R-3"))  # in no manifest: foreign
            two.send(two.blank(None, "invalid", "gagal-cetak", record_id="R-4"))
            assert wait_until(lambda: kept(register_db) == 4, 20)
            tab = context.new_page()
            tab.on("pageerror", lambda error: errors.append(str(error)))
            tab.goto(web.url)
            tab.click("#custody-link")  # one link from the main page
            tab.wait_for_selector('#counts tr[data-station=""]', timeout=SHOWN_WITHIN_MS)
            assert (field(tab, "st-1", "today-printed"), field(tab, "st-1", "today-gagal-encode"),
                    field(tab, "st-2", "month-printed"), field(tab, "st-2", "month-gagal-cetak"),
                    field(tab, "", "today-printed")) == ("1", "1", "1", "1", "2")
            foreign = tab.inner_text(f'#flagged tr[data-uid="{UID_C}"][data-kind="foreign"]')
            assert "st-2" in foreign and "Blanko asing" in foreign
            one.send(one.blank(UID_B, record_id="R-5"))  # an invalid blank used again
            tab.wait_for_selector(f'#flagged tr[data-uid="{UID_B}"][data-kind="duplicate"]',
                                  timeout=SHOWN_WITHIN_MS)
            assert "UID ganda" in tab.inner_text(f'#flagged tr[data-uid="{UID_B}"]')
            pdf_href = tab.get_attribute("#ba-pdf", "href")
            csv_href = tab.get_attribute("#ba-csv", "href")
        with urllib.request.urlopen(web.url.rstrip("/") + pdf_href, timeout=10) as response:
            assert response.headers["Content-Type"] == "application/pdf"
            pdf = response.read()
        with urllib.request.urlopen(web.url.rstrip("/") + csv_href, timeout=10) as response:
            table = response.read().decode("utf-8-sig")
        assert UID_B in table and "(tanpa chip)" in table and "R-4" in table
        if shutil.which("pdftotext") is None:
            pytest.fail("pdftotext is missing: run scripts/setup, or 'sudo apt-get install"
                        " poppler-utils'", pytrace=False)
        text = subprocess.run(["pdftotext", "-layout", "-", "-"], input=pdf, check=True,
                              capture_output=True, timeout=60).stdout.decode()
        assert UID_B in text and "R-4" in text and "Gagal encode" in text
    finally:
        context.close()
        one.close()
        two.close()
    assert not errors, f"the page's script failed: {errors}"
