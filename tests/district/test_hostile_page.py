"""A station in hostile hands, against the district's page (issue 24): a real Mosquitto with
the district's ACL, the real router, `kiosk district web` and the page in headless
Chromium. After each attack: a record sent to the inbox still reaches the honest station
``st-a``, /api/district answers strict JSON with st-a in it, and the page shows a jam at
st-a within 2 s.
"""

from __future__ import annotations

import json
import logging
import socket
import time
import urllib.request

import pytest

from kiosk.contract.mqtt import Credentials
from kiosk.district.web import server as web_server
from kiosk.district.web.server import DistrictWeb
from tests.conftest import wait_until
from tests.district.hostile import PREFIX, TOOLS, RouterRun

SHOWN_WITHIN_MS = 2000


@pytest.fixture
def page(acl_broker):
    web = DistrictWeb(acl_broker.url, listen=("127.0.0.1", 0),
                      credentials=Credentials(username=TOOLS[2])).start()
    yield web
    web.stop()


@pytest.fixture
def router(tmp_path, acl_broker, office, stations):
    with RouterRun(acl_broker, tmp_path / "router.db", office) as running:
        yield running


@pytest.fixture
def tab(chromium, page):
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="id-ID")
    browser_tab = context.new_page()
    errors: list[str] = []
    browser_tab.on("pageerror", lambda error: errors.append(str(error)))
    browser_tab.on("console", lambda message: errors.append(message.text)
                   if "Content Security Policy" in message.text else None)  # CSP violations too
    browser_tab.goto(page.url)
    browser_tab.wait_for_selector('[data-station="st-a"]', timeout=10_000)
    yield browser_tab
    context.close()
    assert not errors, f"the page's script failed: {errors}"


def strict(text: str) -> dict:
    def refuse(name: str) -> None:
        raise ValueError(f"{name} in the JSON")
    return json.loads(text, parse_constant=refuse)


def api(page: DistrictWeb, path: str = "api/district") -> dict:
    with urllib.request.urlopen(page.url + path, timeout=5) as response:
        assert response.status == 200
        return strict(response.read().decode())


def entry(page: DistrictWeb, name: str) -> dict:
    return next(s for s in api(page)["stations"] if s["id"] == name)


_counter = iter(range(1, 10_000))


def the_district_still_works(office, stations, page, tab) -> str:
    """The issue's "done when": routing, the JSON of the other stations, a jam shown."""
    n = next(_counter)
    rid = f"R-ok-{n}"
    office.send_inbox({"schema": "ektp.record/1", "record_id": rid})
    assert office.wait_for(lambda: "completed" in office.job_states(rid), 10), (
        "a record sent to the inbox did not reach st-a")
    assert entry(page, "st-a")["takes_records"] in (True, False)
    stations["st-a"].jam()
    tab.wait_for_selector('[data-station="st-a"] [data-reasons*="media-jam-error"]',
                          timeout=SHOWN_WITHIN_MS)
    stations["st-a"].state()
    tab.wait_for_selector('[data-station="st-a"] [data-field="route"].yes', timeout=5000)
    return rid


# -- attack 3: one retained state blanks the page ------------------------------------------


def test_nan_or_numbers_too_big_in_one_state_never_blank_the_page(
        office, stations, router, page, tab):
    liar = stations["st-b"]
    liar.publish("state", b'{"printer_state": "idle", "stock": {"remaining": NaN}}',
                 retain=True)
    the_district_still_works(office, stations, page, tab)
    tab.wait_for_selector('[data-station="st-b"] [data-field="state-invalid"]',
                          timeout=SHOWN_WITHIN_MS)
    assert "NaN is not a number" in entry(page, "st-b")["state_invalid"]

    liar.publish("state", b'{"printer_state": "idle", "counters": {"spoiled": '
                 + b"9" * 400 + b"}}", retain=True)
    the_district_still_works(office, stations, page, tab)
    assert wait_until(lambda: "400 digits" in (entry(page, "st-b")["state_invalid"] or ""), 5)

    liar.state(queue={"pending": 1e23, "held": -1, "processing": 2},
               counters={"printed": 5, "spoiled": 10**12})
    assert wait_until(lambda: entry(page, "st-b")["refused"] == [
        "queue.pending", "queue.held", "counters.spoiled"], 5)
    b = entry(page, "st-b")
    assert b["queue"] == {"pending": 0, "held": 0, "processing": 2}
    assert b["counters"]["printed"] == 5 and b["state_invalid"] is None
    assert b["invalid_messages"] == 3
    tab.wait_for_selector('[data-station="st-b"] [data-field="invalid-messages"]'
                          ':text-is("stasiun st-b mengirim 3 pesan tidak sah")',
                          timeout=SHOWN_WITHIN_MS)
    the_district_still_works(office, stations, page, tab)


