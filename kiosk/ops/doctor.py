"""``kiosk doctor --config FILE``: can this station run? One line per check.

Each line is ``OK``, ``WARN`` or ``FAIL``, the check's name and what was found:
the user running the checks, the config, the trusted keys, each device path
(what it points to, owner, mode, access), an IPP printer (kiosk/ops/ippcheck.py),
the chip encoder where ``[encoder] mode`` is not ``none`` (the personalizer named is
installed, pcscd lists the reader, a card lying on it answers: no card is a warning;
kiosk/devices/encoder/findings.py; nothing is written to a chip), the spool, the clock, the broker
(reached, and the login accepted: MQTT 5 with the config's URL, TLS files and
credentials), and the gpiozero pin factory. Exit status 1 if any check FAILs.

Access checks are for the user running the doctor: run it as the service's user
(``sudo -u kiosk kiosk doctor --config ...``) to see what the service will see.
The chip check holds a card on the reader for the moment it reads its UID (PC/SC
exclusive): pause the station first (``pause`` command) if it may be encoding a card.
"""

from __future__ import annotations

import argparse
import ctypes
import grp
import os
import pwd
import shutil
import stat
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kiosk.station.config import Config, ConfigError, EncoderSection, load

OK, WARN, FAIL = "OK", "WARN", "FAIL"
SERVICE_USER = "kiosk"
CLOCK_FLOOR = datetime(2025, 1, 1, tzinfo=UTC)  # earlier means the clock was never set
LOW_DISK_BYTES = 200 * 1024 * 1024
TIME_ERROR = 5  # adjtimex(2): the kernel clock is not synchronised
AUTH_REFUSED = {134, 135, 140}  # MQTT 5: bad user name or password, not authorised, bad method


@dataclass(frozen=True)
class Check:
    status: str
    name: str
    detail: str

    def line(self) -> str:
        return f"{self.status:<4} {self.name}: {self.detail}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="the station's TOML file")
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="seconds to wait for the broker (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    failed = False
    for check in diagnose(args.config, timeout=args.timeout):
        print(check.line(), flush=True)  # as they come: the broker check can take a while
        failed = failed or check.status == FAIL
    return 1 if failed else 0


def diagnose(config_path: str, *, timeout: float = 5.0) -> Iterator[Check]:
    """All checks, in order; without a valid config only the user and the config's problems."""
    yield check_user()
    try:
        config = load(config_path)
    except ConfigError as error:  # the lines `kiosk run` refuses to start with
        for line in error.lines():
            yield Check(FAIL, "config", line)
        return
    yield Check(OK, "config", f"{config_path} (station {config.client_id})")
    yield check_keys(config)
    for name, port in device_ports(config):
        yield check_device(name, port)
    if config.printer.driver == "ipp":
        yield from check_ipp_printer(config.printer.uri, config.printer.media, timeout,
                                     manual_feed=config.encoder.mode == "desk")
    yield from check_encoder(config.encoder)
    yield check_spool(config.station.spool)
    yield check_clock()
    yield check_broker(config, timeout)
    yield check_gpio() if config.panel.enabled else Check(
        OK, "gpio", "not used (panel.enabled = false)")


def check_user() -> Check:
    user = _me()
    if user == SERVICE_USER:
        return Check(OK, "user", f"{user} (the service's user)")
    return Check(WARN, "user", f"{user}: access checks below are {user}'s; the service runs "
                 f"as {SERVICE_USER} (sudo -u {SERVICE_USER} kiosk doctor ...)")


def check_keys(config: Config) -> Check:
    from kiosk.station.loop import make_verifier  # the service's own rule for its keys

    try:
        verifier = make_verifier(config)
    except ConfigError as error:
        return Check(FAIL, "keys", str(error))
    count = len(verifier.key_ids)
    if config.security.require_signed_jobs:
        return Check(OK, "keys", f"{count} trusted district key(s); unsigned jobs refused")
    return Check(WARN, "keys", f"{count} trusted key(s), but unsigned jobs are accepted "
                 "(security.require_signed_jobs = false)")


def device_ports(config: Config) -> list[tuple[str, str]]:
    """(check name, path or URL) of every device the config uses."""
    ports = [("printer", config.printer.port)] if config.printer.driver == "evolis" else []
    if config.tray.enabled:
        ports.append(("tray", config.tray.port))
    if config.receipt.enabled:
        ports.append(("receipt", config.receipt.port))
    if config.panel.enabled and config.panel.lcd.startswith("i2c:"):
        bus = config.panel.lcd.split(":")[1]
        ports.append(("lcd", f"/dev/i2c-{bus}"))
    return ports


