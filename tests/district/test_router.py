"""The district router on a real Mosquitto: three simulated stations, faults, kill -9.

Scripted stations (`FakeStation`: a plain MQTT client speaking mqtt.md) make
the protocol cases deterministic and fast; the real stations with their pty
printer simulators prove the whole path, down to the cards printed.
"""

from __future__ import annotations

import copy
import json
import sqlite3
import sys
import threading
import time
import uuid
from collections import Counter
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from kiosk.contract.signing import sign_record
from kiosk.district.router import Router
from kiosk.district.store import RouteStore
from kiosk.sim.printer import PrinterSimulator
from kiosk.sim.samples import make_kia_record
from kiosk.sim.tray import TraySimulator
from tests.conftest import DISTRICT, ServiceProcess, StationThread, wait_until

PREFIX = f"ektp/v1/{DISTRICT}"


# -- the district's parts -------------------------------------------------------------------


@dataclass
class Site:
    name: str
    settings: dict
    printer: PrinterSimulator
    tray: TraySimulator


@pytest.fixture
def sites(tmp_path, station_settings, printer_sim, tray_sim):
    """st-1 (conftest's) and st-2, st-3 built the same way, all on one broker."""
    made = [Site("st-1", station_settings, printer_sim, tray_sim)]
    for name in ("st-2", "st-3"):
        printer = PrinterSimulator(str(tmp_path / f"printer-{name}"), card_seconds=0.02,
                                   receive_timeout=0.8)
        tray = TraySimulator(str(tmp_path / f"tray-{name}"), cards=150)
        printer.start()
        tray.start()
        settings = copy.deepcopy(station_settings)
        settings["station"].update(id=name, spool=str(tmp_path / f"spool-{name}.db"))
        settings["printer"]["port"] = printer.path
        settings["tray"]["port"] = tray.path
        made.append(Site(name, settings, printer, tray))
    yield made
    for site in made[1:]:
        site.printer.stop()
        site.tray.stop()


@contextmanager
def running(sites, district):
    with ExitStack() as stack:
        for site in sites:
            stack.enter_context(StationThread(site.settings))
        names = [site.name for site in sites]
        assert district.wait_for(
            lambda: all(district.availability.get(n) == "online" for n in names), 15)
        yield


class RouterThread:
    """The router in this process (stopped cleanly)."""

    def __init__(self, broker, db, district, **options) -> None:
        self.router = Router(broker.url, str(db), district=DISTRICT, **options)
        self.thread = threading.Thread(target=self.router.run, daemon=True)
        self.district = district

    def __enter__(self) -> Router:
        self.district.availability.pop("_router", None)
        self.thread.start()
        assert self.district.wait_for(
            lambda: self.district.availability.get("_router") == "online", 10)
        return self.router

    def __exit__(self, *exc: object) -> None:
        self.router.stop()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "router did not stop"


class RouterProcess(ServiceProcess):
    """``kiosk district route`` as its own process."""

    def __init__(self, broker, db, directory) -> None:
        super().__init__([sys.executable, "-m", "kiosk.district.cli", "route", "--url",
                          broker.url, "--district", DISTRICT, "--db", str(db),
                          "--release-after", "0"], directory / "router.log")


