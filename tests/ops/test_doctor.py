"""``kiosk doctor`` against real parts: pty devices, a Mosquitto with and without logins, a
private pcscd with Debian's virtual reader and the chip emulator."""

from __future__ import annotations

import argparse
import ipaddress
import os
import pwd
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from kiosk.ops import doctor
from kiosk.sim.broker import Broker, free_port
from kiosk.sim.chip import Chip, VirtualCard
from tests.conftest import to_toml
from tests.sim.test_chip import pcsc, pcsc_parts, wait_card  # noqa: F401  (fixtures)

LINE = re.compile(r"(OK  |WARN|FAIL) (\w+): .+")


def run_doctor(settings: dict, tmp_path, capsys) -> tuple[int, dict[str, str]]:
    """Exit status, and check name → its whole line."""
    path = tmp_path / "station.toml"
    path.write_text(to_toml(settings))
    parser = argparse.ArgumentParser()
    doctor.add_arguments(parser)
    status = doctor.run(parser.parse_args(["--config", str(path), "--timeout", "3"]))
    lines = capsys.readouterr().out.splitlines()
    for line in lines:
        assert LINE.fullmatch(line), line
    return status, {LINE.fullmatch(line)[2]: line for line in lines}


def test_a_ready_station(station_settings, tmp_path, capsys, printer_sim, tray_sim):
    status, lines = run_doctor(station_settings, tmp_path, capsys)
    assert status == 0
    assert list(lines) == ["user", "config", "keys", "printer", "tray", "encoder", "spool",
                           "clock", "broker", "gpio"]
    assert lines["encoder"] == ("OK   encoder: mode none: no chip step (blanks counted, "
                                "not identified)")
    assert lines["config"].startswith("OK   config: ")
    assert lines["keys"] == "OK   keys: 1 trusted district key(s); unsigned jobs refused"
    real = os.path.realpath(printer_sim.path)
    assert lines["printer"].startswith(f"OK   printer: {printer_sim.path} -> {real} (")
    assert lines["printer"].endswith(", read/write)")
    assert lines["tray"].startswith(f"OK   tray: {tray_sim.path} -> ")
    assert lines["spool"].startswith(f"OK   spool: {tmp_path}/spool.db (writable, ")
    assert not lines["clock"].startswith("FAIL")
    assert re.fullmatch(r"OK   broker: 127\.0\.0\.1:\d+ connected anonymously \(MQTT 5\)",
                        lines["broker"])
    assert lines["gpio"].startswith("WARN gpio: mock (GPIOZERO_PIN_FACTORY=mock)")


def test_missing_devices_spool_and_keys_fail(station_settings, tmp_path, capsys):
    settings = {**station_settings,
                "station": {**station_settings["station"],
                            "spool": str(tmp_path / "gone" / "spool.db")},
                "printer": {"port": str(tmp_path / "kiosk-printer")},
                "receipt": {"port": "socket://127.0.0.1:9100", "enabled": True},
                "panel": {"lcd": "i2c:7:0x27"},
                "security": {"trusted_keys": [str(tmp_path / "district.pub")]}}
    status, lines = run_doctor(settings, tmp_path, capsys)
    assert status == 1
    assert lines["printer"] == (f"FAIL printer: {tmp_path}/kiosk-printer missing (not plugged "
                                "in, or no udev rule: see udev/README.md)")
    assert lines["receipt"].startswith("OK   receipt: socket://127.0.0.1:9100 (a URL")
    assert lines["lcd"] == ("FAIL lcd: /dev/i2c-7 missing "
                            "(I2C not enabled? raspi-config nonint do_i2c 0)")
    assert lines["spool"] == f"FAIL spool: {tmp_path}/gone missing (kiosk install creates it)"
    assert lines["keys"].startswith("FAIL keys: security.trusted_keys: ")
    assert lines["broker"].startswith("OK   broker: ")


def test_a_station_without_panel_needs_no_gpio_or_lcd(station_settings, tmp_path, capsys):
    settings = {**station_settings, "panel": {"enabled": False, "lcd": "i2c:7:0x27"}}
    status, lines = run_doctor(settings, tmp_path, capsys)
    assert status == 0
    assert "lcd" not in lines
    assert lines["gpio"] == "OK   gpio: not used (panel.enabled = false)"


