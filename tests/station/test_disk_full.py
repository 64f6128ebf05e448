"""The spool on a tiny filesystem: when it fills, records wait at the broker; then they print."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from kiosk.station.spool import Spool
from tests.conftest import STATION, StationThread


@pytest.fixture
def tiny_fs(tmp_path):
    mount = tmp_path / "tiny"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail("this test mounts an 8 MB tmpfs and needs root (CI runs as root): "
                    + result.stderr.strip(), pytrace=False)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(path: Path, leave_mb: float) -> None:
    stat = os.statvfs(path.parent)
    free = stat.f_bavail * stat.f_frsize
    with open(path, "wb") as ballast:
        ballast.write(b"\0" * max(0, int(free - leave_mb * 1e6)))


def test_full_disk_stops_acknowledging_and_space_returning_resumes(
    station_settings, district, signed, printer_sim, tiny_fs
):
    station_settings["station"]["spool"] = str(tiny_fs / "spool.db")
    station_settings["station"]["min_free_mb"] = 2.0
    records = [signed(i) for i in range(1, 4)]
    ballast = tiny_fs / "ballast"
    with StationThread(station_settings, district):
        fill(ballast, leave_mb=1.0)
        assert district.wait_for(lambda: "spool-area-full-error" in district.states[STATION][
            "printer_state_reasons"], 5)
        assert district.states[STATION]["accepting_jobs"] is False
        for record in records:
            district.publish_record(STATION, record)
        # A command sent after the records is answered: they reached the station first
        # (the broker delivers one client's messages in order) and were not spooled.
        status = district.command(STATION, "status")
        assert status["ok"] and status["jobs"] == []
        assert not district.job_events(records[0]["record_id"])
        assert Spool(station_settings["station"]["spool"]).job(
            records[0]["record_id"]) is None  # not spooled, so not acknowledged
        ballast.unlink()
        assert district.wait_for(lambda: all(
            district.final_state(r["record_id"]) == "completed" for r in records), 20)
        assert district.states[STATION]["accepting_jobs"] is True
    assert printer_sim.printed == 3