class FakeStation:
    """A scripted station: retained ``online`` and an idle accepting state; each job
    it gets is printed at once (``print``), refused as not accepting (``refuse``) or
    spooled then released (``release``)."""

    def __init__(self, broker, name: str, mode: str) -> None:
        self.name, self.mode, self.base = name, mode, f"{PREFIX}/{name}"
        self.received: list[str] = []
        self.seq = 0
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{DISTRICT}-{name}",
                                  protocol=mqtt.MQTTv5)
        self.client.will_set(f"{self.base}/availability", b"offline", qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.publish(f"{self.base}/availability", b"offline", qos=1,
                            retain=True).wait_for_publish(5)
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        client.subscribe(f"{self.base}/jobs", 1)
        state = {"schema": "ektp.state/1", "printer_state": "idle",
                 "printer_state_reasons": ["none"], "accepting_jobs": True,
                 "queue": {"pending": 0, "held": 0, "processing": 0},
                 "stock": {"remaining": None, "low_threshold": 50, "sensor_estimate": None}}
        client.publish(f"{self.base}/state", json.dumps(state), qos=1, retain=True)
        client.publish(f"{self.base}/availability", b"online", qos=1, retain=True)

    def _on_message(self, client, userdata, message) -> None:
        rid = json.loads(message.payload)["record_id"]
        self.received.append(rid)
        if self.mode == "refuse":
            self._event("rejected", record_id=rid, error="not-accepting", detail="draining")
            return
        self._job(rid, "pending")
        if self.mode == "release":
            self._job(rid, "canceled", ["released"])
        else:
            self._job(rid, "processing")
            self._job(rid, "completed")

    def _job(self, rid: str, state: str, reasons: list[str] | None = None) -> None:
        self._event("job", record_id=rid, job_state=state, reasons=reasons or [], detail="")

    def _event(self, kind: str, **body: object) -> None:
        self.seq += 1
        event = {"schema": "ektp.event/1", "boot_id": "fake", "seq": self.seq,
                 "ts": "2026-01-01T00:00:00Z", "type": kind, **body}
        self.client.publish(f"{self.base}/events", json.dumps(event), qos=1)


# -- what the district saw ----------------------------------------------------------------


def completed_at(district, rid: str) -> list[str]:
    return [e["station"] for e in district.job_events(rid) if e["job_state"] == "completed"]


def spooled_at(district, rid: str) -> list[str]:
    return [e["station"] for e in district.job_events(rid) if e["job_state"] == "pending"]


def all_completed(district, ids, timeout: float) -> bool:
    return district.wait_for(lambda: all(completed_at(district, rid) for rid in ids), timeout)


def router_events(district, kind: str) -> list[dict]:
    return [e for e in district.events if e["station"] == "_router" and e["type"] == kind]


def ended(db, count: int) -> bool:
    """The router's store says *count* records completed (it hears events after us)."""
    return sum(1 for row in store_rows(db) if row[1] == "completed") == count


def store_rows(db) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT record_id, status, station, payload IS NULL FROM records"
                            " ORDER BY id").fetchall()


# -- real stations ------------------------------------------------------------------------


def test_records_sent_to_the_inbox_spread_across_the_stations(
    tmp_path, broker, sites, district, signed
):
    records = [signed(i) for i in range(1, 16)]
    ids = [r["record_id"] for r in records]
    with running(sites, district), RouterThread(broker, tmp_path / "router.db", district):
        for record in records:
            district.send_inbox(record)
        assert all_completed(district, ids, 45)
        for rid in ids:
            assert district.job_states(rid) == ["pending", "processing", "completed"]
        assert wait_until(lambda: ended(tmp_path / "router.db", 15), 5)
    where = Counter(completed_at(district, rid)[0] for rid in ids)
    assert set(where) == {"st-1", "st-2", "st-3"}
    assert min(where.values()) >= 3, where
    assert sum(site.printer.printed for site in sites) == 15
    assert {rid: site for rid, _, site, _ in store_rows(tmp_path / "router.db")} == {
        rid: completed_at(district, rid)[0] for rid in ids}
    # Ended records keep no personal data at the router.
    assert all(status == "completed" and dropped
               for _, status, _, dropped in store_rows(tmp_path / "router.db"))