def test_a_bad_config_stops_after_naming_the_key(tmp_path, capsys):
    settings = {"station": {"district": "3210", "id": "st-1", "colour": "red"}}
    status, lines = run_doctor(settings, tmp_path, capsys)
    assert status == 1
    assert list(lines) == ["user", "config"]
    assert lines["config"] == "FAIL config: station.colour: unknown key"


# -- the chip encoder ([encoder] mode inline) --------------------------------------------------

CHIP_UID = "04A1B2C3D4E5F6"


@pytest.fixture
def pcscd(pcsc):  # noqa: F811
    """A private pcscd with the readers "Kiosk Encoder" and "Kiosk Desk" (tests/sim)."""
    return pcsc


def inline(settings: dict, **encoder) -> dict:
    return {**settings, "encoder": {"mode": "inline", "reader": "Kiosk Encoder",
                                    "personalizer": "demo", **encoder}}


def test_the_encoder_reader_present_with_and_without_a_card(station_settings, pcscd, tmp_path,
                                                           capsys):
    status, lines = run_doctor(inline(station_settings), tmp_path, capsys)
    assert status == 0  # no card on the reader is a note, not a failure
    assert list(lines)[5:9] == ["personalizer", "reader", "chip", "spool"]
    assert lines["personalizer"] == "OK   personalizer: 'demo' is installed"
    assert lines["reader"] == "OK   reader: Kiosk Encoder 00 (inline)"
    assert lines["chip"] == ("WARN chip: no card on the reader: lay a blank on it to check "
                             "its chip answers")
    encoder = pcscd.reader("Kiosk Encoder")
    with VirtualCard(Chip(bytes.fromhex(CHIP_UID)), encoder.port):
        assert wait_card(encoder.slot(0), present=True)
        status, lines = run_doctor(inline(station_settings), tmp_path, capsys)
    assert status == 0
    assert lines["chip"] == f"OK   chip: a card answers on {encoder.slot(0)}: UID {CHIP_UID}"


def test_a_card_whose_chip_gives_garbage_fails(station_settings, pcscd, tmp_path, capsys):
    encoder = pcscd.reader("Kiosk Encoder")
    with VirtualCard(Chip(bytes.fromhex(CHIP_UID), fault="garbage"), encoder.port):
        assert wait_card(encoder.slot(0), present=True)
        status, lines = run_doctor(inline(station_settings), tmp_path, capsys)
    assert status == 1
    assert lines["chip"].startswith("FAIL chip: "), lines["chip"]
    assert "no status word" in lines["chip"]


def test_the_encoder_reader_not_listed_by_pcscd(station_settings, pcscd, tmp_path, capsys):
    """pcscd runs, but without the reader (unplugged): FAIL, naming what it does list."""
    pcscd.unplug("Kiosk Encoder")
    status, lines = run_doctor(inline(station_settings), tmp_path, capsys)
    assert status == 1
    assert lines["personalizer"].startswith("OK   personalizer: ")
    assert lines["reader"] == ("FAIL reader: pcscd lists no reader 'Kiosk Encoder' (listed: "
                               "Kiosk Desk 00 00, Kiosk Desk 00 01)")
    assert "chip" not in lines
    assert lines["spool"].startswith("OK   spool: ")  # the other checks go on


def test_pcscd_not_running(station_settings, pcscd, tmp_path, capsys):
    pcscd.stop()
    status, lines = run_doctor(inline(station_settings), tmp_path, capsys)
    assert status == 1
    assert re.fullmatch(r"FAIL reader: pcscd is not running \(.+\)", lines["reader"]), lines


def test_a_personalizer_that_is_not_installed(station_settings, tmp_path, capsys):
    """The config names the authority's package, not installed here: refused as `kiosk run`
    refuses it, with the names that are installed."""
    status, lines = run_doctor(inline(station_settings, personalizer="dukcapil"), tmp_path,
                               capsys)
    assert status == 1
    assert list(lines) == ["user", "config"]
    assert lines["config"] == ("FAIL config: encoder.personalizer: must name an installed "
                               "personalizer (demo, none), got 'dukcapil'")


