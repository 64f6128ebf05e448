"""Personal data does not linger: gone from the spool files after keep_personal_data_h,
and never in events or logs beyond the record id and a masked NIK."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from kiosk.station.core import events as ev
from kiosk.station.spool import Spool
from tests.conftest import STATION, StationThread
from tests.support.wait import wait_until


def personal_fragments(record: dict) -> list[bytes]:
    return [
        record["nik"].encode(),
        record["fields"]["nama"].encode(),
        record["fields"]["alamat"].encode(),
        record["photo_jpeg"][100:160].encode(),
        record["signature_png"][100:160].encode(),
    ]


def spool_bytes(spool: Path) -> bytes:
    return b"".join(p.read_bytes() for p in spool.parent.glob(spool.name + "*"))


def test_personal_data_is_gone_from_the_spool_files_after_the_retention_time(
    station_settings, district, signed, caplog
):
    caplog.set_level(logging.DEBUG)
    station_settings["security"]["keep_personal_data_h"] = 1 / 3600  # one second
    records = [signed(i) for i in range(1, 4)]
    spool = Path(station_settings["station"]["spool"])
    with StationThread(station_settings, district):
        for record in records:
            district.publish_record(STATION, record)
        assert district.wait_for(lambda: all(
            district.final_state(r["record_id"]) == "completed" for r in records), 20)
        reader = Spool(spool)
        assert wait_until(lambda: all(reader.job(r["record_id"]).payload is None
                                      for r in records), 10)
        reader.close()
        assert wait_until(lambda: not any(
            f in spool_bytes(spool) for r in records for f in personal_fragments(r)), 10)
    data = spool_bytes(spool)
    for record in records:
        for fragment in personal_fragments(record):
            assert fragment not in data
        assert record["record_id"].encode() in data  # kept: replays are still refused
    published = json.dumps(district.events) + json.dumps(district.states)
    logs = "\n".join(r.getMessage() for r in caplog.records)
    for record in records:
        for text in (record["nik"], record["fields"]["nama"], record["nik"][:12]):
            assert text not in published
            assert text not in logs


def test_an_unfinished_job_keeps_its_record(station_settings, district, signed, printer_sim):
    station_settings["security"]["keep_personal_data_h"] = 1 / 3600
    printer_sim.load_cards(-printer_sim.feeder)  # nothing to print on: the job waits
    record = signed(1)
    rig = StationThread(station_settings, district)
    purged_before: list[float] = []  # each purge's cut-off, once it has run
    purge = rig.station.executors[ev.PurgePersonalData]

    def purge_and_note(action: ev.PurgePersonalData) -> None:
        purge(action)
        purged_before.append(action.before)

    rig.station.executors[ev.PurgePersonalData] = purge_and_note
    with rig:
        district.publish_record(STATION, record)
        assert district.wait_for(lambda: district.job_states(record["record_id"]), 10)
        spooled = time.time()
        # A purge ran that would take any job ended before the record arrived, and more.
        wait_until(lambda: any(before > spooled for before in purged_before), 20,
                   what="a purge past the record's arrival")
        reader = Spool(station_settings["station"]["spool"])
        try:
            assert reader.job(record["record_id"]).payload is not None
        finally:
            reader.close()
