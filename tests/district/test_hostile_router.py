"""A station in hostile hands, against the router (issue 24): a real Mosquitto with the
project's ACL (`kiosk pki acl`), the real router, an honest scripted station ``st-a`` and
``st-b`` whose key an attacker took: it publishes whatever it likes on its own topics.

After each attack, a record sent to the inbox still reaches ``st-a``, and no record ends
except by the word of a station it was sent to.
"""

from __future__ import annotations

import json
import sqlite3

from kiosk.district.client import DistrictClient
from tests.conftest import wait_until
from tests.district.hostile import PREFIX, RouterRun


def record(n: int) -> dict:
    return {"schema": "ektp.record/1", "record_id": f"R-{n:04d}"}


def routes_a_record(office: DistrictClient, stations, n: int) -> bool:
    """A record sent to the inbox now reaches st-a and is printed, within seconds."""
    office.send_inbox(record(n))
    rid = record(n)["record_id"]
    return office.wait_for(lambda: "completed" in office.job_states(rid), 10)


def router_events(office: DistrictClient, kind: str) -> list[dict]:
    with office._cond:
        return [e for e in office.events if e["station"] == "_router" and e["type"] == kind]


def rows(db) -> dict[str, tuple]:
    with sqlite3.connect(db) as conn:
        return {r[0]: r[1:] for r in conn.execute(
            "SELECT record_id, status, station, detail, payload IS NULL FROM records")}


def test_a_thousand_brackets_on_a_station_topic_do_not_stop_the_routing(
        tmp_path, acl_broker, office, stations):
    """Attack 1: `[` × 1000 on st-b's events killed the router, and again at each restart
    (its session delivered the message again)."""
    db = tmp_path / "router.db"
    with RouterRun(acl_broker, db, office) as router:
        stations["st-b"].publish("events", b"[" * 1000)
        stations["st-b"].publish("state", b"{" * 1000 + b"}" * 1000)
        assert routes_a_record(office, stations, 1)
        assert wait_until(lambda: router.core.invalid.get("st-b") == 2, 10)
    with RouterRun(acl_broker, db, office) as router:  # acknowledged: not delivered again
        assert routes_a_record(office, stations, 2)
        assert router.core.invalid == {}


def test_a_priority_sqlite_cannot_hold_is_refused_and_the_routing_goes_on(
        tmp_path, acl_broker, office, stations):
    """Attack 1b: an inbox record with "priority": 2**70 stopped the router for good."""
    db = tmp_path / "router.db"
    with RouterRun(acl_broker, db, office):
        office.send_inbox({**record(1), "priority": 2**70})
        office.send_inbox({**record(2), "priority": 1e999})  # written by json as Infinity
        office.send_inbox({**record(3), "priority": 10**12})
        assert routes_a_record(office, stations, 4)
        refused = router_events(office, "rejected")
        assert [e["record_id"] for e in refused] == [None, None, "R-0003"]
        assert "an integer of 22 digits" in refused[0]["detail"]
        assert "Infinity is not a number" in refused[1]["detail"]
        assert "priority must be an integer -1000000..1000000" in refused[2]["detail"]
    with RouterRun(acl_broker, db, office):  # acknowledged: not delivered again
        assert routes_a_record(office, stations, 5)
    assert len(router_events(office, "rejected")) == 3
    assert set(rows(db)) == {"R-0004", "R-0005"}


def test_a_station_cannot_end_records_it_was_never_sent(tmp_path, acl_broker, office, stations):
    """Attack 2: st-b, never given anything, said `completed` for ten guessable ids: all
    ten ended as "printed at st-b" and lost their payloads. Now nothing changes, and each
    lie is a `station-lied` event naming st-b. (Five records wait at the router: held
    unacknowledged while no station can take them, they and the lies stay within the
    broker's in-flight window.)"""
    db = tmp_path / "router.db"
    liar = stations["st-b"]
    with RouterRun(acl_broker, db, office) as router:
        stations["st-a"].publish("state", json.dumps({  # st-a busy: records wait at the router
            "printer_state": "idle", "accepting_jobs": False}).encode(), retain=True)
        for n in range(1, 6):
            office.send_inbox(record(n))
        assert wait_until(lambda: len(rows(db)) == 5, 10)
        for n in range(1, 6):
            liar.job(record(n)["record_id"], "completed")
        liar.job(record(1)["record_id"], "aborted")
        liar.publish("events", json.dumps({"type": "rejected", "record_id": "R-0002",
                                           "error": "invalid-field"}).encode())
        assert wait_until(lambda: len(router_events(office, "station-lied")) == 7, 10)
        assert {e["target"] for e in router_events(office, "station-lied")} == {"st-b"}
        assert router.core.lies == {"st-b": 7}
        assert all(row[0] == "waiting" and not row[3] for row in rows(db).values())
        stations["st-a"].publish("state", json.dumps({
            "printer_state": "idle", "accepting_jobs": True}).encode(), retain=True)
        assert office.wait_for(lambda: all("completed" in office.job_states(record(n)[
            "record_id"]) for n in range(1, 6)), 15)
        assert wait_until(lambda: all(row[0] == "completed" for row in rows(db).values()), 10)
    assert {row[2] for row in rows(db).values()} == {"printed at st-a"}


def test_the_acl_keeps_a_station_to_its_own_topics(acl_broker, stations, office):
    """What held: st-b cannot publish as st-a (the broker drops it; mqtt.md's ACL)."""
    liar = stations["st-b"]
    info = liar.client.publish(f"{PREFIX}/st-a/events", json.dumps(
        {"type": "job", "record_id": "R-0001", "job_state": "completed"}).encode(), qos=1)
    info.wait_for_publish(5)
    liar.publish("events", json.dumps({"type": "alert", "reason": "x-report"}).encode())
    assert office.wait_for(lambda: any(e["station"] == "st-b" for e in office.events), 5)
    assert not [e for e in office.events if e["station"] == "st-a"]


def test_an_event_from_a_station_the_record_has_left_changes_nothing_and_is_no_lie(
        tmp_path, acl_broker, office, stations):
    """A station that was sent a record and later released it may still say it completed
    it (a real station finishing the card in hand): that is taken, not called a lie."""
    db = tmp_path / "router.db"
    with RouterRun(acl_broker, db, office):
        assert routes_a_record(office, stations, 1)
        stations["st-a"].job("R-0001", "aborted")  # late, after completed: nothing changes
        assert routes_a_record(office, stations, 2)  # a later message: it had its chance
        assert wait_until(lambda: len(router_events(office, "completed")) == 2, 5)
    assert rows(db)["R-0001"][0] == "completed"
    assert router_events(office, "station-lied") == []


def test_oversized_station_messages_do_not_stall_the_inbox(tmp_path, acl_broker, office,
                                                          stations):
    """Twenty-five 400 KB events from st-b: refused one by one (over 64 KiB), and the
    inbox keeps flowing (Mosquitto 2.0.11 holds the in-flight slot of a QoS 1 message it
    drops for a client's Maximum Packet Size: the router must not ask for one)."""
    with RouterRun(acl_broker, tmp_path / "router.db", office) as router:
        for _ in range(25):
            stations["st-b"].publish("events", json.dumps(
                {"type": "job", "record_id": "R-0001", "detail": "x" * 400_000}).encode())
        assert routes_a_record(office, stations, 1)
        assert wait_until(lambda: router.core.invalid.get("st-b") == 25, 10)