def check_ipp_printer(uri: str, media: str, timeout: float = 5.0, *,
                      manual_feed: bool = False) -> Iterator[Check]:
    """An IPP printer (card-printer.md, Printer drivers): reachable, card media, a format
    the station writes, accepting jobs, ``abort-job`` policy, no job files kept."""
    from kiosk.ops.ippcheck import ipp_findings  # pycups only where the ipp driver is used

    for status, name, detail in ipp_findings(uri, media, timeout, manual_feed=manual_feed):
        yield Check({"ok": OK, "warn": WARN, "fail": FAIL}[status], name, detail)


def check_encoder(settings: EncoderSection) -> Iterator[Check]:
    """The ``[encoder]`` section's findings, as lines; a plug-in that breaks while it is
    loaded (half installed, or raising) is a FAIL, not the doctor's own end."""
    from kiosk.devices.encoder.findings import encoder_findings

    findings = encoder_findings(settings)
    while True:
        try:
            status, name, detail = next(findings)
        except StopIteration:
            return
        except Exception as error:  # a personalizer's package may raise anything on load
            yield Check(FAIL, "encoder", f"personalizer {settings.personalizer!r} could not be"
                        f" loaded: {type(error).__name__}: {error}")
            return
        yield Check({"ok": OK, "warn": WARN, "fail": FAIL}[status], name, detail)


def check_device(name: str, port: str) -> Check:
    if "://" in port:
        return Check(OK, name, f"{port} (a URL, not a local device: not checked)")
    path = Path(port)
    if not path.exists():
        hint = ("I2C not enabled? raspi-config nonint do_i2c 0" if name == "lcd"
                else "not plugged in, or no udev rule: see udev/README.md")
        return Check(FAIL, name, f"{port} missing ({hint})")
    real, status = path.resolve(), path.stat()
    where = f"{port} -> {real}" if real != path else port
    mode = stat.S_IMODE(status.st_mode)
    owner = f"{_user_name(status.st_uid)}:{_group_name(status.st_gid)} {mode:04o}"
    if not stat.S_ISCHR(status.st_mode):
        return Check(FAIL, name, f"{where} is not a character device")
    if not os.access(path, os.R_OK | os.W_OK, effective_ids=True):
        return Check(FAIL, name, f"{where} ({owner}): no read/write access for {_me()}")
    return Check(OK, name, f"{where} ({owner}, read/write)")


def check_spool(spool: str) -> Check:
    path = Path(spool)
    directory = path.parent
    if not directory.is_dir():
        return Check(FAIL, "spool", f"{directory} missing (kiosk install creates it)")
    if path.exists() and not os.access(path, os.R_OK | os.W_OK, effective_ids=True):
        return Check(FAIL, "spool", f"{path} is not writable for {_me()}")
    try:  # SQLite also writes its journal beside the file
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".doctor-"):
            pass
    except OSError as error:
        return Check(FAIL, "spool", f"cannot write in {directory}: {error.strerror}")
    free = shutil.disk_usage(directory).free
    detail = f"{path} (writable, {free / 1e9:.1f} GB free)"
    return Check(WARN if free < LOW_DISK_BYTES else OK, "spool", detail)


def check_clock(now: datetime | None = None, synced: bool | None = None) -> Check:
    """The time must be set (TLS and signatures need it) and kept by NTP."""
    now = now or datetime.now(UTC)
    synced = kernel_clock_synced() if synced is None else synced
    shown = f"{now:%Y-%m-%d %H:%M:%S} UTC"
    if now < CLOCK_FLOOR:
        return Check(FAIL, "clock", f"{shown} is before {CLOCK_FLOOR:%Y-%m-%d}: not set "
                     "(no network time yet? the Pi has no battery clock)")
    if synced is False:
        return Check(WARN, "clock", f"{shown}, not synchronised by NTP "
                     "(timedatectl timesync-status)")
    return Check(OK, "clock", shown + (", synchronised" if synced else ""))


