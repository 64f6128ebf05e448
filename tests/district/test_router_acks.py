"""The router's PUBACKs leave in arrival order (MQTT 5, 4.6), against a real Mosquitto."""

from __future__ import annotations

import json
import time

from tests.conftest import DISTRICT, wait_until
from tests.district.test_router import RouterThread
from tests.station.netcut import NetCut


def test_a_station_event_is_not_acked_ahead_of_an_inbox_record_still_held(
    tmp_path, broker, district, signed
):
    """No station can print, so the inbox record waits unacknowledged; a station event
    that arrives after it must wait too: a cut line brings both back."""
    with NetCut(broker.port) as relay:
        router_thread = RouterThread(broker, tmp_path / "router.db", district)
        router = router_thread.router
        router.url = relay.url  # the router's line goes through the relay
        heard: list[str] = []
        original = router.client.on_message

        def counting(client, userdata, message) -> None:
            heard.append(message.topic)
            original(client, userdata, message)

        router.client.on_message = counting
        with router_thread:
            district.send_inbox(signed(1))
            event_topic = f"ektp/v1/{DISTRICT}/st-9/events"
            district.client.publish(event_topic, json.dumps({"type": "job"}).encode(),
                                    qos=1).wait_for_publish(5)
            assert wait_until(lambda: heard.count(event_topic) == 1, 10)
            time.sleep(0.5)  # the router has committed it; an ack would have gone by now
            relay.reset()
            assert wait_until(lambda: heard.count(event_topic) == 2, 15), (
                "the event was acked ahead of the inbox record held before it")