def test_without_pyscard_the_encoder_fails_naming_the_extra(station_settings, tmp_path,
                                                            capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "smartcard.scard", None)  # as if `chip` were not installed
    status, lines = run_doctor(inline(station_settings), tmp_path, capsys)
    assert status == 1
    assert lines["encoder"].startswith("FAIL encoder: the chip encoder ([encoder] mode) needs "
                                       "the 'chip' extra: pip install 'kiosk[chip]'")
    assert "reader" not in lines


def test_a_personalizer_half_installed_fails_without_ending_the_doctor(
        station_settings, tmp_path, capsys, monkeypatch):
    """Its entry point is there, its module is gone (a package removed by hand)."""
    dist = tmp_path / "site" / "dukcapil_ektp-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: dukcapil-ektp\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[kiosk.personalizers]\ndukcapil = dukcapil_ektp.station:Personalizer\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    status, lines = run_doctor(inline(station_settings, personalizer="dukcapil"), tmp_path,
                               capsys)
    assert status == 1
    assert lines["personalizer"] == (
        "FAIL personalizer: personalizer 'dukcapil' (dukcapil_ektp.station:Personalizer)"
        " cannot be loaded: ModuleNotFoundError: No module named 'dukcapil_ektp'")
    assert lines["gpio"]  # the checks after it ran


def test_a_device_without_access_for_the_user():
    """As root the check runs in a child that became nobody: root may open anything."""
    controller, device = os.openpty()
    name = os.ttyname(device)
    try:
        if os.geteuid() == 0:
            line = _check_device_as_nobody(name)
        else:
            os.chmod(name, 0)
            line = doctor.check_device("printer", name).line()
    finally:
        os.close(controller)
        os.close(device)
    assert line.startswith(f"FAIL printer: {name} (")
    assert re.search(r"\): no read/write access for \w+$", line), line


