"""kiosk update: a good release runs; a bad bundle or a bad release leaves the old one running.

Real parts: real bundles (signed, tar, gzip), a supervisor of real processes in the role of
systemd (sd_notify READY/WATCHDOG, restart always: kiosk.ops.update.supervise), fake
stations that speak sd_notify and MQTT to the real Mosquitto, the real spool (SQLite).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest

from kiosk.contract.signing import generate_key_pair, load_private_key
from kiosk.ops.update import bundle as bundles
from kiosk.ops.update.bundle import BundleError
from kiosk.ops.update.cli import load_settings
from kiosk.ops.update.layout import Layout
from kiosk.ops.update.platform import Platform
from kiosk.ops.update.supervisor import LocalSupervisor
from kiosk.ops.update.updater import Updater
from kiosk.station.spool import Spool
from tests.ops.update_fakes import HEALTH_S, Station, make_bundle, release_key, station

__all__ = ["release_key", "station"]  # fixtures

def test_a_good_release_runs_and_the_last_two_are_kept(station, release_key, tmp_path):
    key, _ = release_key
    done = station.update(str(make_bundle(tmp_path / "b2.bundle", "2.0", key)))
    assert done.returncode == 0, done.stdout + done.stderr
    station.wait_running("2.0")
    assert station.layout.current_version() == "2.0"
    done = station.update(str(make_bundle(tmp_path / "b3.bundle", "3.0", key)))
    assert done.returncode == 0, done.stdout + done.stderr
    station.wait_running("3.0")
    assert station.layout.installed() == ["2.0", "3.0"]
    assert [(e["version"], e["outcome"]) for e in station.events()] == [
        ("2.0", "updated"), ("3.0", "updated")]
    station.spool_intact()


@pytest.mark.parametrize("mode, why", [
    ("exit", "restarted 3 times"),
    ("no-broker", "has not reached the broker"),
    ("hang", "hung"),  # the report goes stale (2 s) before the watchdog (3 s) kills it
])
def test_a_release_that_does_not_come_up_is_rolled_back(station, release_key, tmp_path,
                                                        mode, why):
    key, _ = release_key
    started = time.monotonic()
    done = station.update(str(make_bundle(tmp_path / "bad.bundle", "2.0", key, mode=mode)))
    took = time.monotonic() - started
    assert done.returncode == 1, done.stdout + done.stderr
    station.wait_running("1.0")
    assert station.layout.current_version() == "1.0"
    (event,) = station.events()
    assert (event["version"], event["outcome"]) == ("2.0", "rolled-back"), event
    assert why in event["detail"] and "1.0 runs again" in event["detail"], event["detail"]
    assert took < HEALTH_S + 15, f"{took:.1f} s"
    station.spool_intact()


def _refused(station: Station, path: Path, reason: str) -> None:
    before = sorted(p.name for p in station.layout.releases.iterdir())
    pid = station.running()
    done = station.update(str(path))
    assert done.returncode == 1, done.stdout + done.stderr
    assert reason in done.stdout, done.stdout
    assert sorted(p.name for p in station.layout.releases.iterdir()) == before
    assert station.layout.current_version() == "1.0"
    assert station.running() == pid  # the same process: never restarted
    (event,) = station.events()
    assert event["outcome"] == "refused" and reason in event["detail"]


def test_a_bundle_signed_by_another_key_is_refused(station, tmp_path):
    other = load_private_key(generate_key_pair(tmp_path, name="other")[0])
    _refused(station, make_bundle(tmp_path / "x.bundle", "2.0", other), "unknown-key")


def test_an_altered_manifest_is_refused(station, release_key, tmp_path):
    path = make_bundle(tmp_path / "x.bundle", "2.0", release_key[0])
    data = path.read_bytes()
    at = data.index(b'"version":"2.0"')
    path.write_bytes(data[:at] + b'"version":"2.1"' + data[at + 15:])
    _refused(station, path, "bad-signature")


def test_a_bundle_for_another_platform_is_refused(station, release_key, tmp_path):
    arm = Platform("aarch64", f"{sys.version_info[0]}.{sys.version_info[1]}")
    _refused(station, make_bundle(tmp_path / "x.bundle", "2.0", release_key[0], platform=arm),
             "bundle is for aarch64")


def test_a_bundle_for_another_python_is_refused(station, release_key, tmp_path):
    other = Platform(os.uname().machine, "3.9")
    _refused(station, make_bundle(tmp_path / "x.bundle", "2.0", release_key[0], platform=other),
             "bundle is for Python 3.9")


def test_a_truncated_bundle_is_refused(station, release_key, tmp_path):
    path = make_bundle(tmp_path / "x.bundle", "2.0", release_key[0])
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    _refused(station, path, "truncated")


def test_a_payload_changed_after_signing_is_refused(station, release_key, tmp_path):
    path = make_bundle(tmp_path / "x.bundle", "2.0", release_key[0])
    with tarfile.open(path) as outer:
        payload = outer.getmember("payload.tar.gz")
    data = bytearray(path.read_bytes())
    data[payload.offset_data + payload.size // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    _refused(station, path, "digest-mismatch")


def test_a_spool_migration_the_old_release_cannot_open_is_refused(station, release_key,
                                                                   tmp_path):
    path = make_bundle(tmp_path / "x.bundle", "2.0", release_key[0], spool=(1, (0, 1)))
    _refused(station, path, "could not open after a rollback")


def test_a_full_disk_while_unpacking_leaves_everything_as_it_was(station, release_key,
                                                                  tmp_path):
    path = make_bundle(tmp_path / "x.bundle", "2.0", release_key[0])
    writes = []

    def full_disk(fd: int, data: bytes) -> int:
        writes.append(len(data))
        if len(writes) == 3:  # the third write finds the disk full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return os.write(fd, data)

    settings = load_settings(str(station.config))
    said = []
    updater = Updater(settings, LocalSupervisor(station.socket), write=full_disk,
                      say=said.append)
    pid = station.running()
    outcome = updater.update(path)
    assert outcome.outcome == "refused" and "No space left on device" in outcome.detail
    assert station.layout.installed() == ["1.0"]
    assert not list(station.layout.releases.glob(".*"))  # no half-unpacked directory
    assert station.running() == pid and station.layout.current_version() == "1.0"


def test_the_update_waits_for_the_card_in_the_printer(station, release_key, tmp_path):
    spool = Spool(station.spool)
    spool.add_job("r-1", 0, "************1234", b"{}")
    spool.update_job("r-1", state="processing", phase="picked")
    proc = subprocess.Popen(
        [sys.executable, "-m", "kiosk", "update", "--config", str(station.config),
         "--supervisor", f"local:{station.socket}",
         str(make_bundle(tmp_path / "b2.bundle", "2.0", release_key[0]))],
        stdout=subprocess.PIPE, text=True)
    try:
        assert "verified" in proc.stdout.readline()
        assert "a card is in the printer" in proc.stdout.readline()
        assert station.layout.current_version() == "1.0"
        assert not station.layout.release("2.0").exists()
        spool.update_job("r-1", state="completed", phase=None)
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        spool.close()
    station.wait_running("2.0")


def test_a_card_that_stays_in_the_printer_refuses_the_update(station, release_key, tmp_path):
    spool = Spool(station.spool)
    spool.add_job("r-1", 0, "************1234", b"{}")
    spool.update_job("r-1", state="processing", phase="picking")
    spool.close()
    done = station.update(str(make_bundle(tmp_path / "b2.bundle", "2.0", release_key[0])))
    assert done.returncode == 1 and "a card stayed in the printer" in done.stdout
    assert station.layout.installed() == ["1.0"]


def test_check_changes_nothing(station, release_key, tmp_path):
    done = station.update("--check", str(make_bundle(tmp_path / "b.bundle", "2.0",
                                                      release_key[0])))
    assert done.returncode == 0 and "good for this station" in done.stdout, done.stderr
    assert station.layout.installed() == ["1.0"] and station.events() == []


def test_bad_update_configuration_names_its_keys(tmp_path):
    config = tmp_path / "station.toml"
    config.write_text('[station]\ndistrict = "3210"\nid = "st-1"\n'
                      '[update]\nhealth_s = 0\ntrusted_keys = []\nspeed = 3\n')
    done = subprocess.run([sys.executable, "-m", "kiosk", "update", "--config", str(config),
                           "x.bundle"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    for key in ("update.health_s", "update.trusted_keys", "update.speed"):
        assert key in done.stderr, done.stderr


def test_a_bundle_that_is_not_one(tmp_path, release_key):
    junk = tmp_path / "junk.bundle"
    junk.write_bytes(b"not a tar at all" * 100)
    keys = bundles.trusted_keys([release_key[1]])
    with pytest.raises(BundleError) as refused:
        bundles.verify(junk, keys)
    assert refused.value.reason == "not-a-bundle"


def test_verify_alone_finds_a_changed_payload(tmp_path, release_key):
    """Before anything is unpacked (unpack hashes again: two checks, each tested)."""
    path = make_bundle(tmp_path / "x.bundle", "2.0", release_key[0])
    with tarfile.open(path) as outer:
        payload = outer.getmember("payload.tar.gz")
    data = bytearray(path.read_bytes())
    data[payload.offset_data + 10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError) as refused:
        bundles.verify(path, bundles.trusted_keys([release_key[1]]))
    assert refused.value.reason == "digest-mismatch"


def test_unpack_alone_finds_a_payload_changed_since_verify(tmp_path, release_key):
    path = make_bundle(tmp_path / "x.bundle", "2.0", release_key[0])
    manifest = bundles.verify(path, bundles.trusted_keys([release_key[1]]))
    changed = bundles.Manifest(**{**manifest.__dict__, "payload_sha256": "0" * 64})
    with pytest.raises(BundleError) as refused:
        bundles.unpack(path, changed, tmp_path / "dest")
    assert refused.value.reason == "digest-mismatch"
    assert not (tmp_path / "dest").exists()


def test_a_file_other_than_the_one_announced_is_refused(station, release_key, tmp_path):
    path = make_bundle(tmp_path / "x.bundle", "2.0", release_key[0])
    done = station.update("--sha256", "0" * 64, "--version", "2.0", str(path))
    assert done.returncode == 1
    (event,) = station.events()
    assert event["outcome"] == "refused" and "digest-mismatch" in event["detail"]
    assert event["version"] == "2.0"  # the district waits for the version it announced
    assert station.layout.installed() == ["1.0"]


def test_a_bundle_of_another_version_than_announced_is_refused(station, release_key,
                                                               tmp_path):
    path = make_bundle(tmp_path / "x.bundle", "2.1", release_key[0])
    done = station.update("--version", "2.0", str(path))
    assert done.returncode == 1
    (event,) = station.events()
    assert (event["version"], event["outcome"]) == ("2.0", "refused")
    assert "the bundle is 2.1, the district announced 2.0" in event["detail"]


def test_an_update_from_the_district_server_url(station, release_key, tmp_path):
    """kiosk update http://...: downloaded beside the releases, then as a file."""
    import functools
    import http.server

    (tmp_path / "web").mkdir()
    path = make_bundle(tmp_path / "web" / "b.bundle", "2.0", release_key[0])
    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=str(tmp_path / "web"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{path.name}"
        done = station.update(url)
        assert done.returncode == 0, done.stdout + done.stderr
        station.wait_running("2.0")
        assert not list(station.layout.releases.glob(".*"))  # the download is gone
        missing = station.update("--check", url + ".missing")
        assert missing.returncode == 1 and "404" in missing.stderr
    finally:
        server.shutdown()
        server.server_close()


def test_the_first_install_unpacks_and_points_current_without_a_unit(tmp_path, release_key):
    from kiosk.ops.update.bundle import trusted_keys
    from kiosk.ops.update.updater import Settings

    settings = Settings(root=tmp_path / "opt", spool=tmp_path / "state" / "spool.db",
                        keys=trusted_keys([release_key[1]]))
    (tmp_path / "state").mkdir()
    nobody = LocalSupervisor(str(tmp_path / "no-such-socket"))  # must not be asked
    outcome = Updater(settings, nobody, say=lambda line: None).update(
        make_bundle(tmp_path / "b.bundle", "1.0", release_key[0]))
    assert outcome.outcome == "installed" and outcome.ok
    assert Layout(tmp_path / "opt").current_version() == "1.0"
    script = tmp_path / "opt" / "current" / "venv" / "bin" / "kiosk"
    assert script.exists() and os.access(script, os.X_OK)


def test_a_card_that_starts_while_unpacking_is_waited_for_too(station, release_key, tmp_path):
    settings = load_settings(str(station.config))
    settings.card_wait_s = 1.0

    def card_starts(step: str) -> None:
        if step == "unpacked":  # the station picks a blank while the bundle was unpacked
            spool = Spool(station.spool)
            spool.add_job("r-2", 0, "************1234", b"{}")
            spool.update_job("r-2", state="processing", phase="picking")
            spool.close()

    pid = station.running()
    outcome = Updater(settings, LocalSupervisor(station.socket), step=card_starts,
                      say=lambda line: None).update(
        make_bundle(tmp_path / "b.bundle", "2.0", release_key[0]))
    assert outcome.outcome == "refused" and "card stayed in the printer" in outcome.detail
    assert station.layout.current_version() == "1.0" and station.running() == pid
    assert station.layout.installed() == ["1.0"]


def test_a_printer_unplugged_before_the_update_is_not_held_against_the_new_release(
        tmp_path, broker, release_key):
    key, public = release_key
    node = Station(tmp_path, broker.url, public)
    node.install(make_bundle(tmp_path / "old.bundle", "1.0", key, mode="no-printer"))
    node.start_unit()
    try:
        node.wait_running("1.0")
        done = node.update(str(make_bundle(tmp_path / "b2.bundle", "2.0", key,
                                           mode="no-printer")))
        assert done.returncode == 0, done.stdout + done.stderr
        node.wait_running("2.0")
    finally:
        node.stop_unit()


def test_a_release_that_loses_the_printer_is_rolled_back(station, release_key, tmp_path):
    done = station.update(str(make_bundle(tmp_path / "b2.bundle", "2.0", release_key[0],
                                          mode="no-printer")))
    assert done.returncode == 1
    (event,) = station.events()
    assert event["outcome"] == "rolled-back"
    assert "neither reached the printer nor reported its fault" in event["detail"]
    station.wait_running("1.0")


@pytest.mark.parametrize("on_disk, new_opens, new_writes, old_opens, refused", [
    (0, (0, 0), 0, (0, 0), None),                       # no change
    (0, (0, 1), 1, (0, 1), None),                       # additive: the old one opens 1 too
    (0, (0, 1), 1, (0, 0), "could not open after a rollback"),
    (2, (0, 1), 1, (0, 2), "the new release opens 0..1"),  # a spool newer than it knows
    (0, (0, 1), 1, None, "range is unknown"),            # installed by hand: no migration
    (0, (0, 0), 0, None, None),
])
def test_the_spool_rule(on_disk, new_opens, new_writes, old_opens, refused):
    from kiosk.ops.update.spoolcheck import SpoolRefused, check_migration

    if refused is None:
        check_migration(on_disk, new_opens, new_writes, old_opens)
    else:
        with pytest.raises(SpoolRefused, match=refused):
            check_migration(on_disk, new_opens, new_writes, old_opens)


def test_the_spool_schema_is_read_without_writing(tmp_path):
    from kiosk.ops.update.spoolcheck import schema_version

    path = tmp_path / "spool.db"
    Spool(path).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 3")
    db.close()
    before = path.stat().st_mtime_ns
    assert schema_version(path) == 3
    assert schema_version(tmp_path / "none.db") == 0 and not (tmp_path / "none.db").exists()
    assert path.stat().st_mtime_ns == before


def test_the_systemd_seam_asks_systemctl_what_the_docs_say(tmp_path, monkeypatch):
    """A systemctl on PATH that records its arguments (no systemd runs here)."""
    from kiosk.ops.update.supervisor import SystemdSupervisor, UnitStatus

    calls = tmp_path / "calls"
    fake = tmp_path / "bin" / "systemctl"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n'
                    'echo ActiveState=active; echo MainPID=4242; echo NRestarts=3\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    unit = SystemdSupervisor()
    unit.restart()
    assert unit.status() == UnitStatus(True, 4242, 3)
    assert calls.read_text().splitlines() == [
        "restart --no-block kiosk.service",
        "show kiosk.service -p ActiveState,MainPID,NRestarts"]


@pytest.mark.parametrize("members, why", [
    ([("../evil", "file")], "points outside the release"),
    ([("/etc/evil", "file")], "points outside the release"),
    ([("venv/lib", "symlink:OUTSIDE"), ("venv/lib/evil", "file")], "through a symlink"),
])
def test_a_signed_payload_that_writes_outside_the_release_is_refused(tmp_path, release_key,
                                                                     members, why):
    """Defence in depth: even a bundle signed by a trusted key writes only its release."""
    import io

    (tmp_path / "outside").mkdir()
    payload = tmp_path / "payload.tar.gz"
    with tarfile.open(payload, "w:gz") as archive:
        for name, kind in members:
            info = tarfile.TarInfo(name)
            if kind.startswith("symlink:"):
                info.type = tarfile.SYMTYPE
                info.linkname = str(tmp_path / "outside")  # OUTSIDE: the test's own
                archive.addfile(info)
            else:
                info.size = 4
                archive.addfile(info, io.BytesIO(b"evil"))
    digest = hashlib.sha256(payload.read_bytes()).hexdigest()
    manifest = bundles.Manifest.parse(json.dumps({
        "schema": bundles.SCHEMA, "version": "6.6", "interpreter": "/usr/bin/python3",
        "platform": {"name": "x", "machine": "x86_64", "python": "3.11"},
        "payload": {"sha256": digest, "size": payload.stat().st_size},
        "installed": {"bytes": 4, "files": 1}, "spool": {"writes": 0, "opens": [0, 0]},
        "created": 0}).encode())
    outer = tmp_path / "evil.bundle"
    (tmp_path / "m").write_bytes(manifest.raw)
    with tarfile.open(outer, "w") as archive:  # unpack trusts what verify checked: no sig here
        archive.add(tmp_path / "m", arcname="manifest.json")
        archive.add(tmp_path / "m", arcname="manifest.sig")
        archive.add(payload, arcname="payload.tar.gz")
    with pytest.raises(BundleError, match=why):
        bundles.unpack(outer, manifest, tmp_path / "dest")
    assert not (tmp_path / "dest").exists() and not (tmp_path / "evil").exists()
    assert not (tmp_path / "outside" / "evil").exists()
