"""``kiosk install`` against a temporary root: dry run, real run, idempotence; the template.

The temporary root has its own /etc/passwd and /etc/group in which root and kiosk
are the test's own user, so the real run's chown calls work without privileges.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import tomllib
from importlib.resources import files
from pathlib import Path

import pytest

from kiosk.ops import install
from kiosk.station import config as station_config

ACTIONS = {"run", "mkdir", "write", "chown", "chmod", "FAILED"}
TEMPLATE = (files("kiosk") / "data" / "station.toml").read_text()


def make_root(path: Path, *, user: bool, groups: dict[str, str]) -> Path:
    uid, gid = os.getuid(), os.getgid()
    (path / "etc").mkdir(parents=True)
    users = [f"root:x:{uid}:{gid}:root:/root:/bin/sh"]
    if user:
        users.append(f"kiosk:x:{uid}:{gid}::/var/lib/kiosk:/usr/sbin/nologin")
    (path / "etc" / "passwd").write_text("\n".join(users) + "\n")
    lines = [f"root:x:{gid}:", *(f"{name}:x:{gid}:{members}" for name, members in groups.items())]
    (path / "etc" / "group").write_text("\n".join(lines) + "\n")
    program = path / "opt" / "kiosk" / "venv" / "bin" / "kiosk"
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    return path


@pytest.fixture
def pi(tmp_path) -> Path:
    """A Raspberry Pi OS tree where the kiosk user already exists in its groups."""
    return make_root(tmp_path / "pi", user=True, groups={
        "kiosk": "", "dialout": "kiosk", "gpio": "kiosk", "i2c": "kiosk"})


@pytest.fixture
def fresh(tmp_path) -> Path:
    """A tree with no kiosk user, and no gpio or i2c group (not a Pi)."""
    return make_root(tmp_path / "fresh", user=False, groups={"dialout": ""})


def install_into(root: Path, capsys, *extra: str) -> tuple[int, list[str]]:
    parser = argparse.ArgumentParser()
    install.add_arguments(parser)
    args = parser.parse_args(["--root", str(root), "--venv", "/opt/kiosk/venv", *extra])
    status = install.run(args)
    return status, capsys.readouterr().out.splitlines()


def verbs(lines: list[str]) -> list[str]:
    return [line.split()[0] for line in lines]


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    tree = {}
    for path in sorted(root.rglob("*")):
        content = os.readlink(path) if path.is_symlink() else (
            path.read_text() if path.is_file() else "")
        tree[str(path.relative_to(root))] = (path.lstat().st_mode, content)
    return tree


def test_dry_run_prints_every_action_and_changes_nothing(fresh, capsys):
    before = snapshot(fresh)
    status, lines = install_into(fresh, capsys, "--dry-run")
    assert status == 0
    assert snapshot(fresh) == before
    assert lines[0] == f"dry run: nothing is changed under {fresh}"
    text = "\n".join(lines)
    for expected in (
        f"run     useradd --root {fresh} --system --user-group --home-dir /var/lib/kiosk "
        "--no-create-home --shell /usr/sbin/nologin --groups dialout kiosk",
        "skip    group gpio: not on this system", "skip    group i2c: not on this system",
        f"mkdir   {fresh}/etc/kiosk", f"chown   {fresh}/etc/kiosk root:kiosk",
        f"chmod   {fresh}/etc/kiosk 0750", f"mkdir   {fresh}/var/lib/kiosk",
        f"chown   {fresh}/var/lib/kiosk kiosk:kiosk",
        f"write   {fresh}/etc/kiosk/station.toml", f"chmod   {fresh}/etc/kiosk/station.toml 0640",
        f"write   {fresh}/etc/systemd/system/kiosk.service",
        f"write   {fresh}/etc/udev/rules.d/99-kiosk.rules",
        "skip    systemctl daemon-reload (--root is not the running system)",
        "skip    udevadm control --reload-rules (--root is not the running system)",
        f"run     systemctl --root={fresh} enable kiosk.service",
    ):
        assert expected in text


def test_install_puts_everything_in_place_then_finds_nothing_to_do(pi, capsys):
    status, lines = install_into(pi, capsys)
    assert status == 0, lines
    assert "FAILED" not in verbs(lines)
    assert (pi / "etc/kiosk/station.toml").read_text() == TEMPLATE
    unit = (pi / "etc/systemd/system/kiosk.service").read_text()
    assert unit == install.render_unit("/opt/kiosk/venv")
    rules = Path(__file__).parents[2] / "udev" / "99-kiosk.rules"
    assert (pi / "etc/udev/rules.d/99-kiosk.rules").read_text() == rules.read_text()
    modes = {path: (pi / path).stat().st_mode & 0o7777 for path in (
        "etc/kiosk", "etc/kiosk/station.toml", "var/lib/kiosk",
        "etc/systemd/system/kiosk.service", "etc/udev/rules.d/99-kiosk.rules")}
    assert modes == {"etc/kiosk": 0o750, "etc/kiosk/station.toml": 0o640,
                     "var/lib/kiosk": 0o750, "etc/systemd/system/kiosk.service": 0o644,
                     "etc/udev/rules.d/99-kiosk.rules": 0o644}
    wanted = pi / "etc/systemd/system/multi-user.target.wants/kiosk.service"
    assert os.readlink(wanted) == "/etc/systemd/system/kiosk.service"

    before = snapshot(pi)
    status, again = install_into(pi, capsys)
    assert status == 0
    assert not ACTIONS & set(verbs(again)), again
    assert "ok      user kiosk (groups: kiosk, dialout, gpio, i2c)" in again
    assert snapshot(pi) == before


def test_reinstall_keeps_the_config_and_repairs_the_rest(pi, capsys):
    install_into(pi, capsys)
    config = pi / "etc/kiosk/station.toml"
    config.write_text('[station]\ndistrict = "3210"\nid = "st-1"\n')
    config.chmod(0o666)
    unit = pi / "etc/systemd/system/kiosk.service"
    unit.write_text(unit.read_text().replace("WatchdogSec=30s", "WatchdogSec=0"))
    status, lines = install_into(pi, capsys)
    assert status == 0
    assert config.read_text() == '[station]\ndistrict = "3210"\nid = "st-1"\n'
    assert f"keep    {config} (exists, not overwritten)" in lines
    assert f"chmod   {config} 0640" in lines
    assert f"write   {unit}" in lines
    assert unit.read_text() == install.render_unit("/opt/kiosk/venv")


def test_missing_group_membership_is_added(pi, capsys):
    group = pi / "etc/group"
    group.write_text(group.read_text().replace(f"gpio:x:{os.getgid()}:kiosk",
                                               f"gpio:x:{os.getgid()}:pi"))
    status, lines = install_into(pi, capsys, "--dry-run")
    assert status == 0
    assert f"run     usermod --root {pi} --append --groups gpio kiosk" in lines


def test_the_unit_points_into_the_chosen_venv(pi, capsys):
    status, lines = install_into(pi, capsys, "--dry-run", "--venv", "/srv/kiosk env")
    assert status == 2
    status, lines = install_into(pi, capsys, "--dry-run", "--venv", "/srv/venv")
    assert status == 0
    assert f"warn    {pi}/srv/venv/bin/kiosk missing: the unit's ExecStart will fail" in lines
    assert "ExecStart=/srv/venv/bin/kiosk run --config /etc/kiosk/station.toml" in (
        install.render_unit("/srv/venv").splitlines())


def test_a_failed_action_stops_the_install(pi, capsys):
    (pi / "var/lib").mkdir(parents=True)
    (pi / "var/lib/kiosk").write_text("not a directory")
    status, lines = install_into(pi, capsys)
    assert status == 1
    assert verbs(lines)[-1] == "FAILED"
    assert not (pi / "etc/systemd/system/kiosk.service").exists()


# -- the configuration template ----------------------------------------------------------


def test_template_loads_once_the_identity_is_filled_in(tmp_path):
    path = tmp_path / "station.toml"
    path.write_text(TEMPLATE)
    with pytest.raises(station_config.ConfigError) as missing:
        station_config.load(path)
    assert missing.value.key == "station.district"
    path.write_text(TEMPLATE.replace('district = ""', 'district = "3210"')
                    .replace('id = ""', 'id = "majalengka-01"'))
    loaded = station_config.load(path)
    assert loaded.client_id == "3210-majalengka-01"
    defaults = station_config.from_dict({"station": {"district": "3210", "id": "majalengka-01"}})
    assert dataclasses.replace(loaded, station=defaults.station) == defaults


def test_template_lists_every_key():
    parsed = tomllib.loads(TEMPLATE)
    defaults = station_config.from_dict({"station": {"district": "3210", "id": "i"}})
    for section in dataclasses.fields(defaults):
        for key in (f.name for f in dataclasses.fields(getattr(defaults, section.name))):
            commented = re.search(rf"^# {key} = ", TEMPLATE, re.MULTILINE)
            assert key in parsed[section.name] or commented, f"{section.name}.{key} is missing"
