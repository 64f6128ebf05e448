"""kiosk district update: the bundle over HTTP, the command over MQTT, waves, canary first.

The stations here are real MQTT clients on the real Mosquitto that answer the ``update``
command with the station module's own ``accept`` (kiosk/ops/update/command.py), download
the bundle from the district's server, check its digest, and report an ``update`` event
with the outcome each test chooses for them.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
import urllib.request

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from kiosk.contract.signing import generate_key_pair, load_private_key
from kiosk.district.cli import main as district_main
from kiosk.district.update import plan_waves
from kiosk.ops.update.command import UpdateEvents, accept
from tests.ops.update_fakes import make_bundle, release_key, station

__all__ = ["release_key", "station"]  # fixtures

ROOT = "ektp/v1/3210"


class FakeStation:
    def __init__(self, url: str, sid: str, outcome: str, log: list) -> None:
        self.sid, self.outcome, self.log = sid, outcome, log
        self.commands: list[dict] = []
        self.seen_page: dict | None = None
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"3210-{sid}",
                                  protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", int(url.rsplit(":", 1)[1]))
        self.client.subscribe(f"{ROOT}/{sid}/cmd/update", qos=1)
        self.client.loop_start()
        self.client.publish(f"{ROOT}/{sid}/availability", b"online", qos=1, retain=True)
        self.client.publish(f"{ROOT}/{sid}/state", json.dumps({"version": "1.0"}), qos=1,
                            retain=True).wait_for_publish(5)

    def _on_message(self, client, userdata, message) -> None:
        args = json.loads(message.payload)
        self.commands.append(args)
        self.log.append(("command", self.sid, time.monotonic()))
        reply = accept(args, config="/etc/kiosk/station.toml", launcher=self._launch)
        props = Properties(PacketTypes.PUBLISH)
        props.CorrelationData = message.properties.CorrelationData
        client.publish(message.properties.ResponseTopic, json.dumps(reply), qos=1,
                       properties=props)

    def _launch(self, argv, version) -> None:
        url, digest = argv[-1], argv[argv.index("--sha256") + 1]
        threading.Thread(target=self._update, args=(url, digest, version), daemon=True).start()

    def _update(self, url: str, digest: str, version: str) -> None:
        data = urllib.request.urlopen(url, timeout=10).read()
        page = url.split("/bundles/")[0] + "/api/update"
        self.seen_page = json.loads(urllib.request.urlopen(page, timeout=10).read())
        outcome = self.outcome if hashlib.sha256(data).hexdigest() == digest else "refused"
        self.log.append(("event", self.sid, time.monotonic()))
        event = {"schema": "ektp.event/1", "type": "update", "version": version,
                 "outcome": outcome, "detail": f"{outcome} (test)"}
        self.client.publish(f"{ROOT}/{self.sid}/events", json.dumps(event), qos=1)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def fleet(broker):
    made: list[FakeStation] = []
    log: list = []

    def make(outcomes: dict[str, str]) -> list[FakeStation]:
        made.extend(FakeStation(broker.url, sid, outcome, log) for sid, outcome in outcomes.items())
        return made

    make.log = log
    yield make
    for member in made:
        member.close()


@pytest.fixture
def release(tmp_path):
    key = load_private_key(generate_key_pair(tmp_path, name="release")[0])
    return make_bundle(tmp_path / "kiosk-2.0.bundle", "2.0", key)


def _update(broker, release, *extra: str) -> int:
    return district_main(["update", "--url", broker.url, "--bundle", str(release),
                          "--serve", "127.0.0.1:0", "--wave-timeout", "20", *extra])


def test_waves_go_one_after_the_other_canary_first(broker, fleet, release, capsys):
    stations = fleet({"a": "updated", "b": "updated", "c": "current", "d": "updated"})
    assert _update(broker, release, "--canary", "1", "--wave-size", "2") == 0
    order = fleet.log
    canary_event = next(t for kind, sid, t in order if kind == "event" and sid == "a")
    later = [t for kind, sid, t in order if kind == "command" and sid != "a"]
    assert later and min(later) > canary_event  # the next wave only after the canary's report
    assert all(len(s.commands) == 1 for s in stations)
    body = stations[0].commands[0]
    assert body["version"] == "2.0" and len(body["sha256"]) == 64
    assert body["url"].startswith("http://127.0.0.1:")
    page = {row["id"]: row for row in stations[0].seen_page["stations"]}
    # the station's reply may still be on its way to the district: announced or updating
    assert page["a"]["update"] in ("announced", "updating") and page["a"]["version"] == "1.0"
    assert [page[s]["update"] for s in "bcd"] == ["waiting"] * 3
    assert "a: updated" in capsys.readouterr().out


def test_a_canary_that_rolls_back_stops_the_rollout(broker, fleet, release, capsys):
    stations = fleet({"a": "rolled-back", "b": "updated", "c": "updated"})
    assert _update(broker, release, "--canary", "1") == 1
    assert len(stations[0].commands) == 1
    assert [len(s.commands) for s in stations[1:]] == [0, 0]  # the rollout has ended
    out = capsys.readouterr().out
    assert "a: rolled-back" in out and "stopped after wave 1" in out


def test_named_stations_only(broker, fleet, release):
    stations = fleet({"a": "updated", "b": "updated"})
    assert _update(broker, release, "--stations", "b") == 0
    assert [len(s.commands) for s in stations] == [0, 1]


def test_an_unknown_station_is_a_usage_error(broker, fleet, release, capsys):
    fleet({"a": "updated"})
    assert _update(broker, release, "--stations", "a,zz") == 2
    assert "never seen on the broker: zz" in capsys.readouterr().err


def test_a_file_that_is_not_a_bundle_is_a_usage_error(broker, tmp_path, capsys):
    junk = tmp_path / "junk.bundle"
    junk.write_bytes(b"junk")
    assert _update(broker, junk, "--all") == 2
    assert "not a release bundle" in capsys.readouterr().err


def test_the_station_refuses_bad_arguments_precisely():
    launched = []
    good = {"url": "http://d/b", "sha256": "a" * 64, "version": "2.0"}
    assert accept(good, config="c", launcher=lambda a, v: launched.append(v))["ok"] is True
    for bad, word in (({**good, "url": "file:///etc/passwd"}, "url"),
                      ({**good, "sha256": "xyz"}, "sha256"),
                      ({**good, "version": "../../x"}, "version"), ([], "object")):
        reply = accept(bad, config="c", launcher=lambda a, v: launched.append(v))
        assert reply["ok"] is False and reply["error"] == "bad-arguments"
        assert word in reply["detail"]
    assert launched == ["2.0"]


def test_waves_are_planned_canary_first():
    assert plan_waves(list("abcdef"), canary=1, wave_size=2) == [["a"], ["b", "c"], ["d", "e"],
                                                                 ["f"]]
    assert plan_waves(list("abc"), canary=None, wave_size=10) == [["a", "b", "c"]]


def test_update_events_are_handed_to_the_station_until_it_has_them(tmp_path):
    from kiosk.ops.update.command import UpdateEvents
    from kiosk.ops.update.updater import record_event

    spool = tmp_path / "spool.db"
    record_event(tmp_path / "update-events.jsonl", {"type": "update", "version": "2.0"})
    events = UpdateEvents(spool)
    assert [e["version"] for e in events.take()] == ["2.0"]
    assert [e["version"] for e in events.take()] == ["2.0"]  # not done(): taken again
    record_event(tmp_path / "update-events.jsonl", {"type": "update", "version": "3.0"})
    events.take()
    record_event(tmp_path / "update-events.jsonl", {"type": "update", "version": "4.0"})
    events.done()  # 2.0 and 3.0 are in the outbox; 4.0 came after the take
    assert [e["version"] for e in events.take()] == ["4.0"]


class StationFront(FakeStation):
    """The MQTT side a station's core will have: ``accept`` starts the real updater against
    the station of ``update_fakes`` (real supervisor, real releases), and the events it
    leaves are published as the core will publish them (``UpdateEvents``)."""

    def __init__(self, url: str, sid: str, node, log: list) -> None:
        self.node = node
        super().__init__(url, sid, "unused", log)

    def _launch(self, argv, version) -> None:
        command = [sys.executable, "-m", "kiosk", *argv[1:-1], "--config", str(self.node.config),
                   "--supervisor", f"local:{self.node.socket}", argv[-1]]
        threading.Thread(target=self._run_updater, args=(command,), daemon=True).start()

    def _run_updater(self, command) -> None:
        subprocess.run(command, capture_output=True, timeout=120)
        events = UpdateEvents(self.node.spool)
        for event in events.take():
            self.log.append(("event", self.sid, time.monotonic()))
            body = {"schema": "ektp.event/1", **event}
            self.client.publish(f"{ROOT}/{self.sid}/events", json.dumps(body),
                                qos=1).wait_for_publish(5)
        events.done()


@pytest.mark.parametrize("mode, outcome, exit_code", [("good", "updated", 0),
                                                       ("exit", "rolled-back", 1)])
def test_from_the_district_to_the_real_updater_and_back(broker, fleet, station, release_key,
                                                        tmp_path, capsys, mode, outcome,
                                                        exit_code):
    front = StationFront(broker.url, "st-1", station, fleet.log)
    try:
        (second,) = fleet({"st-2": "updated"})
        bundle = make_bundle(tmp_path / "kiosk-2.0.bundle", "2.0", release_key[0], mode=mode)
        assert _update(broker, bundle, "--canary", "1") == exit_code
        out = capsys.readouterr().out
        assert f"st-1: {outcome}" in out, out
        station.wait_running("2.0" if mode == "good" else "1.0")
        assert len(second.commands) == (1 if mode == "good" else 0)
        assert not list(station.layout.releases.glob(".*"))  # the download is gone
    finally:
        front.close()


def test_offline_stations_are_named_not_waited_for(broker, fleet, release, capsys):
    stations = fleet({"a": "updated", "b": "updated"})
    stations[1].client.publish(f"{ROOT}/b/availability", b"offline", qos=1,
                               retain=True).wait_for_publish(5)
    assert _update(broker, release, "--all") == 0
    assert [len(s.commands) for s in stations] == [1, 0]
    assert "offline, not sent (update them later): b" in capsys.readouterr().out
