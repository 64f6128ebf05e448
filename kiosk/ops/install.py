"""``kiosk install``: put a station in place on Raspberry Pi OS (or into an image tree).

Layout on the target:
  /etc/kiosk/station.toml               config (template on first install, never overwritten)
  /var/lib/kiosk/                       state: the spool (owned by user kiosk)
  /etc/systemd/system/kiosk.service     the unit, ExecStart=<venv>/bin/kiosk run --config ...
  /etc/udev/rules.d/99-kiosk.rules      stable device names
The package itself lives in a virtual environment (``--venv``, default: the one
running this command; the guide uses /opt/kiosk/venv).

Every step first looks at what is there and prints one line: ``ok``/``keep`` when
nothing needs doing, else the action (``mkdir``, ``write``, ``chown``, ``run`` ...).
So a second run prints no action, and ``--dry-run`` prints the actions without
doing them (no root needed). ``--root DIR`` works on a tree (an image, a test
directory): paths, users and groups are those under DIR, commands get ``--root``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

USER = "kiosk"
DEVICE_GROUPS = ("dialout", "gpio", "i2c")  # serial, GPIO, I2C on Raspberry Pi OS
VENV_IN_UNIT = "/opt/kiosk/venv"
CONFIG_DIR, CONFIG = "/etc/kiosk", "/etc/kiosk/station.toml"
STATE_DIR = "/var/lib/kiosk"
UNIT = "/etc/systemd/system/kiosk.service"
RULES = "/etc/udev/rules.d/99-kiosk.rules"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="print the actions, change nothing")
    parser.add_argument("--root", default="/", help="install into this tree (default: /)")
    parser.add_argument("--venv", default=sys.prefix,
                        help="virtual environment holding kiosk (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    venv = os.path.abspath(args.venv)
    if any(char.isspace() for char in venv):
        print(f"kiosk install: --venv {venv!r}: a path with spaces cannot go in ExecStart",
              file=sys.stderr)
        return 2
    root = Path(args.root).resolve()
    if not args.dry_run and root == Path("/") and os.geteuid() != 0:
        print("kiosk install: needs root (sudo), or --dry-run to see the actions", file=sys.stderr)
        return 2
    return Installer(root, venv, dry_run=args.dry_run).install()


def render_unit(venv: str) -> str:
    """The packaged unit with its ExecStart pointing into *venv*."""
    return _data("kiosk.service").replace(VENV_IN_UNIT, venv)


def _data(name: str) -> str:
    return (files("kiosk") / "data" / name).read_text()


class Installer:
    """The install steps against one target tree; see the module docstring."""

    def __init__(self, root: Path, venv: str, *, dry_run: bool = False) -> None:
        self.root = root
        self.venv = venv
        self.dry_run = dry_run
        self.live = root == Path("/")  # the running system: reload systemd and udev

    def install(self) -> int:
        if self.dry_run:
            print(f"dry run: nothing is changed under {self.root}")
        try:
            self.ensure_user()
            self.ensure_dir(CONFIG_DIR, "root", USER, 0o750)
            self.ensure_dir(STATE_DIR, USER, USER, 0o750)
            self.ensure_file(CONFIG, _data("station.toml"), "root", USER, 0o640, replace=False)
            unit_changed = self.ensure_file(UNIT, render_unit(self.venv), "root", "root", 0o644)
            rules_changed = self.ensure_file(RULES, _data("99-kiosk.rules"), "root", "root",
                                             0o644)
            self.check_venv()
            self.reload(unit_changed, rules_changed)
            self.enable()
        except _Failed:
            return 1
        self.say("next", f"fill in {CONFIG}, then: systemctl start kiosk; "
                 f"sudo -u kiosk {self.venv}/bin/kiosk doctor --config {CONFIG}")
        return 0

    # -- steps ----------------------------------------------------------------------------

    def ensure_user(self) -> None:
        users, groups = self.table("passwd"), self.table("group")
        present = [group for group in DEVICE_GROUPS if group in groups]
        for group in sorted(set(DEVICE_GROUPS) - set(present)):
            self.say("skip", f"group {group}: not on this system (not Raspberry Pi OS?)")
        if USER not in users:
            self.command(["useradd", "--system", "--user-group", "--home-dir", STATE_DIR,
                          "--no-create-home", "--shell", "/usr/sbin/nologin",
                          *(["--groups", ",".join(present)] if present else []), USER])
            return
        missing = [group for group in present if USER not in groups[group][3].split(",")]
        if missing:
            self.command(["usermod", "--append", "--groups", ",".join(missing), USER])
        else:
            self.say("ok", f"user {USER} (groups: {', '.join([USER, *present])})")

    def ensure_dir(self, target: str, owner: str, group: str, mode: int) -> None:
        path = self.path(target)
        if path.is_dir():
            if not self.ensure_owner_mode(path, owner, group, mode):
                self.say("ok", f"{path}")
            return
        self.act("mkdir", path, lambda: path.mkdir(parents=True, exist_ok=True))
        self.ensure_owner_mode(path, owner, group, mode)

    def ensure_file(self, target: str, text: str, owner: str, group: str, mode: int, *,
                    replace: bool = True) -> bool:
        """Write *text* unless the file holds it (or exists, when not *replace*)."""
        path = self.path(target)
        current = path.read_text() if path.is_file() else None
        changed = current is None or (replace and current != text)
        if changed:
            self.act("write", path, lambda: _write(path, text))
        else:
            self.say("ok" if current == text else "keep", f"{path}"
                     + ("" if current == text else " (exists, not overwritten)"))
        self.ensure_owner_mode(path, owner, group, mode)
        return changed

    def ensure_owner_mode(self, path: Path, owner: str, group: str, mode: int) -> bool:
        """Fix owner and mode where they differ; True if there was something to fix."""
        status = path.stat() if path.exists() else None
        users, groups = self.table("passwd"), self.table("group")
        ids = (int(users[owner][2]) if owner in users else None,
               int(groups[group][2]) if group in groups else None)
        wrong_owner = status is None or (status.st_uid, status.st_gid) != ids
        wrong_mode = status is None or status.st_mode & 0o7777 != mode
        if wrong_owner:
            self.act("chown", f"{path} {owner}:{group}",
                     lambda: os.chown(path, *_known(ids, owner, group)))
        if wrong_mode:
            self.act("chmod", f"{path} {mode:04o}", lambda: path.chmod(mode))
        return wrong_owner or wrong_mode

    def check_venv(self) -> None:
        program = self.path(self.venv) / "bin" / "kiosk"
        if os.access(program, os.X_OK):
            self.say("ok", f"{program}")
        else:
            self.say("warn", f"{program} missing: the unit's ExecStart will fail")

    def reload(self, unit_changed: bool, rules_changed: bool) -> None:
        commands = []
        if unit_changed:
            commands.append(["systemctl", "daemon-reload"])
        if rules_changed:
            commands += [["udevadm", "control", "--reload-rules"],
                         ["udevadm", "trigger", "--subsystem-match=tty",
                          "--subsystem-match=usbmisc"]]
        for command in commands:
            if self.live:
                self.command(command)
            else:
                self.say("skip", f"{' '.join(command)} (--root is not the running system)")

    def enable(self) -> None:
        query = self.systemctl("is-enabled", "kiosk.service")
        state = ""
        if shutil.which("systemctl"):
            state = subprocess.run(query, capture_output=True, text=True).stdout.strip()
        if state == "enabled":
            self.say("ok", "kiosk.service enabled")
        else:
            self.command(self.systemctl("enable", "kiosk.service"))

    # -- plumbing --------------------------------------------------------------------------

    def path(self, target: str) -> Path:
        return self.root / target.lstrip("/")

    def table(self, name: str) -> dict[str, list[str]]:
        """The target's /etc/passwd or /etc/group (not this machine's): name → fields."""
        try:
            text = self.path(f"/etc/{name}").read_text()
        except FileNotFoundError:
            return {}
        rows = (line.split(":") for line in text.splitlines() if line and line[0] != "#")
        return {row[0]: row for row in rows if len(row) > 3}

    def systemctl(self, *words: str) -> list[str]:
        return ["systemctl", *([] if self.live else [f"--root={self.root}"]), *words]

    def command(self, argv: list[str]) -> None:
        if argv[0] in ("useradd", "usermod") and not self.live:
            argv = [argv[0], "--root", str(self.root), *argv[1:]]
        self.act("run", " ".join(argv), lambda: self._call(argv))

    def _call(self, argv: list[str]) -> None:
        if shutil.which(argv[0]) is None:
            raise OSError(f"{argv[0]} not found")
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode:
            raise OSError(done.stderr.strip() or f"exit status {done.returncode}")

    def act(self, verb: str, what: object, action: Callable[[], object]) -> None:
        """Print the action, then do it (unless dry); a failure ends the install."""
        self.say(verb, str(what))
        if self.dry_run:
            return
        try:
            action()
        except (OSError, LookupError) as error:
            self.say("FAILED", f"{verb} {what}: {error}")
            raise _Failed from error

    @staticmethod
    def say(verb: str, text: str) -> None:
        print(f"{verb:<7} {text}", flush=True)


class _Failed(Exception):
    """An action failed (already reported); the install stops there."""


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".new")
    partial.write_text(text)
    partial.replace(path)


def _known(ids: tuple[int | None, int | None], owner: str, group: str) -> tuple[int, int]:
    uid, gid = ids
    if uid is None or gid is None:
        raise LookupError(f"no user {owner} or group {group} on the target")
    return uid, gid