@pytest.mark.parametrize("fault", ["jam", "empty"])
def test_a_station_that_jams_or_runs_out_gets_no_new_records_and_its_released_jobs_print_elsewhere(
    tmp_path, broker, sites, district, signed, fault
):
    bad = sites[0]
    if fault == "jam":
        bad.printer.inject("Se", "CARD JAM")
    else:  # one blank card left: the first card prints, the next finds the feeder empty
        bad.printer.load_cards(1 - bad.printer.feeder)
    reason = {"jam": "media-jam-error", "empty": "media-empty-error"}[fault]
    first = [signed(i) for i in range(1, 13)]  # a burst: st-1 gets about four
    later = [signed(i) for i in range(13, 19)]
    ids = [r["record_id"] for r in first + later]
    with running(sites, district), RouterThread(broker, tmp_path / "router.db", district,
                                                release_after_s=0.5):
        for record in first:
            district.send_inbox(record)
        assert district.wait_for(
            lambda: reason in district.states["st-1"]["printer_state_reasons"], 15)
        for record in later:
            district.send_inbox(record)
        at_bad = [r["record_id"] for r in first if "st-1" in spooled_at(district, r["record_id"])]
        assert district.wait_for(lambda: len(district.events_of("command")) >= 1, 10)
        stuck = [rid for rid in at_bad if "processing-stopped" in district.job_states(rid)]
        assert len(stuck) == 1  # the card in the printer stays there
        assert all_completed(district, [rid for rid in ids if rid not in stuck], 45)
        printed_before = [rid for rid in at_bad if completed_at(district, rid) == ["st-1"]]
        released = [rid for rid in at_bad if "canceled" in district.job_states(rid)]
        assert released, "the burst should have queued records at st-1 behind the stuck one"
        assert sorted(printed_before + stuck + released) == sorted(at_bad)
        for rid in released:
            assert [e["reasons"] for e in district.job_events(rid)
                    if e["job_state"] == "canceled"] == [["released"]]
            assert len(completed_at(district, rid)) == 1
            assert completed_at(district, rid) != ["st-1"]
        for record in later:
            assert "st-1" not in spooled_at(district, record["record_id"])
        if fault == "jam":
            bad.printer.clear_jam()
        else:
            bad.printer.load_cards(20)
        assert all_completed(district, stuck, 20)
    assert completed_at(district, stuck[0]) == ["st-1"]
    assert all(len(completed_at(district, rid)) == 1 for rid in ids)
    assert sum(site.printer.printed for site in sites) == len(ids)


def test_router_killed_9_mid_stream_loses_and_duplicates_nothing(
    tmp_path, broker, sites, district, signed
):
    records = [signed(i) for i in range(1, 41)]
    ids = [r["record_id"] for r in records]
    router = RouterProcess(broker, tmp_path / "router.db", tmp_path).start()
    assert district.wait_for(lambda: district.availability.get("_router") == "online", 15)

    def feed() -> None:
        for record in records:
            district.send_inbox(record)
            time.sleep(0.015)

    with running(sites, district):
        sender = threading.Thread(target=feed, daemon=True)
        sender.start()
        for spooled in (8, 24):
            assert wait_until(lambda n=spooled: len(district.events_of("job")) >= n, 20)
            router.kill()  # mid-stream: forwards and inbox acks in flight
            time.sleep(0.3)
            router.start()
        sender.join(timeout=30)
        assert all_completed(district, ids, 50)
        assert wait_until(lambda: ended(tmp_path / "router.db", len(ids)), 5)
        router.terminate()
    for rid in ids:
        assert district.job_states(rid) == ["pending", "processing", "completed"], rid
        assert len(spooled_at(district, rid)) == 1
    assert sum(site.printer.printed for site in sites) == len(ids)
    assert sorted(r[0] for r in store_rows(tmp_path / "router.db")) == sorted(ids)
    assert {status for _, status, _, _ in store_rows(tmp_path / "router.db")} == {"completed"}


# -- scripted stations: the protocol cases --------------------------------------------------


@pytest.fixture
def fakes(broker):
    made: list[FakeStation] = []

    def make(name: str, mode: str) -> FakeStation:
        made.append(FakeStation(broker, name, mode))
        return made[-1]

    yield make
    for fake in made:
        fake.close()


