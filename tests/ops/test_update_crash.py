"""kill -9 (or a power cut) of the updater at every step of the switch.

Afterwards, and after the recovery the next start runs (``kiosk update --recover``),
exactly one release runs, the old or the new one as the step decides, ``current`` names
it, no journal or half-unpacked directory is left, and the spool is intact.
"""

from __future__ import annotations

import pytest

from kiosk.ops.update.updater import CRASH_ENV, STEPS
from tests.ops.update_fakes import make_bundle, release_key, station

__all__ = ["release_key", "station"]  # fixtures

# The release that runs after recovery, for a crash at each step of a good update.
GOOD = {"verified": "1.0", "card": "1.0", "unpacked": "1.0", "journal": "1.0",
        "switched": "1.0", "restarted": "1.0", "healthy": "2.0", "committed": "2.0"}
ROLLBACK = ("rollback-journal", "rolled-back-link", "rolled-back-restart")
# One step of each kind runs in the fast suite (undone before the restart, undone after it,
# finished, undone during a rollback); every step runs in the slow one (about 90 s).
FAST = ("switched", "restarted", "healthy", "rolled-back-link")


def test_every_step_is_covered():
    assert set(GOOD) | set(ROLLBACK) == set(STEPS)


STEP_CASES = [step if step in FAST else pytest.param(step, marks=pytest.mark.slow)
              for step in (*GOOD, *ROLLBACK)]


@pytest.mark.parametrize("step", STEP_CASES)
def test_killed_at_each_step_one_release_runs_after_recovery(station, release_key, tmp_path,
                                                             step):
    mode = "exit" if step in ROLLBACK else "good"
    path = make_bundle(tmp_path / "b2.bundle", "2.0", release_key[0], mode=mode)
    done = station.update(str(path), env={CRASH_ENV: step})
    assert done.returncode == -9, done.stdout + done.stderr  # it did die at that step
    assert len(station.running()) <= 1  # the supervisor never runs two

    recovered = station.update("--recover")
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    expected = GOOD.get(step, "1.0")
    station.wait_running(expected)
    assert station.layout.current_version() == expected
    assert not station.layout.journal.exists()
    assert not list(station.layout.releases.glob(".*"))
    assert set(station.layout.installed()) <= {"1.0", "2.0"}
    station.spool_intact()

    # and the station can be updated again afterwards
    again = station.update(str(make_bundle(tmp_path / "b3.bundle", "3.0", release_key[0])))
    assert again.returncode == 0, again.stdout + again.stderr
    station.wait_running("3.0")


def test_the_next_update_recovers_first(station, release_key, tmp_path):
    path = make_bundle(tmp_path / "b2.bundle", "2.0", release_key[0])
    assert station.update(str(path), env={CRASH_ENV: "switched"}).returncode == -9
    done = station.update(str(make_bundle(tmp_path / "b3.bundle", "3.0", release_key[0])))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1.0 restored" in done.stdout
    station.wait_running("3.0")
    outcomes = [(e["version"], e["outcome"]) for e in station.events()]
    assert outcomes == [("2.0", "rolled-back"), ("3.0", "updated")]
