"""Station configuration: the TOML file of station.md, read strictly.

Every key has a default except the station identity. Unknown sections and keys,
wrong types and impossible values are all collected and raised together as one
`ConfigError`, each problem naming its key: the service refuses to start (exit 2,
which the unit does not restart on) rather than run on a silent default or crash later.

A key's rule sits in its annotation, ``baud: Annotated[int, positive] = 115200``:
adding a key with its rule is one line. A rule returns the problem or None; rules
that join several keys (distinct pins, a certificate with its key) are in `_across`.
Floats must be finite everywhere (TOML allows ``nan`` and ``inf``).

Why not a schema library: msgspec stops at the first error, and pydantic is a large
compiled dependency for what is here a table of one-line rules.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

from kiosk.contract.documents import DEFAULT_DOCUMENTS, check_documents

STATION_ID = re.compile(r"[a-z0-9-]{1,32}")
DISTRICT = re.compile(r"[0-9]{4}")  # the first four digits of a NIK (mqtt.md)

Rule = Callable[[Any], str | None]


class ConfigError(ValueError):
    """Configuration problems; each names its key (``problems``: (key, problem) pairs)."""

    def __init__(self, key: str, problem: str, *more: tuple[str, str]) -> None:
        self.problems = [(key, problem), *more]
        self.key = key
        super().__init__("; ".join(self.lines()))

    @classmethod
    def of(cls, problems: list[tuple[str, str]]) -> ConfigError:
        return cls(*problems[0], *problems[1:])

    def lines(self) -> list[str]:
        """One ``key: problem`` line per problem, as `kiosk run` and `kiosk doctor` print them."""
        return [f"{key}: {problem}" for key, problem in self.problems]


# -- rules: each returns what is wrong with a value, or None --------------------------------


def positive(value: float) -> str | None:
    return None if value > 0 else "must be greater than 0"


def not_negative(value: float) -> str | None:
    return None if value >= 0 else "must be 0 or more"


def between(low: float, high: float) -> Rule:
    return lambda value: None if low <= value <= high else f"must be {low}..{high}"


def one_of(*choices: object) -> Rule:
    text = " or ".join(repr(choice) for choice in choices)
    return lambda value: None if value in choices else f"must be {text}"


def matching(pattern: re.Pattern[str], meaning: str) -> Rule:
    return lambda value: None if pattern.fullmatch(value) else f"must be {meaning}"


def not_empty(value: str | list) -> str | None:
    return None if value else "must not be empty"


def each_not_empty(values: list[str]) -> str | None:
    return None if all(values) else "must not hold an empty path"


def known_documents(values: list[str]) -> str | None:
    """The blanks the printer is loaded with (station.md `[station] documents`)."""
    try:
        check_documents(values)
    except ValueError as problem:
        return str(problem)
    return None


def broker_url(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts"):
        return "must start with mqtt:// or mqtts://"
    try:
        port = parts.port
    except ValueError:
        return "has a port that is not 1..65535"
    if not parts.hostname:
        return "must name a host (mqtt://HOST:PORT)"
    if port == 0:
        return "has a port that is not 1..65535"
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return "must be mqtt://HOST:PORT or mqtts://HOST:PORT, nothing after"
    return None


def topic_root(root: str) -> str | None:
    if not root:
        return "must not be empty"
    if set(root) & set("+#\0"):
        return "must not hold the MQTT wildcards + or # (or NUL)"
    if root.startswith("$"):
        return "must not start with $ (the broker's own topics)"
    if "" in root.split("/"):
        return "must not start or end with / or hold //"
    return None


def lcd(spec: str) -> str | None:
    from kiosk.devices.panel.lcd import LcdError, parse_i2c

    if spec in ("none", "terminal", "memory"):
        return None
    if not spec.startswith("i2c:"):
        return "must be i2c:BUS:ADDR, terminal or none"
    try:
        parse_i2c(spec)
    except LcdError as error:
        return str(error).removeprefix("panel.lcd: ")
    return None


BCM_PIN = between(0, 27)  # the 40-pin header's GPIO


# -- the sections ---------------------------------------------------------------------------

FILE = not_empty  # a path or pyserial URL


@dataclass(frozen=True)
class StationSection:
    district: Annotated[str, matching(DISTRICT, "4 digits (the first four of a NIK)")] = ""
    id: Annotated[str, matching(STATION_ID, "1-32 of [a-z0-9-]")] = ""
    spool: Annotated[str, FILE] = "/var/lib/kiosk/spool.db"
    min_free_mb: Annotated[float, not_negative] = 20.0
    documents: Annotated[list[str], known_documents] = field(
        default_factory=lambda: list(DEFAULT_DOCUMENTS))


@dataclass(frozen=True)
class MqttSection:
    url: Annotated[str, broker_url] = "mqtt://127.0.0.1:1883"
    topic_root: Annotated[str, topic_root] = "ektp/v1"
    session_expiry_s: Annotated[int, between(1, 0xFFFFFFFF)] = 604800  # MQTT 5: 4 bytes
    keepalive_s: Annotated[int, between(1, 0xFFFF)] = 30  # MQTT: 2 bytes
    ca_file: Annotated[str | None, FILE] = None
    cert_file: Annotated[str | None, FILE] = None
    key_file: Annotated[str | None, FILE] = None
    username: Annotated[str | None, not_empty] = None
    password_file: Annotated[str | None, FILE] = None


@dataclass(frozen=True)
class PrinterSection:
    driver: Annotated[str, one_of("evolis", "ipp")] = "evolis"
    port: Annotated[str, FILE] = "/dev/kiosk-printer"
    baud: Annotated[int, positive] = 115200
    ribbon: Annotated[str, one_of("ymcko", "k")] = "ymcko"
    colour_bits: Annotated[int, one_of(5, 6, 7)] = 6
    rotate: Annotated[int, one_of(90, 270)] = 90
    print_seconds: Annotated[float, positive] = 30.0
    setting_timeout_s: Annotated[float, positive] = 2.0
    download_timeout_s: Annotated[float, positive] = 30.0
    max_attempts: Annotated[int, positive] = 3
    poll_s: Annotated[float, positive] = 1.0
    resync_s: Annotated[float, positive] = 6.0
    uri: str = ""  # required with driver = "ipp" (_across)
    media: Annotated[str, not_empty] = "iso_id-1_53.98x85.6mm"
    username: Annotated[str, not_empty] = "kiosk"
    job_timeout_s: Annotated[float, positive] = 120.0


@dataclass(frozen=True)
class TraySection:
    port: Annotated[str, FILE] = "/dev/kiosk-tray"
    enabled: bool = True
    low_threshold: Annotated[int, not_negative] = 50
    card_um: Annotated[int, between(200, 2000)] = 760  # the board's calibration limits
    empty_height_um: Annotated[int, between(0, 200_000)] = 0
    mismatch_tolerance: Annotated[int, not_negative] = 10
    path_jam_s: Annotated[float, positive] = 8.0


@dataclass(frozen=True)
class ReceiptSection:
    port: Annotated[str, FILE] = "/dev/kiosk-receipt"
    enabled: bool = False


@dataclass(frozen=True)
class PanelSection:
    enabled: bool = True
    lcd: Annotated[str, lcd] = "none"
    language: Annotated[str, one_of("id", "en")] = "id"
    hold_s: Annotated[float, positive] = 3.0
    button_pause: Annotated[int, BCM_PIN] = 5
    button_ok: Annotated[int, BCM_PIN] = 6
    button_menu: Annotated[int, BCM_PIN] = 13
    button_extra: Annotated[int, BCM_PIN] = 19
    led_green: Annotated[int, BCM_PIN] = 17
    led_amber: Annotated[int, BCM_PIN] = 27
    led_red: Annotated[int, BCM_PIN] = 22
    buzzer: Annotated[int, BCM_PIN] = 18


REQUIRED = ("district", "id")  # of [station]; every other key has a default
PINS = ("button_pause", "button_ok", "button_menu", "button_extra",
        "led_green", "led_amber", "led_red", "buzzer")
I2C1_PINS = (2, 3)  # SDA and SCL of bus 1, taken when the LCD is on it


@dataclass(frozen=True)
class SecuritySection:
    require_signed_jobs: bool = True
    trusted_keys: Annotated[list[str], each_not_empty] = field(
        default_factory=lambda: ["/etc/kiosk/district.pub"])
    keep_personal_data_h: Annotated[float, not_negative] = 24.0


# -- [encoder] (chip.md): where the chip is encoded -------------------------------------------
ENCODER_WAIT_S = {"none": 10.0, "inline": 10.0, "desk": 120.0}  # card_wait_s by mode


def installed_personalizer(name: str) -> str | None:
    """An entry point of ``kiosk.personalizers`` must bear this name (a plug-in's package
    is installed beside the station's)."""
    from importlib.metadata import entry_points

    names = sorted(entry.name for entry in entry_points(group="kiosk.personalizers"))
    return None if name in names else f"must name an installed personalizer ({', '.join(names)})"


@dataclass(frozen=True)
class EncoderSection:
    mode: Annotated[str, one_of("none", "inline", "desk")] = "none"
    reader: str = ""  # a PC/SC reader name or a unique part of it; "": the only reader listed
    personalizer: Annotated[str, installed_personalizer] = "none"
    timeout_s: Annotated[float, positive] = 60.0
    card_wait_s: Annotated[float | None, positive] = None  # None: 10 s inline, 120 s desk

    @property
    def wait_s(self) -> float:
        """How long to wait for a card on the reader (card_wait_s, or the mode's default)."""
        return ENCODER_WAIT_S[self.mode] if self.card_wait_s is None else self.card_wait_s


def absolute_path(value: str) -> str | None:
    return None if value.startswith("/") else "must be an absolute path"


@dataclass(frozen=True)
class UpdateSection:
    """station.md, Releases and updates: `kiosk update` and its judgement of a new release
    (docs/releases.md); root, settle_s, stale_s and card_wait_s are the project's."""

    trusted_keys: Annotated[list[str], not_empty, each_not_empty] = field(
        default_factory=lambda: ["/etc/kiosk/release.pub"])
    health_s: Annotated[float, positive] = 120.0
    root: Annotated[str, absolute_path] = "/opt/kiosk"
    settle_s: Annotated[float, positive] = 10.0
    stale_s: Annotated[float, positive] = 5.0
    card_wait_s: Annotated[float, positive] = 900.0


@dataclass(frozen=True)
class Config:
    station: StationSection
    mqtt: MqttSection = MqttSection()
    printer: PrinterSection = PrinterSection()
    tray: TraySection = TraySection()
    receipt: ReceiptSection = ReceiptSection()
    panel: PanelSection = PanelSection()
    security: SecuritySection = SecuritySection()
    encoder: EncoderSection = EncoderSection()
    update: UpdateSection = UpdateSection()

    @property
    def client_id(self) -> str:
        return f"{self.station.district}-{self.station.id}"

    @property
    def topic_base(self) -> str:
        return f"{self.mqtt.topic_root}/{self.station.district}/{self.station.id}"


# -- reading --------------------------------------------------------------------------------


def load(path: str | Path) -> Config:
    """Read and check the TOML file at *path*."""
    try:
        with open(path, "rb") as handle:
            raw = tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(str(path), "file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from exc
    return from_dict(raw)


def from_dict(raw: dict[str, Any]) -> Config:
    """Build a `Config` from parsed TOML; every problem found is in the one `ConfigError`."""
    problems: list[tuple[str, str]] = []
    hints = get_type_hints(Config)
    problems += [(name, "unknown section") for name in raw if name not in hints]
    sections = {}
    for name, section_type in hints.items():
        body = raw.get(name, {})
        if not isinstance(body, dict):
            problems.append((name, "must be a table"))
            body = {}
        sections[name] = _section(name, section_type, body, problems)
    given = raw.get("station") if isinstance(raw.get("station"), dict) else {}
    missing = [f"station.{key}" for key in REQUIRED if given.get(key) in (None, "")]
    problems = [p for p in problems if p[0] not in missing] + [
        (key, "is required") for key in missing]
    config = Config(**sections)  # a key that failed has its default here, for _across
    problems += _across(config)
    if problems:
        raise ConfigError.of(_unique(problems))
    return config


def _section(name: str, section_type: type, body: dict[str, Any],
             problems: list[tuple[str, str]]) -> Any:
    """The section built from the keys that passed; the others go to *problems*."""
    hints = get_type_hints(section_type, include_extras=True)
    good = {}
    for key, value in body.items():
        where = f"{name}.{key}"
        if key not in hints:
            problems.append((where, "unknown key"))
            continue
        problem = _problem(value, hints[key])
        if problem:
            problems.append((where, problem))
        else:
            good[key] = value
    return section_type(**good)


def _problem(value: Any, hint: Any) -> str | None:
    """What is wrong with *value* for a field annotated *hint*, or None."""
    rules: list[Rule] = []
    if get_origin(hint) is Annotated:
        hint, *rules = get_args(hint)
    optional = type(None) in get_args(hint)
    if optional:
        hint = next(arg for arg in get_args(hint) if arg is not type(None))
    wrong = _wrong_type(value, hint)
    if wrong:
        return wrong
    for rule in rules:
        problem = rule(value)
        if problem:
            return f"{problem}, got {value!r}"
    return None


def _wrong_type(value: Any, hint: Any) -> str | None:
    got = f", got {type(value).__name__} {value!r}"
    if hint is bool:
        return None if isinstance(value, bool) else "must be true or false" + got
    if isinstance(value, bool) and hint in (int, float):
        return f"must be {'an integer' if hint is int else 'a number'}" + got
    if hint is int:
        return None if isinstance(value, int) else "must be an integer" + got
    if hint is float:
        if not isinstance(value, int | float):
            return "must be a number" + got
        return None if math.isfinite(value) else f"must be a finite number, got {value!r}"
    if hint is str:
        return None if isinstance(value, str) else "must be a string" + got
    if get_origin(hint) is list and get_args(hint) == (str,):
        ok = isinstance(value, list) and all(isinstance(item, str) for item in value)
        return None if ok else "must be a list of strings" + got
    raise TypeError(f"no type check for {hint}")  # pragma: no cover - a new field type


def _across(config: Config) -> list[tuple[str, str]]:
    """Rules that join keys: pins distinct, a certificate with its key, a trusted key."""
    problems = []
    panel = config.panel
    taken: dict[int, str] = {pin: "the LCD's I2C bus 1" for pin in I2C1_PINS
                             if panel.lcd.startswith("i2c:1:")}
    for name in PINS:
        pin = getattr(panel, name)
        if pin in taken:
            problems.append((f"panel.{name}", f"pin {pin} is already {taken[pin]}"))
        else:
            taken[pin] = f"panel.{name}"
    if (config.mqtt.cert_file is None) != (config.mqtt.key_file is None):
        problems.append(("mqtt.key_file" if config.mqtt.key_file is None else "mqtt.cert_file",
                         "mqtt.cert_file and mqtt.key_file go together"))
    if config.printer.driver == "ipp" and not config.printer.uri.startswith(("ipp://", "ipps://")):
        problems.append(("printer.uri", "must be an ipp:// or ipps:// URI when printer.driver"
                         " is 'ipp'"))
    if config.security.require_signed_jobs and not config.security.trusted_keys:
        problems.append(("security.trusted_keys",
                         "must name a key while security.require_signed_jobs = true"))
    if config.encoder.mode == "inline" and config.printer.driver != "evolis":
        # Only a printer that stops the card at its encoder can encode inline (chip.md);
        # a CUPS queue cannot: that is what desk mode is for.
        problems.append(("encoder.mode", "'inline' needs printer.driver = 'evolis';"
                         " use 'desk' with a print queue"))
    if config.update.settle_s < config.update.stale_s:
        # A loop that hangs right after one good report must be caught while settling.
        problems.append(("update.settle_s", "must be at least update.stale_s"))
    return problems


def _unique(problems: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return list(dict.fromkeys(problems))
