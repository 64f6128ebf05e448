"""kill -9 at chosen steps of the IPP path inside the station, by strace's fault
injection (`-e inject=fsync:signal=KILL:when=N`): the station dies at its Nth fsync. Its
only fsync calls are the IPP driver's job-id store (SQLite syncs with fdatasync), two per
write (the file, its directory): a job-id kept after Create-Job and before Send-Document,
for the card and for the card sent ahead, and each job's end kept before its purge. So
each N is a chosen step, hit every time, never sampled; the first test checks that."""

from __future__ import annotations

import re
import shutil
import sys

import pytest

from kiosk.station.spool import Spool
from tests.conftest import STATION, ServiceProcess, StationProcess, to_toml

CARD_S = 0.6  # the second card goes ahead while the first prints


@pytest.fixture
def strace():
    path = shutil.which("strace")
    if path is None:
        pytest.fail("strace is missing: apt-get install strace (or run scripts/setup)",
                    pytrace=False)
    return path


@pytest.fixture
def ipp_settings(station_settings, cups_server):
    cups_server.printer._control(card_seconds=CARD_S)
    station_settings["printer"] = {"driver": "ipp", "uri": cups_server.uri, "poll_s": 0.1,
                                   "job_timeout_s": 20.0}
    return station_settings


def traced(strace: str, settings: dict, directory, *args: str) -> ServiceProcess:
    config = directory / "traced.toml"
    config.write_text(to_toml(settings))
    return ServiceProcess([strace, "-f", "-qq", "-y", "-o", str(directory / "strace.out"),
                           *args, sys.executable, "-m", "kiosk", "run", "--config",
                           str(config)], directory / "station.log")


def publish_all(district, records) -> list[str]:
    assert district.wait_for(lambda: district.availability.get(STATION) == "online", 20)
    for record in records:
        district.publish_record(STATION, record)
    return [r["record_id"] for r in records]


def test_each_fsync_of_the_station_is_a_step_of_the_job_id_store(
        ipp_settings, district, signed, cups_server, tmp_path, strace):
    station = traced(strace, ipp_settings, tmp_path, "-e", "trace=fsync").start()
    try:
        ids = publish_all(district, [signed(1), signed(2)])
        assert district.wait_for(
            lambda: all(district.final_state(rid) == "completed" for rid in ids), 30)
    finally:
        station.kill_if_running()
    calls = re.findall(r"fsync\(\d+<([^>]*)>", (tmp_path / "strace.out").read_text())
    store = str(tmp_path / "spool.db.ipp-jobs.json.tmp")
    assert calls and set(calls) == {store, str(tmp_path)}, calls  # the store's, nothing else
    assert len(calls) == 8  # two job-ids kept, two ends kept: file and directory each


@pytest.mark.parametrize("when", range(1, 9))
def test_kill_9_at_the_nth_fsync_loses_no_card_and_prints_none_twice(
        ipp_settings, district, signed, cups_server, tmp_path, strace, when):
    station = traced(strace, ipp_settings, tmp_path,
                     "-e", "trace=fsync", "-e", f"inject=fsync:signal=KILL:when={when}").start()
    records = [signed(1), signed(2)]
    try:
        ids = publish_all(district, records)
        station.process.wait(timeout=30)
    finally:
        station.kill_if_running()
    assert "killed by SIGKILL" in (tmp_path / "strace.out").read_text(), "the step never came"
    again = StationProcess(ipp_settings, tmp_path).start()
    try:
        assert district.wait_for(
            lambda: all(district.final_state(rid) == "completed" for rid in ids), 60), (
            {rid: district.job_states(rid) for rid in ids})
    finally:
        assert again.terminate() == 0
    assert sorted(d.name.split("-", 1)[1] for d in cups_server.printer.documents()) == ids
    reader = Spool(ipp_settings["station"]["spool"])
    try:
        ledger = reader.ledger()
    finally:
        reader.close()
    assert (ledger.picks, ledger.printed, ledger.spoiled) == (2, 2, 0) and ledger.balanced
    assert cups_server.printer.counters == {"taken": 2, "printed": 2}
    assert cups_server.jobs() == {}  # nothing left at the server, not even a job with no card