def kernel_clock_synced() -> bool | None:
    """The kernel's NTP state (what timedatectl shows); None where it cannot be read."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        timex = ctypes.create_string_buffer(512)  # struct timex, modes = 0: only read
        state = libc.adjtimex(timex)
    except (OSError, AttributeError):
        return None
    return None if state < 0 else state != TIME_ERROR


def check_broker(config: Config, timeout: float) -> Check:
    """Connect as the station would (URL, TLS, login) with a client id of its own."""
    from kiosk.contract.mqtt import Credentials, broker_address, make_client

    cfg = config.mqtt
    try:
        host, port = broker_address(cfg.url)
    except ValueError as error:
        return Check(FAIL, "broker", f"mqtt.url {cfg.url!r}: {error}")
    where, tls = f"{host}:{port}", cfg.url.startswith("mqtts://")
    try:
        # Not the station's id: the broker would end the running station's session.
        client = make_client(f"{config.client_id}-doctor", url=cfg.url,
                             credentials=Credentials.of(cfg))
    except OSError as error:  # ssl.SSLError included
        return Check(FAIL, "broker", f"cannot use the TLS or password files: {error}")
    client.connect_timeout = timeout
    answers: list = []
    client.on_connect = lambda _c, _u, _f, reason, _p: answers.append(reason)
    try:
        client.connect(host, port, keepalive=cfg.keepalive_s, clean_start=True)
        deadline = time.monotonic() + timeout
        while not answers and time.monotonic() < deadline:
            client.loop(timeout=0.1)
    except OSError as error:  # refused, unreachable, DNS, TLS handshake (ssl.SSLError)
        return Check(FAIL, "broker", f"{where} unreachable: {error}")
    finally:
        client.disconnect()
        client.loop(timeout=0.1)  # sends DISCONNECT and closes the socket
    return _broker_verdict(answers, where, tls, cfg.username, timeout)


def _broker_verdict(answers: list, where: str, tls: bool, user: str | None,
                    timeout: float) -> Check:
    if not answers:
        return Check(FAIL, "broker", f"{where} accepted TCP but sent no CONNACK in {timeout:g} s")
    reason = answers[0]
    if reason.value in AUTH_REFUSED:
        login = f"user {user!r}" if user else "anonymous login"
        return Check(FAIL, "broker", f"{where} reached, authentication refused for {login}: "
                     f"{reason} (check mqtt.username / mqtt.password_file)")
    if reason.is_failure:
        return Check(FAIL, "broker", f"{where} reached, connection refused: {reason}")
    login = f"as {user!r}" if user else "anonymously"
    return Check(OK, "broker", f"{where} connected {login} (MQTT 5{', TLS' if tls else ''})")


def check_gpio() -> Check:
    """The pin factory gpiozero would use here (GPIOZERO_PIN_FACTORY, or its default order)."""
    chosen = os.environ.get("GPIOZERO_PIN_FACTORY")
    if chosen and chosen.lower() == "mock":
        return Check(WARN, "gpio", "mock (GPIOZERO_PIN_FACTORY=mock): pins are simulated, "
                     "the panel's buttons, lights and buzzer do nothing")
    source = "GPIOZERO_PIN_FACTORY" if chosen else "gpiozero's default"
    from gpiozero import Device

    with warnings.catch_warnings(record=True) as fallbacks:
        warnings.simplefilter("always")
        try:
            factory = Device._default_pin_factory()  # what Device.ensure_pin_factory() uses
        except Exception as error:  # gpiozero raises many kinds here
            tried = "; ".join(str(warning.message) for warning in fallbacks)
            hint = "pip install lgpio" + ("" if os.access(".", os.W_OK) else
                                          "; lgpio needs a writable working directory")
            return Check(FAIL, "gpio", f"no pin factory ({source}): {error}"
                         + (f" [{tried}]" if tried else "") + f" -- {hint}")
    try:
        kind = type(factory).__name__.removesuffix("Factory").lower()
        board = getattr(getattr(factory, "board_info", None), "model", "?")
        chip = getattr(factory, "chip", None)  # lgpio: 4 on a Pi 5 with older kernels
    finally:
        factory.close()
    detail = f"{kind} (from {source}), Raspberry Pi model {board}"
    detail += f", /dev/gpiochip{chip}" if chip is not None else ""
    if kind == "native":
        return Check(WARN, "gpio", detail + ": a last-resort fallback without Pi 5 support; "
                     "install lgpio")
    return Check(OK, "gpio", detail)


def _me() -> str:
    return _user_name(os.geteuid())


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)