def record_like(signed, index: int) -> dict:
    return signed(index, record_id=f"r-{index}-{uuid.uuid4().hex[:6]}")


def test_a_refusing_station_gets_nothing_more_and_its_records_go_elsewhere(
    tmp_path, broker, sites, district, signed, fakes
):
    refusing = fakes("fake-1", "refuse")  # sorts first: it wins every tie
    records = [signed(i) for i in range(1, 4)]
    with running(sites[:1], district), RouterThread(broker, tmp_path / "r.db", district):
        assert district.wait_for(lambda: district.availability.get("fake-1") == "online", 5)
        for record in records:
            district.send_inbox(record)
            assert all_completed(district, [record["record_id"]], 20)
    assert refusing.received == [records[0]["record_id"]]
    assert all(completed_at(district, r["record_id"]) == ["st-1"] for r in records)


def test_released_records_never_go_back_to_the_station_that_released_them(
    tmp_path, broker, sites, district, signed, fakes
):
    releasing = fakes("fake-1", "release")
    records = [signed(i) for i in range(1, 4)]
    ids = [r["record_id"] for r in records]
    with running(sites[:1], district), RouterThread(broker, tmp_path / "r.db", district):
        assert district.wait_for(lambda: district.availability.get("fake-1") == "online", 5)
        for record in records:
            district.send_inbox(record)
            assert all_completed(district, [record["record_id"]], 20)
    assert releasing.received == ids  # each once, then printed at st-1
    assert all(completed_at(district, rid) == ["st-1"] for rid in ids)
    routed = [(e["record_id"], e["target"]) for e in router_events(district, "routed")]
    assert routed == [pair for rid in ids for pair in ((rid, "fake-1"), (rid, "st-1"))]


def test_records_wait_while_no_station_can_take_them_even_across_a_router_restart(
    tmp_path, broker, district, signed, fakes
):
    # More than the broker's in-flight window (20): states must still reach the router.
    records = [record_like(signed, i) for i in range(1, 31)]
    ids = [r["record_id"] for r in records]
    db = tmp_path / "router.db"
    with RouterThread(broker, db, district):
        for record in records:
            district.send_inbox(record)
        # The broker hands over its in-flight window; the rest stays queued there.
        assert wait_until(lambda: len(store_rows(db)) == 20, 10)
    assert {status for _, status, _, _ in store_rows(db)} == {"waiting"}
    with RouterThread(broker, db, district):
        printer = fakes("fake-1", "print")
        assert all_completed(district, ids, 20)
        assert wait_until(lambda: ended(db, 30), 5)
    assert sorted(printer.received) == sorted(ids)
    assert {status for _, status, _, _ in store_rows(db)} == {"completed"}


def test_a_record_sent_twice_is_routed_once(tmp_path, broker, district, signed, fakes):
    printer = fakes("fake-1", "print")
    record = record_like(signed, 1)
    with RouterThread(broker, tmp_path / "r.db", district):
        assert district.wait_for(lambda: district.availability.get("fake-1") == "online", 5)
        district.send_inbox(record)
        district.send_inbox(record)
        later = record_like(signed, 2)
        district.send_inbox(later)
        assert all_completed(district, [record["record_id"], later["record_id"]], 10)
    assert printer.received == [record["record_id"], later["record_id"]]


def test_unroutable_inbox_messages_are_acknowledged_and_reported(
    tmp_path, broker, district, signed, fakes
):
    fakes("fake-1", "print")
    good = record_like(signed, 1)
    db = tmp_path / "r.db"
    with RouterThread(broker, db, district):
        district.send_inbox(b"\x00 not json")
        district.send_inbox({"schema": "ektp.record/1", "record_id": "no spaces allowed"})
        district.send_inbox(good)
        assert all_completed(district, [good["record_id"]], 10)
        assert wait_until(lambda: ended(db, 1), 5)
    assert [e["error"] for e in router_events(district, "rejected")] == ["unroutable"] * 2
    with RouterThread(broker, db, district):  # acknowledged: not delivered again
        time.sleep(0.5)
    assert len(router_events(district, "rejected")) == 2
    assert RouteStore(db).counts() == {"completed": 1}


