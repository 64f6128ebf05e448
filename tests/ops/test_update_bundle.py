"""A real bundle made by scripts/release for this machine, installed by kiosk update.

The new release is the whole station (``kiosk run`` from the bundle's own environment,
unpacked under a temporary root) with the printer and tray simulators and the real
Mosquitto: it is judged healthy from the health file it writes itself. Then an update to
a release that exits at once brings it back. The times are printed (-s to see them).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from kiosk.contract.signing import generate_key_pair, load_private_key
from kiosk.ops.update.health import read_report
from kiosk.ops.update.layout import Layout
from tests.ops.update_fakes import Station, make_bundle

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def real_bundle(tmp_path_factory):
    """scripts/release --platform host: the kiosk of this checkout and its dependencies."""
    work = tmp_path_factory.mktemp("release")
    private, public = generate_key_pair(work, name="release")
    started = time.monotonic()
    done = subprocess.run([str(REPO / "scripts" / "release"), "--platform", "host", "--key",
                           str(private), "--out", str(work), "--version", "9.0-real"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (path,) = work.glob("kiosk-9.0-real-host.bundle")
    print(f"\nscripts/release --platform host: {time.monotonic() - started:.0f} s,"
          f" {path.stat().st_size / 1e6:.1f} MB")
    return path, load_private_key(private), public


def test_the_real_station_updates_and_a_bad_release_brings_it_back(
        tmp_path, broker, printer_sim, tray_sim, district_key, real_bundle):
    path, key, public = real_bundle
    extra = (f'[printer]\nport = "{printer_sim.path}"\n[tray]\nport = "{tray_sim.path}"\n'
             f'[security]\ntrusted_keys = ["{district_key[1]}"]\n[panel]\nlcd = "none"\n')
    node = Station(tmp_path, broker.url, public, extra)
    node.install(make_bundle(tmp_path / "old.bundle", "1.0", key))
    node.start_unit()
    try:
        node.wait_running("1.0")
        started = time.monotonic()
        done = node.update(str(path), timeout=300)
        updated_in = time.monotonic() - started
        assert done.returncode == 0, done.stdout + done.stderr
        report = read_report(node.spool.parent / "health.json")
        assert report["release"] == "9.0-real" and report["printer"] == "reached", report
        assert report["broker"] is True
        assert Layout(node.root).current_version() == "9.0-real"

        started = time.monotonic()
        done = node.update(str(make_bundle(tmp_path / "bad.bundle", "10.0", key, mode="exit")),
                           timeout=300)
        rolled_back_in = time.monotonic() - started
        assert done.returncode == 1 and "rolled-back" in done.stdout, done.stdout
        report = read_report(node.spool.parent / "health.json")
        assert report["release"] == "9.0-real"
        assert len(node.running()) == 1
        print(f"\nupdate to the real release: {updated_in:.1f} s; update to a release that"
              f" exits and back: {rolled_back_in:.1f} s (settle_s 2.5)")
    finally:
        node.stop_unit()
    assert node.running() == []
