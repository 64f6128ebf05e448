"""``kiosk district send / cmd / watch`` against a real Mosquitto and a simulated station."""

from __future__ import annotations

import argparse
import base64
import csv
import json
import threading

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from rich.console import Console

from kiosk.contract.record import FIELD_NAMES
from kiosk.contract.signing import Verifier, sign_record
from kiosk.district import cli as district_cli
from kiosk.district.client import DistrictClient, Refused
from kiosk.district.view import station_table
from kiosk.sim.broker import Broker
from kiosk.sim.samples import make_record
from tests.conftest import DISTRICT, STATION, StationThread, wait_until

INBOX = f"ektp/v1/{DISTRICT}/inbox"


@pytest.fixture
def key_file(district_key):
    return str(district_key[1].with_suffix(".key"))


@pytest.fixture
def inbox(broker):
    """Every payload published to the district inbox, decoded."""
    got: list[dict] = []
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_subscribe = lambda *args: subscribed.set()
    client.on_message = lambda c, u, message: got.append(json.loads(message.payload))
    client.connect("127.0.0.1", broker.port)
    client.subscribe(INBOX, 1)
    client.loop_start()
    assert subscribed.wait(5)
    yield got
    client.disconnect()
    client.loop_stop()


def run_cli(broker, *argv: str) -> int:
    command, *rest = argv
    return district_cli.main([command, "--url", broker.url, "--district", DISTRICT, *rest])


def write_jsonl(path, records) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def write_csv(path, records) -> None:
    """One row a record; images as files next to the CSV (``@name``), fields by name."""
    columns = ["record_id", "nik", "priority", "photo_jpeg", "signature_png",
               *(f"fields.{name}" if i % 2 else name for i, name in enumerate(FIELD_NAMES))]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for record in records:
            rid = record["record_id"]
            (path.parent / f"{rid}.jpg").write_bytes(base64.b64decode(record["photo_jpeg"]))
            writer.writerow([rid, record["nik"], record["priority"], f"@{rid}.jpg",
                             record["signature_png"], *record["fields"].values()])


# -- send ------------------------------------------------------------------------------


def test_send_jsonl_signs_each_record_and_the_station_prints_them(
    tmp_path, broker, station_settings, district, key_file, printer_sim, capsys
):
    records = [make_record(i) for i in range(1, 4)]
    write_jsonl(tmp_path / "records.jsonl", records)
    with StationThread(station_settings, district):
        assert run_cli(broker, "send", str(tmp_path / "records.jsonl"), "--station", STATION,
                       "--key", key_file) == 0
        ids = [r["record_id"] for r in records]
        assert district.wait_for(
            lambda: all(district.final_state(rid) == "completed" for rid in ids), 30)
    assert printer_sim.printed == 3
    assert "3 records sent to ektp/v1/3210/st-1/jobs" in capsys.readouterr().out


def test_send_csv_to_the_inbox_builds_the_same_records(
    tmp_path, broker, inbox, district_key, key_file
):
    records = [make_record(i) for i in range(1, 5)]
    write_csv(tmp_path / "records.csv", records)
    assert run_cli(broker, "send", str(tmp_path / "records.csv"), "--key", key_file) == 0
    assert wait_until(lambda: len(inbox) == 4, 5)
    private, public = district_key
    assert inbox == [sign_record(record, private) for record in records]
    verifier = Verifier.from_pem_files([public])
    for record in inbox:
        verifier.verify(record)


def test_send_without_key_sends_records_as_they_are(tmp_path, broker, inbox, signed):
    records = [signed(i) for i in range(1, 3)]
    write_jsonl(tmp_path / "signed.jsonl", records)
    assert run_cli(broker, "send", str(tmp_path / "signed.jsonl")) == 0
    assert wait_until(lambda: len(inbox) == 2, 5)
    assert inbox == records


@pytest.fixture
def inbox_only_broker(tmp_path, mosquitto):
    """A real Mosquitto whose ACL lets anonymous clients write the district inbox only."""
    acl = tmp_path / "acl.conf"
    acl.write_text(f"topic readwrite {INBOX}\n")
    server = Broker(tmp_path / "acl-broker", extra_config=f"acl_file {acl}").start()
    yield server
    server.kill()


def test_send_that_the_broker_refuses_is_an_error_with_its_reason(
        tmp_path, inbox_only_broker, signed, capsys):
    records = [signed(i) for i in range(1, 4)]
    write_jsonl(tmp_path / "records.jsonl", records)
    code = run_cli(inbox_only_broker, "send", str(tmp_path / "records.jsonl"),
                   "--station", STATION, "--timeout", "5")
    out, err = capsys.readouterr()
    assert code == 1
    assert "sent to" not in out
    refusals = [line for line in err.splitlines() if "refused the message" in line]
    assert len(refusals) == 3
    assert all("Not authorized (0x87)" in line for line in refusals)
    assert "records.jsonl:1:" in refusals[0]
    assert f"0 of 3 records sent to ektp/v1/{DISTRICT}/{STATION}/jobs; 3 refused" in err
    # What the ACL allows still goes, and says so.
    assert run_cli(inbox_only_broker, "send", str(tmp_path / "records.jsonl")) == 0
    assert f"3 records sent to {INBOX}" in capsys.readouterr().out


def test_the_client_library_raises_what_the_broker_refused(inbox_only_broker, signed):
    client = DistrictClient(inbox_only_broker.url, district=DISTRICT).wait_connected()
    try:
        with pytest.raises(Refused, match="Not authorized"):
            client.publish_record(STATION, signed(1), timeout=5)
        client.send_inbox(signed(2), timeout=5)
    finally:
        client.close()


