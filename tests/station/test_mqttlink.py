"""The broker link against a real Mosquitto: its intake window and what it remembers.

Mosquitto 2.0.11 (Debian 12) does not hold to a client's Receive Maximum once acks
flow, so these tests meet the case the window is for with the broker as it is.
"""

from __future__ import annotations

import queue
import signal
import time
import tracemalloc

import paho.mqtt.client as mqtt

from kiosk.station import mqttlink
from kiosk.station.config import from_dict
from kiosk.station.core import events as ev
from kiosk.station.core.outbound import OUTBOX_WINDOW
from kiosk.station.mqttlink import RECEIVE_MAXIMUM, MqttLink
from kiosk.station.spool import OutboxItem
from tests.conftest import wait_until


class Listener:
    """A link whose events land in a queue, read by the test as the station would."""

    def __init__(self, settings: dict, stall_s: float | None = None) -> None:
        self.heard: queue.Queue = queue.Queue()
        self.link = MqttLink(from_dict(settings), self.heard.put, stall_s=stall_s)

    def __enter__(self) -> Listener:
        self.link.start()
        self.link_up()
        time.sleep(0.3)  # LinkUp comes with the CONNACK; the subscription's SUBACK follows
        return self

    def __exit__(self, *exc: object) -> None:
        self.link.stop()

    def link_up(self) -> ev.LinkUp:
        return self.next(ev.LinkUp)

    def next(self, kind: type, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # other events may keep coming: the deadline holds
            event = self.heard.get(timeout=max(0.01, deadline - time.monotonic()))
            if isinstance(event, kind):
                return event
        raise AssertionError(f"no {kind.__name__} within {timeout} s")

    def messages(self, timeout: float, count: int = 0) -> list[ev.MessageArrived]:
        """The next *count* messages, or every message heard until *timeout* passes in
        silence."""
        found: list[ev.MessageArrived] = []
        deadline = time.monotonic() + 60
        while (not count or len(found) < count) and time.monotonic() < deadline:
            try:
                event = self.heard.get(timeout=10 if count else timeout)
            except queue.Empty:
                return found
            if isinstance(event, ev.MessageArrived):
                found.append(event)
        return found

    def ack_all(self, messages: list[ev.MessageArrived]) -> list[tuple[int, int]]:
        """Ack *messages*, then every message heard until a second's silence, as the
        station would; (record number, generation) of each message acked."""
        acked = []
        self.reconnected = False
        for message in messages:
            self._ack(message, acked)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                event = self.heard.get(timeout=1.0)
            except queue.Empty:
                return acked
            if isinstance(event, ev.MessageArrived):
                self._ack(event, acked)
            self.reconnected |= isinstance(event, ev.LinkUp)
        raise AssertionError("messages kept coming for 60 s")

    def _ack(self, message: ev.MessageArrived, acked: list[tuple[int, int]]) -> None:
        self.link.ack(message.mid, message.generation)
        acked.append((int(message.payload[6:-1]), message.generation))


def publish_jobs(broker, base: str, count: int) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        infos = [client.publish(f"{base}/jobs", f'{{"n": {n}}}'.encode(), qos=1)
                 for n in range(count)]
        for info in infos:
            info.wait_for_publish(timeout=10)
    finally:
        client.disconnect()
        client.loop_stop()


def test_a_backlog_is_taken_in_no_more_than_the_window_at_a_time(station_settings, broker):
    """300 queued records, acked slowly: never more than the window unacknowledged."""
    with Listener(station_settings) as listener:
        base = listener.link.base
        listener.link.stop()
        publish_jobs(broker, base, 300)
        listener.link = MqttLink(from_dict(station_settings), listener.heard.put)
        listener.link.start()
        link_up = listener.link_up()
        unacked: list[ev.MessageArrived] = []
        worst, taken = 0, 0
        deadline = time.monotonic() + 60  # a lost session fails here, it does not hang
        while taken < 300:
            assert time.monotonic() < deadline, f"only {taken} of 300 records arrived"
            try:
                event = listener.heard.get(timeout=0.002)
                if isinstance(event, ev.MessageArrived):
                    unacked.append(event)
                    taken += 1
            except queue.Empty:
                pass
            worst = max(worst, len(unacked))
            if unacked and (len(unacked) >= RECEIVE_MAXIMUM or listener.heard.empty()):
                message = unacked.pop(0)
                listener.link.ack(message.mid, link_up.generation)
                time.sleep(0.001)  # a station's commit
    assert worst == RECEIVE_MAXIMUM, f"{worst} messages were unacknowledged at once"


def test_a_station_that_stops_acking_refuses_messages_and_gets_them_again(
    station_settings, broker, caplog
):
    """The station acks a few records, then none for a while (disk full): the link holds
    the window and refuses the rest, unacknowledged. Once the station acks again the
    link reconnects, and the broker sends what was refused: every record arrives. (One
    emitted but not yet acked when the link reconnects comes again on the new
    connection, as after any reconnect; the spool dedupes it.)"""
    total, first = RECEIVE_MAXIMUM + 40, 4
    with Listener(station_settings, stall_s=0.1) as listener:
        publish_jobs(broker, listener.link.base, total)
        for message in listener.messages(timeout=0.0, count=first):
            # after these acks, Mosquitto 2.0.11 sends the rest at once
            listener.link.ack(message.mid, message.generation)
        assert wait_until(lambda: "not acknowledging" in caplog.text, 5)
        held = listener.messages(timeout=0.5)
        assert len(held) == RECEIVE_MAXIMUM
        heard = listener.ack_all(held)
        assert listener.reconnected, "the link did not reconnect for the refused records"
    assert {number for number, _ in heard} == set(range(first, total)), "records missing"
    assert len(set(heard)) == len(heard), "a record came twice on one connection"


def test_the_link_keeps_nothing_for_events_the_broker_confirmed(station_settings):
    """Whatever the link remembers per outbox item must go once the broker confirmed it:
    measured with tracemalloc on kiosk/station/mqttlink.py over 2,000 events sent as the station
    sends them (a few at a time, the next once these are confirmed). A leak of a few
    bytes per event is too small for a soak's RSS to show, yet it grows for ever."""
    with Listener(station_settings) as listener:
        topic = listener.link.base + "/events"
        tracemalloc.start()
        try:
            before = _traced_in(mqttlink.__file__)
            for first in range(1, 2001, 25):
                listener.link.send([OutboxItem(i, topic, b"{}", None)
                                    for i in range(first, first + 25)])
                for _ in range(25):
                    listener.next(ev.Delivered)
            grown = _traced_in(mqttlink.__file__) - before
        finally:
            tracemalloc.stop()
    assert grown < 16_000, f"{grown} bytes kept by the link for 2,000 confirmed events"


def test_a_stopping_link_does_not_wait_for_room(station_settings, broker):
    with Listener(station_settings, stall_s=30) as listener:
        publish_jobs(broker, listener.link.base, RECEIVE_MAXIMUM + 1)
        assert wait_until(lambda: listener.heard.qsize() >= RECEIVE_MAXIMUM, 5)
        started = time.monotonic()
    assert time.monotonic() - started < 5, "stop() waited for the stalled message"


def _traced_in(filename: str) -> int:
    """Bytes allocated by the lines of *filename* and still alive."""
    stats = tracemalloc.take_snapshot().statistics("filename")
    return sum(stat.size for stat in stats if stat.traceback[0].filename == filename)


def test_events_leave_in_outbox_order_while_confirmations_come_back(station_settings, broker):
    """The station hands events over in batches, as its outbox window allows, while the
    broker's PUBACKs for earlier ones arrive on paho's thread: the district must see them
    in outbox order."""
    seen: list[int] = []
    watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    watcher.on_message = lambda c, u, message: seen.append(int(message.payload[6:-1]))
    watcher.connect("127.0.0.1", broker.port)
    watcher.loop_start()
    total = 3000
    try:
        with Listener(station_settings) as listener:
            topic = listener.link.base + "/events"
            watcher.subscribe(topic, 1)
            time.sleep(0.3)
            confirmed = 0
            for first in range(0, total, 50):
                while first - confirmed >= OUTBOX_WINDOW:
                    listener.next(ev.Delivered)
                    confirmed += 1
                listener.link.send([OutboxItem(i + 1, topic, f'{{"n": {i}}}'.encode(), None)
                                    for i in range(first, first + 50)])
            assert wait_until(lambda: len(seen) >= total, 20), f"{len(seen)} of {total}"
    finally:
        watcher.disconnect()
        watcher.loop_stop()
    assert seen == list(range(total))


# -- issue 14/15: the link's own promises, each against a real broker ----------------------


class Watcher:
    """A plain paho client counting what reaches one topic."""

    def __init__(self, broker, topic: str) -> None:
        self.seen: list[bytes] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = lambda c, u, message: self.seen.append(message.payload)
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe(topic, 1)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_state_published_while_the_broker_is_away_is_not_sent_later(station_settings, broker):
    """Publishing into the void: a station offline for an hour changes state thousands
    of times; none of it may pile up in memory and pour out at the next connection."""
    with Listener(station_settings) as listener:
        topic = listener.link.base + "/state"
        broker.stop()
        listener.next(ev.LinkDown)
        for n in range(500):
            listener.link.publish(topic, f'{{"n": {n}}}'.encode())
        broker.start()
        watcher = Watcher(broker, topic)
        try:
            listener.link_up()
            time.sleep(1.0)
            assert watcher.seen == [], f"{len(watcher.seen)} stale states were sent"
            listener.link.publish(topic, b'{"n": "fresh"}')
            assert wait_until(lambda: watcher.seen == [b'{"n": "fresh"}'], 5)
        finally:
            watcher.close()


def test_outbox_items_handed_over_while_away_leave_once_connected(station_settings, broker):
    with Listener(station_settings) as listener:
        topic = listener.link.base + "/events"
        broker.stop()
        listener.next(ev.LinkDown)
        listener.link.send([OutboxItem(i, topic, b"{}", None) for i in range(1, 6)])
        broker.start()
        listener.link_up()
        listener.link.publish(listener.link.base + "/availability", b"online")  # as on LinkUp
        delivered = {listener.next(ev.Delivered).item_id for _ in range(5)}
        assert delivered == {1, 2, 3, 4, 5}


def test_a_puback_with_a_failure_code_keeps_the_item_and_it_goes_again(
    station_settings, tmp_path
):
    """The broker refuses an event (Not authorized, 0x87): it is not taken as delivered;
    once the broker takes it (the ACL fixed, SIGHUP), the link's retry delivers it."""
    from kiosk.sim.broker import Broker

    base = "ektp/v1/3210/st-1"
    acl = tmp_path / "acl.conf"
    allowed = [f"topic readwrite {base}/{leaf}" for leaf in ("jobs", "cmd/#", "availability")]
    acl.write_text("\n".join(allowed) + "\n")
    with Broker(tmp_path / "acl-broker", extra_config=f"acl_file {acl}") as broker:
        station_settings["mqtt"]["url"] = broker.url
        with Listener(station_settings) as listener:
            listener.link.send([OutboxItem(7, f"{base}/events", b"{}", None)])
            time.sleep(1.0)
            heard = [listener.heard.get_nowait() for _ in range(listener.heard.qsize())]
            assert not [e for e in heard if isinstance(e, ev.Delivered)], "refused, yet taken"
            acl.write_text("\n".join([*allowed, f"topic readwrite {base}/events"]) + "\n")
            broker.process.send_signal(signal.SIGHUP)  # Mosquitto reads its ACL again
            time.sleep(0.5)
            listener.link.retry_due(time.monotonic() + 120)
            assert listener.next(ev.Delivered).item_id == 7


def test_acks_leave_in_arrival_order_whatever_order_the_station_finishes_in(
    station_settings, broker
):
    """Messages 2 and 3 are finished before 1 (1 is a record held back): none is acked
    until 1 is, so a cut line brings all three back, not 1 alone."""
    from tests.station.netcut import NetCut

    with NetCut(broker.port) as relay:
        station_settings["mqtt"].update(url=relay.url)
        with Listener(station_settings) as listener:
            publish_jobs(broker, listener.link.base, 3)
            first, second, third = listener.messages(timeout=0.0, count=3)
            listener.link.ack(third.mid, third.generation)
            listener.link.ack(second.mid, second.generation)
            time.sleep(0.3)
            relay.reset()
            listener.link_up()
            again = listener.messages(timeout=0.0, count=3)  # each waited for up to 10 s
    assert sorted(m.payload for m in again) == sorted(
        m.payload for m in (first, second, third))


def test_an_ack_for_an_older_connection_is_never_sent_on_a_newer_one(station_settings, broker):
    from tests.station.netcut import NetCut

    with NetCut(broker.port) as relay:
        station_settings["mqtt"].update(url=relay.url)
        with Listener(station_settings) as listener:
            publish_jobs(broker, listener.link.base, 1)
            (old,) = listener.messages(timeout=0.0, count=1)
            relay.reset()
            listener.link_up()
            (redelivered,) = listener.messages(timeout=0.0, count=1)
            listener.link.ack(old.mid, old.generation)  # stale: must be dropped
            time.sleep(0.3)
            relay.reset()
            listener.link_up()
            third = listener.messages(timeout=1.0)
    assert redelivered.payload == old.payload
    assert [m.payload for m in third] == [old.payload], "the stale ack was taken"


def test_rebirth_sends_again_what_was_handed_over_and_not_confirmed(station_settings, broker):
    """An event lost on the way (no PUBACK yet) is not handed over twice by the outbox's
    refills, but rebirth (``again``) sends it again at once."""
    from tests.station.netcut import NetCut

    with NetCut(broker.port) as relay:
        station_settings["mqtt"].update(url=relay.url)
        with Listener(station_settings) as listener:
            topic = listener.link.base + "/events"
            watcher = Watcher(broker, topic)
            try:
                time.sleep(0.3)
                item = OutboxItem(3, topic, b'{"n": 3}', None)
                relay.mute_client()
                listener.link.send([item])  # swallowed on the way
                time.sleep(0.3)
                relay.flow()
                listener.link.send([item])  # handed over already: not again
                time.sleep(0.5)
                assert watcher.seen == []
                listener.link.send([item], again=True)  # rebirth
                assert wait_until(lambda: watcher.seen == [b'{"n": 3}'], 5)
                assert listener.next(ev.Delivered).item_id == 3
            finally:
                watcher.close()


def test_the_broker_keeps_messages_far_beyond_the_record_limit_from_the_station(
    station_settings, broker
):
    """Maximum Packet Size in CONNECT: a 2 MiB message never reaches the station's memory;
    one a little over the record limit does, and the station's own check rejects it."""
    with Listener(station_settings) as listener:
        base = listener.link.base
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        try:
            for size in (2 * 1024 * 1024, 300 * 1024, 10):
                client.publish(f"{base}/jobs", b"x" * size, qos=1).wait_for_publish(10)
        finally:
            client.disconnect()
            client.loop_stop()
        sizes = [len(m.payload) for m in listener.messages(timeout=1.5)]
    assert sizes == [300 * 1024, 10]


def test_connection_failures_name_their_cause(station_settings, broker, caplog):
    """A port where nothing listens, and TLS spoken to a plain listener: each attempt is
    logged with its cause and reported as LinkFailed (a certificate the station's CA did
    not sign: tests/ops/test_tls.py)."""
    from kiosk.sim.broker import free_port

    for url, cause in ((f"mqtt://127.0.0.1:{free_port()}", "ConnectionRefusedError"),
                       (broker.url.replace("mqtt://", "mqtts://"), "ConnectionResetError")):
        station_settings["mqtt"]["url"] = url
        heard: queue.Queue = queue.Queue()
        link = MqttLink(from_dict(station_settings), heard.put)
        link.start()
        try:
            deadline = time.monotonic() + 10
            failed = None
            while failed is None and time.monotonic() < deadline:
                event = heard.get(timeout=max(0.01, deadline - time.monotonic()))
                failed = event if isinstance(event, ev.LinkFailed) else None
        finally:
            link.stop()
        assert failed is not None and cause in failed.cause, failed
        assert cause in caplog.text
