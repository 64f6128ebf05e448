"""The router's core without a broker (kiosk/district/routecore.py): messages in, forwards
and acks out, on a store in memory. The shared in-order acks (kiosk/contract/acks.py) too."""

from __future__ import annotations

import json

from kiosk.contract.acks import InOrderAcks
from kiosk.district.routecore import RouterCore
from kiosk.district.store import RouteStore

ONLINE = json.dumps({"printer_state": "idle", "accepting_jobs": True,
                     "queue": {"pending": 0, "held": 0, "processing": 0}}).encode()


def core() -> RouterCore:
    return RouterCore(RouteStore(":memory:"), hold_ahead=None, release_after_s=None)


NOTES: list[dict] = []


def step(router: RouterCore, *calls) -> tuple[list, list[int]]:
    """One batch in a transaction, then (forwards, acks) as the adapter carries them out;
    the router events it sent go to NOTES."""
    with router.store.transaction():
        for name, *args in calls:
            getattr(router, name)(*args)
        router.assign()
    outbox = router.take_outbox()
    NOTES[:] = [json.loads(note) for note in outbox.notes]
    for mid, (rid, _, _) in enumerate(outbox.forwards, start=1000):
        router.forwarded(mid, rid)
    return outbox.forwards, router.acks_due()[1]


def record(rid: str, **more) -> bytes:
    return json.dumps({"schema": "ektp.record/1", "record_id": rid, **more}).encode()


def event(rid: str, job_state: str) -> bytes:
    return json.dumps({"type": "job", "record_id": rid, "job_state": job_state}).encode()


def test_in_order_acks_wait_for_the_oldest():
    order = InOrderAcks()
    for mid in (1, 2, 3):
        order.arrived(mid)
    assert order.finished(3) == [] and order.finished(2) == [] and len(order) == 3
    assert order.finished(1) == [1, 2, 3] and len(order) == 0
    order.arrived(4)
    order.reset()
    assert order.finished(4) == []


def test_a_record_no_station_can_take_holds_the_acks_behind_it():
    router = core()
    forwards, acks = step(router, ("inbox", record("R-1"), 1, 1),
                          ("station_message", "st-1", "events", event("X", "pending"), 2, 1))
    assert forwards == [] and acks == []  # R-1 waits unacked; the event waits behind it
    forwards, acks = step(router, ("station_message", "st-1", "availability", b"online", 0, 1),
                          ("station_message", "st-1", "state", ONLINE, 0, 1))
    assert [(rid, station) for rid, station, _ in forwards] == [("R-1", "st-1")]
    assert acks == []  # forwarded, not yet confirmed
    _, acks = step(router, ("puback", 1000, False))
    assert acks == [1, 2]


def test_a_station_speaks_only_of_its_own_records():
    router = core()
    step(router, ("station_message", "st-1", "availability", b"online", 0, 1),
         ("station_message", "st-1", "state", ONLINE, 0, 1), ("inbox", record("R-1"), 1, 1))
    _, acks = step(router, ("puback", 1000, False),
                   ("station_message", "st-2", "events", event("R-1", "completed"), 2, 1))
    assert router.lies == {"st-2": 1} and acks == [1, 2]
    assert router.store.get("R-1").status == "forwarded"
    assert [(n["type"], n["target"], n["record_id"]) for n in NOTES] == [
        ("station-lied", "st-2", "R-1")]
    step(router, ("station_message", "st-1", "events", event("R-1", "completed"), 3, 1))
    assert router.store.get("R-1").status == "completed"
    assert [(n["type"], n["target"]) for n in NOTES] == [("completed", "st-1")]


def test_invalid_messages_are_counted_acked_and_change_nothing():
    router = core()
    _, acks = step(router, ("station_message", "st-1", "events", b"[" * 1000, 1, 1),
                   ("station_message", "st-1", "state", b'{"queue": NaN}', 0, 1),
                   ("inbox", record("R-1", priority=10**7), 2, 1))
    assert router.invalid == {"st-1": 2} and acks == [1, 2]
    assert router.states["st-1"] == {} and router.store.get("R-1") is None


def test_a_rolled_back_batch_acks_nothing_of_its_connection():
    router = core()
    try:
        with router.store.transaction():
            router.inbox(record("R-1"), 1, 1)
            raise OSError("disk I/O error")
    except OSError:
        router.rolled_back()
    assert router.acks_due()[1] == []
    router.inbox(record("R-2"), 2, 1)  # the same connection: not tracked any more
    assert router.acks_due()[1] == []
    _, acks = step(router, ("inbox", record("R-1"), 1, 3))  # redelivered on the next one
    assert router.store.get("R-1") is not None and acks == []  # held: no station can take it