@pytest.mark.parametrize(("bad", "problem"), [
    ('{"schema": "ektp.record/1"', "records.jsonl:2: not JSON"),
    ("[1, 2]", "records.jsonl:2: not a JSON object"),
    (json.dumps(make_record(2) | {"nik": "12"}), "records.jsonl:2: invalid-field: nik"),
])
def test_send_refuses_a_bad_file_before_sending_anything(
    tmp_path, broker, inbox, capsys, bad, problem
):
    good = json.dumps(make_record(1))
    (tmp_path / "records.jsonl").write_text(f"{good}\n{bad}\n{good}\n")
    assert run_cli(broker, "send", str(tmp_path / "records.jsonl")) == 2
    assert problem in capsys.readouterr().err
    assert inbox == []


def test_send_csv_names_a_missing_column_and_a_missing_image(tmp_path, broker, capsys):
    path = tmp_path / "records.csv"
    path.write_text("record_id,nik\nr-1,3210\n")
    assert run_cli(broker, "send", str(path)) == 2
    assert "missing column 'photo_jpeg'" in capsys.readouterr().err
    write_csv(path, [make_record(1)])
    (tmp_path / f"{make_record(1)['record_id']}.jpg").unlink()
    assert run_cli(broker, "send", str(path)) == 2
    assert "records.csv:2: cannot read" in capsys.readouterr().err


# -- cmd -------------------------------------------------------------------------------


def test_cmd_sends_arguments_as_json_and_prints_the_reply(
    broker, station_settings, district, capsys
):
    with StationThread(station_settings, district):
        assert district_cli.main(["cmd", STATION, "refill", "count=25", "--url",
                                  broker.url]) == 0
        reply = json.loads(capsys.readouterr().out)
        assert reply == {"ok": True, "remaining": 25}
        assert district_cli.main(["cmd", STATION, "cancel", "record_id=007", "--url",
                                  broker.url]) == 1
        reply = json.loads(capsys.readouterr().out)
        assert (reply["ok"], reply["error"]) == (False, "unknown-record")
        assert "'007'" in reply["detail"]  # not a JSON number: kept as text
        assert district_cli.main(["cmd", STATION, "bogus", "--url", broker.url]) == 1
        assert json.loads(capsys.readouterr().out)["error"] == "unknown-command"
    assert district_cli.main(["cmd", STATION, "refill", "count", "--url", broker.url]) == 2
    assert "'count' is not k=v" in capsys.readouterr().err


def test_cmd_without_a_station_answering_fails_after_the_timeout(broker, capsys):
    code = district_cli.main(["cmd", "nobody", "status", "--timeout", "0.5", "--url", broker.url])
    assert code == 1
    assert "no reply to status from nobody" in capsys.readouterr().err


# -- watch -----------------------------------------------------------------------------


def test_watch_once_prints_every_station_and_whether_it_takes_records(
    broker, station_settings, district, capsys, monkeypatch
):
    monkeypatch.setenv("COLUMNS", "220")
    with StationThread(station_settings, district):
        assert district.wait_for(
            lambda: district.states.get(STATION, {}).get("printer_state") == "idle", 10)
        assert district_cli.main(["watch", "--once", "--url", broker.url]) == 0
        out = capsys.readouterr().out
        row = next(line for line in out.splitlines() if STATION in line)
        assert "online" in row and "idle" in row and "takes records" in row
        assert "router: not seen on this district" in out
        district.command(STATION, "drain")
        assert district.wait_for(
            lambda: district.states[STATION]["accepting_jobs"] is False, 10)
        assert district_cli.main(["watch", "--once", "--url", broker.url]) == 0
        row = next(line for line in capsys.readouterr().out.splitlines() if STATION in line)
        assert "not-accepting" in row


class _View:
    district = DISTRICT

    def __init__(self, availability, states) -> None:
        self.availability, self.states = availability, states

    def stations(self):
        return sorted(name for name in self.availability if not name.startswith("_"))


def test_the_watch_table_shows_stock_time_to_empty_queue_and_reasons():
    jammed = {"printer_state": "stopped", "printer_state_reasons": ["media-jam-error"],
              "accepting_jobs": True, "queue": {"pending": 4, "held": 1, "processing": 1},
              "stock": {"remaining": 87, "minutes_to_empty": 65.4},
              "counters": {"printed": 120, "spoiled": 2, "rejected": 1},
              "ts": "2026-01-01T00:00:00Z"}
    view = _View({"st-1": "online", "st-2": "offline", "_router": "online"}, {"st-1": jammed})
    console = Console(record=True, width=220)
    console.print(station_table(view, now=1767225612.0))  # 12 s after the stamp
    text = console.export_text()
    row = next(line for line in text.splitlines() if "st-1" in line)
    for cell in ("stopped", "media-jam-error", "4/1/1", "87", "1 h 05 min", "120", "12 s ago"):
        assert cell in row
    assert row.split("│")[-3].strip() == "media-jam-error"  # the router would not use it
    assert "offline" in next(line for line in text.splitlines() if "st-2" in line)
    assert "router: online" in text


def test_add_arguments_wires_a_district_sub_parser(broker, capsys):
    parser = argparse.ArgumentParser(prog="kiosk")
    sub = parser.add_subparsers(dest="command", required=True)
    district_cli.add_arguments(sub.add_parser("district"))
    args = parser.parse_args(["district", "cmd", "nobody", "status", "--timeout", "0.2",
                              "--url", broker.url])
    assert args.handler(args) == 1
    with pytest.raises(SystemExit):
        parser.parse_args(["district", "bogus"])
