"""udev/99-kiosk.rules: valid syntax, and the right symlink for each real device (and no other).

`udevadm verify` (systemd >= 254) checks the syntax where it exists; everywhere, a
small reading of the rules checks each key and operator and plays the rules
against descriptions of the station's devices as udev sees them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from importlib.resources import files
from pathlib import Path

import pytest

RULES = Path(__file__).parents[2] / "udev" / "99-kiosk.rules"
NAMES = {"kiosk-printer", "kiosk-tray", "kiosk-receipt"}
TOKEN = re.compile(
    r'(?P<key>[A-Z_]+)(?:\{(?P<attr>[^}]+)\})?(?P<op>==|!=|\+=|-=|:=|=)"(?P<value>[^"]*)"')
MATCH_KEYS = {"ACTION", "SUBSYSTEM", "SUBSYSTEMS", "KERNEL", "KERNELS", "DRIVERS", "ATTR",
              "ATTRS", "ENV"}
ASSIGN_KEYS = {"SYMLINK", "GROUP", "MODE", "OWNER", "GOTO", "LABEL", "ENV", "TAG"}
WITH_ATTRIBUTE = {"ATTR", "ATTRS", "ENV"}


@dataclass(frozen=True)
class Token:
    key: str
    attr: str | None
    op: str
    value: str


def parse(text: str) -> list[list[Token]]:
    """Each rule line as its tokens; AssertionError on anything udev would not take."""
    rules = []
    for number, line in enumerate(text.replace("\\\n", "").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        tokens, rest = [], line
        while rest:
            found = TOKEN.match(rest)
            assert found, f"line {number}: cannot read {rest!r}"
            tokens.append(Token(found["key"], found["attr"], found["op"], found["value"]))
            rest = rest[found.end():].lstrip()
            if rest:
                assert rest.startswith(","), f"line {number}: expected ',' before {rest!r}"
                rest = rest[1:].lstrip()
        for token in tokens:
            check_token(number, token)
        rules.append(tokens)
    return rules


def check_token(number: int, token: Token) -> None:
    matching = token.op in ("==", "!=")
    allowed = MATCH_KEYS if matching else ASSIGN_KEYS
    assert token.key in allowed, f"line {number}: {token.key} cannot take {token.op}"
    assert (token.attr is not None) == (token.key in WITH_ATTRIBUTE), f"line {number}: {token}"
    if token.key == "MODE":
        assert re.fullmatch(r"0[0-7]{3}", token.value), f"line {number}: MODE {token.value}"


@dataclass
class Device:
    """One device event as udev sees it: attributes of the device and its parents."""

    subsystem: str
    kernel: str
    attrs: dict[str, str] = field(default_factory=dict)
    action: str = "add"
    symlinks: list[str] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)

    def value(self, token: Token) -> str:
        return {"ACTION": self.action, "SUBSYSTEM": self.subsystem, "KERNEL": self.kernel,
                "ATTRS": self.attrs.get(token.attr or "", "")}[token.key]


def matches(pattern: str, value: str) -> bool:
    return any(fnmatchcase(value, alternative) for alternative in pattern.split("|"))


def apply(rules: list[list[Token]], device: Device) -> Device:
    """Play the rules against *device*, like udev (GOTO/LABEL, +=, assignments)."""
    skip_to = None
    for rule in rules:
        label = next((t.value for t in rule if t.key == "LABEL"), None)
        if skip_to is not None:
            if label != skip_to:
                continue
            skip_to = None
        tests = [t for t in rule if t.op in ("==", "!=")]
        if not all(matches(t.value, device.value(t)) == (t.op == "==") for t in tests):
            continue
        for token in rule:
            if token.key == "GOTO":
                skip_to = token.value
            elif token.key == "SYMLINK":
                device.symlinks.append(token.value)
            elif token.op not in ("==", "!=") and token.key != "LABEL":
                device.settings[token.key] = token.value
    return device


@pytest.fixture(scope="module")
def rules() -> list[list[Token]]:
    return parse(RULES.read_text())


def test_the_rules_name_exactly_the_three_devices(rules):
    links = [t for rule in rules for t in rule if t.key == "SYMLINK"]
    assert {t.value for t in links} == NAMES
    assert all(t.op == "+=" for t in links)  # '=' would drop other rules' links


def test_every_named_device_is_for_group_kiosk_only(rules):
    for rule in rules:
        settings = {t.key: t.value for t in rule if t.op not in ("==", "!=")}
        if "SYMLINK" in settings:
            assert settings["GROUP"] == "kiosk"
            assert settings["MODE"] == "0660"
            # a USB id alone would also match the parent usb device and its interfaces
            assert any(t.key == "SUBSYSTEM" and t.op == "==" for t in rule)


def test_gotos_have_labels(rules):
    labels = {t.value for rule in rules for t in rule if t.key == "LABEL"}
    assert {t.value for rule in rules for t in rule if t.key == "GOTO"} <= labels


@pytest.mark.parametrize(("device", "link"), [
    (Device("usbmisc", "lp0", {"idVendor": "0f49", "idProduct": "0a00"}), "kiosk-printer"),
    (Device("tty", "ttyACM0", {"idVendor": "2e8a", "idProduct": "0005"}), "kiosk-tray"),
    (Device("tty", "ttyUSB0", {"idVendor": "0403", "idProduct": "6001"}), "kiosk-receipt"),
])
def test_station_devices_get_their_name_and_group(rules, device, link):
    named = apply(rules, device)
    assert named.symlinks == [link]
    assert named.settings == {"GROUP": "kiosk", "MODE": "0660"}


@pytest.mark.parametrize("device", [
    Device("usb", "1-1.2", {"idVendor": "0f49", "idProduct": "0a00"}),  # the printer's usb node
    Device("tty", "ttyACM0", {"idVendor": "2e8a", "idProduct": "000a"}),  # Pico SDK firmware
    Device("tty", "ttyUSB0", {"idVendor": "1a86", "idProduct": "7523"}),  # a CH340 adapter
    Device("input", "event3", {"idVendor": "046d", "idProduct": "c31c"}),  # a keyboard
    Device("tty", "ttyACM0", {"idVendor": "2e8a", "idProduct": "0005"}, action="remove"),
])
def test_other_devices_are_left_alone(rules, device):
    named = apply(rules, device)
    assert named.symlinks == []
    assert named.settings == {}


def test_the_parser_rejects_what_udev_rejects():
    for bad in ('SUBSYSTEM="tty", SYMLINK+="x"',  # assignment to a match-only key
                'SUBSYSTEM=="tty" SYMLINK+="x"',  # missing comma
                'SYMLINK=="x"',  # comparing an assign-only key
                'ATTRS=="0403"',  # ATTRS without {name}
                'SUBSYSTEM=="tty", MODE="660x"'):
        with pytest.raises(AssertionError):
            parse(bad)


def test_the_package_ships_the_same_rules():
    assert (files("kiosk") / "data" / "99-kiosk.rules").read_text() == RULES.read_text()


def test_udevadm_verify():
    udevadm = shutil.which("udevadm")
    has_verify = udevadm and subprocess.run([udevadm, "verify", "--help"],
                                            capture_output=True).returncode == 0
    if not has_verify:
        pytest.skip("udevadm verify needs systemd >= 254; the parser tests above cover syntax")
    done = subprocess.run([udevadm, "verify", "--resolve-names=never", str(RULES)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