def _check_device_as_nobody(path: str) -> str:
    nobody = pwd.getpwnam("nobody")
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's coverage is not collected
        try:
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            os.write(write, doctor.check_device("printer", path).line().encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as result:
        line = result.read()
    os.waitpid(child, 0)
    return line


def test_a_file_is_not_a_device(tmp_path):
    plain = tmp_path / "printer"
    plain.write_text("")
    check = doctor.check_device("printer", str(plain))
    assert (check.status, check.detail) == ("FAIL", f"{plain} is not a character device")


@pytest.fixture
def login_broker(tmp_path, mosquitto):
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    if not os.access(tool, os.X_OK):
        pytest.fail("mosquitto_passwd is missing: apt-get install -y mosquitto", pytrace=False)
    directory = tmp_path / "login-broker"
    directory.mkdir()
    passwords = directory / "passwords"
    subprocess.run([tool, "-b", "-c", str(passwords), "st-1", "right"], check=True)
    passwords.chmod(0o644)  # mosquitto may drop to its own user when started as root
    port = free_port()
    server = Broker(directory, port=port, listener=f"listener {port} 127.0.0.1",
                    extra_config=f"allow_anonymous false\npassword_file {passwords}").start()
    yield server
    server.kill()


@pytest.mark.parametrize(("password", "expected"), [
    ("right", r"OK   broker: 127\.0\.0\.1:\d+ connected as 'st-1' \(MQTT 5\)"),
    ("wrong", r"FAIL broker: 127\.0\.0\.1:\d+ reached, authentication refused for user 'st-1': "
              r"(Bad user name or password|Not authorized) \(check mqtt\.username / "
              r"mqtt\.password_file\)"),
    (None, r"FAIL broker: 127\.0\.0\.1:\d+ reached, authentication refused for anonymous "
           r"login: Not authorized .*"),
])
def test_broker_login(station_settings, login_broker, tmp_path, capsys, password, expected):
    mqtt = {"url": login_broker.url}
    if password:
        (tmp_path / "mqtt.password").write_text(password + "\n")
        mqtt.update(username="st-1", password_file=str(tmp_path / "mqtt.password"))
    status, lines = run_doctor({**station_settings, "mqtt": mqtt}, tmp_path, capsys)
    assert re.fullmatch(expected, lines["broker"]), lines["broker"]
    assert status == (0 if password == "right" else 1)


def self_signed(directory, name: str) -> tuple[str, str]:
    """A certificate for 127.0.0.1 that is its own CA, and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o644)  # mosquitto may read it as its own user
    return str(cert_path), str(key_path)


@pytest.fixture
def tls_broker(tmp_path, mosquitto):
    directory = tmp_path / "tls-broker"
    directory.mkdir()
    cert, key = self_signed(directory, "broker")
    port = free_port()
    server = Broker(directory, port=port, listener=f"listener {port} 127.0.0.1",
                    extra_config=f"allow_anonymous true\ncafile {cert}\ncertfile {cert}\n"
                                 f"keyfile {key}").start()
    yield server, cert
    server.kill()


def test_broker_over_tls(station_settings, tls_broker, tmp_path, capsys):
    server, ca = tls_broker
    mqtt = {"url": f"mqtts://127.0.0.1:{server.port}", "ca_file": ca}
    status, lines = run_doctor({**station_settings, "mqtt": mqtt}, tmp_path, capsys)
    assert lines["broker"] == (f"OK   broker: 127.0.0.1:{server.port} connected anonymously "
                               "(MQTT 5, TLS)")
    stranger, _ = self_signed(tmp_path, "stranger")
    mqtt["ca_file"] = stranger
    status, lines = run_doctor({**station_settings, "mqtt": mqtt}, tmp_path, capsys)
    assert status == 1
    assert lines["broker"].startswith(f"FAIL broker: 127.0.0.1:{server.port} unreachable: ")
    assert "CERTIFICATE_VERIFY_FAILED" in lines["broker"]
    mqtt["ca_file"] = str(tmp_path / "no-such-ca.pem")
    status, lines = run_doctor({**station_settings, "mqtt": mqtt}, tmp_path, capsys)
    assert lines["broker"].startswith("FAIL broker: cannot use the TLS or password files: ")


def test_broker_unreachable(station_settings, tmp_path, capsys):
    url = f"mqtt://127.0.0.1:{free_port()}"
    status, lines = run_doctor({**station_settings, "mqtt": {"url": url}}, tmp_path, capsys)
    assert status == 1
    assert re.fullmatch(r"FAIL broker: 127\.0\.0\.1:\d+ unreachable: .*refused.*",
                        lines["broker"]), lines["broker"]


def test_clock():
    never_set = doctor.check_clock(datetime(1970, 1, 1, 0, 1, tzinfo=UTC), synced=False)
    assert never_set.status == "FAIL"
    assert "1970-01-01 00:01:00 UTC is before 2025-01-01" in never_set.detail
    now = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    assert doctor.check_clock(now, synced=False).status == "WARN"
    assert doctor.check_clock(now, synced=True).detail == "2026-03-01 08:00:00 UTC, synchronised"
    assert doctor.kernel_clock_synced() in (True, False, None)


def test_gpio_mock_touches_no_pins(monkeypatch):
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    before = Device.pin_factory
    check = doctor.check_gpio()
    assert check.status == "WARN"
    assert Device.pin_factory is before


def test_gpio_factory_that_cannot_load(monkeypatch):
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "nosuchfactory")
    check = doctor.check_gpio()
    assert check.status == "FAIL"
    assert check.detail.startswith("no pin factory (GPIOZERO_PIN_FACTORY): ")


def test_gpio_default_factory_is_reported(monkeypatch):
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    check = doctor.check_gpio()
    on_a_pi = "Raspberry Pi" in _board_model()
    assert check.status in (("OK", "WARN") if on_a_pi else ("FAIL",))
    assert "gpiozero's default" in check.detail


def _board_model() -> str:
    try:
        with open("/proc/device-tree/model") as handle:
            return handle.read()
    except OSError:
        return ""


def test_gpio_reports_the_factory_and_board(monkeypatch):
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    made = []

    def pi5_factory():
        made.append(MockFactory(revision="d04170"))  # the revision code of a Pi 5
        return made[-1]

    monkeypatch.setattr(Device, "_default_pin_factory", staticmethod(pi5_factory))
    check = doctor.check_gpio()
    assert check.line() == "OK   gpio: mock (from gpiozero's default), Raspberry Pi model 5B"
    assert made[0].pins == {}  # no pin was claimed