# -- attack 4: prototype names freeze every card -------------------------------------------


def test_prototype_names_from_a_station_do_not_freeze_the_other_cards(
        office, stations, router, page, tab):
    stations["st-b"].state(printer_state="constructor",
                           printer_state_reasons=["constructor", "__proto__", "valueOf",
                                                  "has-own-property"])
    the_district_still_works(office, stations, page, tab)
    assert wait_until(lambda: entry(page, "st-b")["refused"] == [
        "printer_state", "printer_state_reasons"], 5)
    tab.wait_for_selector('[data-station="st-b"] [data-reasons="constructor has-own-property"]',
                          timeout=SHOWN_WITHIN_MS)
    assert "constructor" in tab.inner_text('[data-station="st-b"] [data-field="reasons"]')


# -- attack 5: one station falsifies the forecast ------------------------------------------


def test_one_station_cannot_falsify_the_forecast(office, stations, router, page, tab):
    printed = [the_district_still_works(office, stations, page, tab)  # three real cards
               for _ in range(3)]
    assert wait_until(lambda: api(page)["forecast"]["assumptions"]["cards_in_window"] == 3, 5)
    before = api(page)
    liar = stations["st-b"]
    liar.state(accepting_jobs=True, stock={"remaining": 1e21},
               counters={"printed": 10, "spoiled": -100000})
    for n in range(3000):  # cards it never printed, some of them long ago
        liar.client.publish(f"{PREFIX}/st-b/events", json.dumps({
            "type": "job", "job_state": "completed", "record_id": f"FAKE-{n}",
            "ts": "2026-01-01T00:00:00Z" if n % 2 else None}).encode(), qos=1)
    liar.job(printed[0], "completed")  # a real record, printed at st-a
    assert office.wait_for(lambda: any(
        e["station"] == "_router" and e["type"] == "station-lied" for e in office.events), 15)
    # The router's word comes after the flood it answers: the page has taken all of it.
    assert wait_until(lambda: entry(page, "st-b")["lies"] == 1, 5)
    after = api(page)
    a = after["forecast"]["assumptions"]
    assert a["cards_in_window"] == 3 and after["rate_per_hour"] == before["rate_per_hour"]
    assert after["forecast"]["blanks_on_hand"] == before["forecast"]["blanks_on_hand"]
    assert after["forecast"]["blanks_needed"] >= 0 and a["spoiled_per_printed"] >= 0
    hourly = api(page, "api/history")["cards_per_hour"]
    assert sum(count for _, count in hourly) == 3  # no fake bars, back-dated or not
    assert a["rate_from"] == "router"
    assert entry(page, "st-b")["refused"] == ["counters.spoiled", "stock.remaining"]
    tab.wait_for_selector('[data-station="st-b"] [data-field="lies"]', timeout=SHOWN_WITHIN_MS)
    the_district_still_works(office, stations, page, tab)


def test_a_stock_above_what_was_ever_refilled_is_doubtful_and_not_summed(
        office, stations, router, page, tab):
    liar = stations["st-b"]
    liar.state(stock={"remaining": 40})
    assert wait_until(lambda: api(page)["forecast"]["blanks_on_hand"] == 40, 5)
    liar.state(stock={"remaining": 5000})  # no refill on record
    assert wait_until(lambda: entry(page, "st-b")["stock_doubtful"], 5)
    body = api(page)
    assert body["forecast"]["blanks_on_hand"] is None
    assert body["forecast"]["assumptions"]["stock_doubtful"] == ["st-b"]
    tab.wait_for_selector('[data-station="st-b"] [data-field="stock"]:has-text("meragukan")',
                          timeout=SHOWN_WITHIN_MS)
    office.client.publish(f"{PREFIX}/st-b/cmd/refill", json.dumps(
        {"count": 4960, "request_id": "refill-1"}).encode(), qos=1).wait_for_publish(5)
    liar.state(stock={"remaining": 4999})  # booked by the refill the district sent
    assert wait_until(lambda: api(page)["forecast"]["blanks_on_hand"] == 4999, 5)
    assert not entry(page, "st-b")["stock_doubtful"]