def test_after_a_crash_an_unconfirmed_forward_goes_again_to_the_same_station(
    tmp_path, broker, district, signed, fakes
):
    """A forward committed but not confirmed may have reached its station: only that
    station may get it again (it ignores a copy), even if another is now a better choice."""
    db = tmp_path / "r.db"
    record, waiting = record_like(signed, 1), record_like(signed, 2)
    store = RouteStore(db)
    with store.transaction():
        for item in (record, waiting):
            store.add(item["record_id"], 0, json.dumps(item).encode())
        store.assign(record["record_id"], "fake-2")
    store.close()
    first, second = fakes("fake-1", "print"), fakes("fake-2", "print")
    with RouterThread(broker, db, district):
        assert all_completed(district, [record["record_id"], waiting["record_id"]], 10)
        assert wait_until(lambda: ended(db, 2), 5)
    assert second.received == [record["record_id"]]
    assert first.received == [waiting["record_id"]]


def test_a_record_forwarded_before_a_restart_is_not_forwarded_again(
    tmp_path, broker, district, signed, fakes
):
    db = tmp_path / "r.db"
    record = record_like(signed, 1)
    store = RouteStore(db)
    with store.transaction():
        store.add(record["record_id"], 0, json.dumps(record).encode())
        store.assign(record["record_id"], "fake-1")
        store.update(record["record_id"], status="forwarded")
    store.close()
    printer = fakes("fake-1", "print")
    later = record_like(signed, 2)
    with RouterThread(broker, db, district):
        district.send_inbox(record)  # as the broker redelivers an unacknowledged message
        district.send_inbox(later)
        assert all_completed(district, [later["record_id"]], 10)
    assert printer.received == [later["record_id"]]


# -- issue 28: documents ------------------------------------------------------------------


def test_a_mixed_backlog_prints_each_record_on_a_station_of_its_kind(
    tmp_path, broker, sites, district, signed, district_key
):
    sites[1].settings["station"]["documents"] = ["kia"]  # st-2 prints the KIA only
    kia = [sign_record(make_kia_record(i), district_key[0]) for i in range(1, 5)]
    ektp = [signed(i) for i in range(10, 18)]
    records = [*kia[:2], *ektp, *kia[2:]]
    with running(sites, district), RouterThread(broker, tmp_path / "router.db", district):
        assert district.wait_for(lambda: district.states.get("st-2", {}).get("documents")
                                 == ["kia"], 10)
        for record in records:
            district.send_inbox(record)
        assert all_completed(district, [r["record_id"] for r in records], 45)
    where = {r["record_id"]: completed_at(district, r["record_id"])[0] for r in records}
    assert {where[r["record_id"]] for r in kia} == {"st-2"}
    assert "st-2" not in {where[r["record_id"]] for r in ektp}
    assert district.events_of("rejected") == []  # none had to be refused on the way
    assert sites[1].printer.printed == len(kia)


def test_a_record_no_station_prints_waits_and_the_router_says_which_document(
    tmp_path, broker, sites, district, signed, district_key
):
    kia = sign_record(make_kia_record(7), district_key[0])
    ektp = signed(8)
    with running(sites[:1], district), RouterThread(broker, tmp_path / "router.db", district):
        district.send_inbox(kia)
        district.send_inbox(ektp)
        assert all_completed(district, [ektp["record_id"]], 30)  # the E-KTP goes on
        assert wait_until(lambda: (district.states.get("_router") or {}).get("no_printer")
                          == ["kia"], 10)
        assert district.states["_router"]["waiting_by_document"] == {"kia": 1}
    assert district.job_states(kia["record_id"]) == []  # never sent to the E-KTP station
    assert district.events_of("rejected") == []  # (it would have refused it)