# -- attack 7: connections that never finish a request ---------------------------------------


def test_silent_and_trickling_connections_are_closed_and_requests_still_answered(
        acl_broker, caplog):
    web = DistrictWeb(acl_broker.url, listen=("127.0.0.1", 0), idle_timeout_s=1.0,
                      credentials=Credentials(username=TOOLS[2])).start()
    try:
        silent = [socket.create_connection(("127.0.0.1", web.port)) for _ in range(100)]
        trickling = [socket.create_connection(("127.0.0.1", web.port)) for _ in range(100)]
        deadline = time.monotonic() + 10
        for sock in trickling:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        assert api(web)["stations"] == []  # answered meanwhile
        closed = 0
        for sock in silent + trickling:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                while sock.recv(1024):
                    pass
                closed += 1  # the server closed it: a positive signal, not a timeout
            except ConnectionResetError:
                closed += 1
            except TimeoutError:
                pass  # still open at the deadline: counted as not closed
            finally:
                sock.close()
        assert closed == 200
        assert [r for r in caplog.records if r.levelno >= logging.WARNING] == [], (
            "one line per connection would fill the disk under a flood")
    finally:
        web.stop()


def test_connections_over_the_cap_are_refused_at_once(acl_broker, monkeypatch, caplog):
    monkeypatch.setattr(web_server, "MAX_CONNECTIONS", 20)
    web = DistrictWeb(acl_broker.url, listen=("127.0.0.1", 0), idle_timeout_s=30.0,
                      credentials=Credentials(username=TOOLS[2])).start()
    held = []
    try:
        for _ in range(20):
            held.append(socket.create_connection(("127.0.0.1", web.port)))
            held[-1].sendall(b"GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            held[-1].settimeout(5)
            assert held[-1].recv(12) == b"HTTP/1.1 200"  # each one counted once it is served
        extra = socket.create_connection(("127.0.0.1", web.port))
        extra.settimeout(5)
        assert extra.recv(100).startswith(b"HTTP/1.1 503")
        extra.close()
        assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    finally:
        for sock in held:
            sock.close()
        web.stop()


# -- attack 9: headers ---------------------------------------------------------------------


def test_every_response_has_the_security_headers_and_no_version(page):
    for path in ("", "static/app.js", "api/district", "no-such-thing"):
        request = urllib.request.Request(page.url + path)
        try:
            response = urllib.request.urlopen(request, timeout=5)
        except urllib.error.HTTPError as error:
            response = error
        headers = response.headers
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Server"] == "kiosk", headers["Server"]
        response.close()


def raw_get(port: int, host: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET /api/district HTTP/1.1\r\nHost: {host}\r\nConnection: close"
                     "\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_the_host_header_is_checked_against_the_configured_names(acl_broker):
    web = DistrictWeb(acl_broker.url, listen=("127.0.0.1", 0), host_names=["Kiosk.Example"],
                      credentials=Credentials(username=TOOLS[2])).start()
    try:
        for host in (f"127.0.0.1:{web.port}", "localhost", "kiosk.example:8080", "[::1]:80"):
            assert raw_get(web.port, host).startswith(b"HTTP/1.1 200"), host
        for host in ("rebind.attacker.example", "kiosk.example.attacker.example:80", ""):
            answer = raw_get(web.port, host)
            assert answer.startswith(b"HTTP/1.1 421"), (host, answer[:80])
            assert b"stations" not in answer
    finally:
        web.stop()


# -- attack 10: stations are never removed ------------------------------------------------


def test_a_station_gone_for_the_forget_time_leaves_the_view(acl_broker, stations, office):
    web = DistrictWeb(acl_broker.url, listen=("127.0.0.1", 0), forget_after_s=1.0,
                      credentials=Credentials(username=TOOLS[2])).start()
    try:
        assert wait_until(lambda: {s["id"] for s in api(web)["stations"]} == {"st-a", "st-b"},
                          5)
        stations["st-b"].publish("availability", b"offline", retain=True)
        assert wait_until(lambda: {s["id"] for s in api(web)["stations"]} == {"st-a"}, 5)
        assert entry(web, "st-a")["availability"] == "online"  # online: stays, however silent
    finally:
        web.stop()
