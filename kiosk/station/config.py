"""Station configuration: the TOML file of station.md, read strictly.

Every key has a default except the station identity. An unknown section or
key, or a value of the wrong type, is a `ConfigError` naming the key: the
service refuses to start (exit 2) rather than run on a silent default.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

STATION_ID = re.compile(r"[a-z0-9-]{1,32}")
DISTRICT = re.compile(r"[A-Za-z0-9_-]{1,32}")


class ConfigError(ValueError):
    """A configuration problem; the message names the key."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key


@dataclass(frozen=True)
class StationSection:
    district: str = ""
    id: str = ""
    spool: str = "/var/lib/kiosk/spool.db"
    min_free_mb: float = 20.0


@dataclass(frozen=True)
class MqttSection:
    url: str = "mqtt://127.0.0.1:1883"
    topic_root: str = "ektp/v1"
    session_expiry_s: int = 604800
    keepalive_s: int = 30
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    username: str | None = None
    password_file: str | None = None


@dataclass(frozen=True)
class PrinterSection:
    driver: str = "evolis"
    port: str = "/dev/kiosk-printer"
    baud: int = 115200
    ribbon: str = "ymcko"
    colour_bits: int = 6
    rotate: int = 90
    print_seconds: float = 30.0
    setting_timeout_s: float = 2.0
    download_timeout_s: float = 30.0
    max_attempts: int = 3
    poll_s: float = 1.0
    resync_s: float = 6.0
    uri: str = ""
    media: str = "iso_id-1_53.98x85.6mm"
    username: str = "kiosk"
    job_timeout_s: float = 120.0


@dataclass(frozen=True)
class TraySection:
    port: str = "/dev/kiosk-tray"
    enabled: bool = True
    low_threshold: int = 50
    card_um: int = 760
    empty_height_um: int = 0
    mismatch_tolerance: int = 10
    path_jam_s: float = 8.0


@dataclass(frozen=True)
class ReceiptSection:
    port: str = "/dev/kiosk-receipt"
    enabled: bool = False


@dataclass(frozen=True)
class PanelSection:
    enabled: bool = True
    lcd: str = "none"
    language: str = "id"
    hold_s: float = 3.0
    button_pause: int = 5
    button_ok: int = 6
    button_menu: int = 13
    button_extra: int = 19
    led_green: int = 17
    led_amber: int = 27
    led_red: int = 22
    buzzer: int = 18


@dataclass(frozen=True)
class SecuritySection:
    require_signed_jobs: bool = True
    trusted_keys: list[str] = field(default_factory=lambda: ["/etc/kiosk/district.pub"])
    keep_personal_data_h: float = 24.0


@dataclass(frozen=True)
class Config:
    station: StationSection
    mqtt: MqttSection = MqttSection()
    printer: PrinterSection = PrinterSection()
    tray: TraySection = TraySection()
    receipt: ReceiptSection = ReceiptSection()
    panel: PanelSection = PanelSection()
    security: SecuritySection = SecuritySection()

    @property
    def client_id(self) -> str:
        return f"{self.station.district}-{self.station.id}"

    @property
    def topic_base(self) -> str:
        return f"{self.mqtt.topic_root}/{self.station.district}/{self.station.id}"


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
    """Build a `Config` from parsed TOML, rejecting unknown keys and wrong types."""
    hints = get_type_hints(Config)
    unknown = set(raw) - set(hints)
    if unknown:
        raise ConfigError(sorted(unknown)[0], "unknown section")
    sections = {}
    for name, section_type in hints.items():
        body = raw.get(name, {})
        if not isinstance(body, dict):
            raise ConfigError(name, "must be a table")
        sections[name] = _section(name, section_type, body)
    config = Config(**sections)
    _check_values(config)
    return config


def _section(name: str, section_type: type, body: dict[str, Any]) -> Any:
    hints = get_type_hints(section_type)
    known = {f.name for f in fields(section_type)}
    for key, value in body.items():
        if key not in known:
            raise ConfigError(f"{name}.{key}", "unknown key")
        _check_type(f"{name}.{key}", value, hints[key])
    return section_type(**body)


def _check_type(key: str, value: Any, hint: Any) -> None:
    text = str(hint)
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif hint is str or text == "str | None":
        ok = isinstance(value, str)
    elif text == "list[str]":
        ok = isinstance(value, list) and all(isinstance(item, str) for item in value)
    else:  # pragma: no cover - a new field type without a checker
        raise TypeError(f"no type check for {key}: {hint}")
    if not ok:
        expected = {bool: "true or false", int: "an integer", float: "a number"}.get(
            hint, "a list of strings" if text == "list[str]" else "a string"
        )
        raise ConfigError(key, f"must be {expected}, got {type(value).__name__} {value!r}")


def _check_values(config: Config) -> None:
    if not config.station.district:
        raise ConfigError("station.district", "is required")
    if not DISTRICT.fullmatch(config.station.district):
        raise ConfigError("station.district", "must be 1-32 of [A-Za-z0-9_-]")
    if not config.station.id:
        raise ConfigError("station.id", "is required")
    if not STATION_ID.fullmatch(config.station.id):
        raise ConfigError("station.id", "must be 1-32 of [a-z0-9-]")
    if not config.mqtt.url.startswith(("mqtt://", "mqtts://")):
        raise ConfigError("mqtt.url", "must start with mqtt:// or mqtts://")
    if config.printer.driver not in ("evolis", "ipp"):
        raise ConfigError("printer.driver", "must be 'evolis' or 'ipp'")
    if config.printer.driver == "ipp" and not config.printer.uri:
        raise ConfigError("printer.uri", "is required when printer.driver is 'ipp'")
    if config.printer.ribbon not in ("ymcko", "k"):
        raise ConfigError("printer.ribbon", "must be 'ymcko' or 'k'")
    if config.printer.colour_bits not in (5, 6, 7):
        raise ConfigError("printer.colour_bits", "must be 5, 6 or 7")
    if config.printer.rotate not in (90, 270):
        raise ConfigError("printer.rotate", "must be 90 or 270")
    if config.printer.max_attempts < 1:
        raise ConfigError("printer.max_attempts", "must be at least 1")
    if config.panel.language not in ("id", "en"):
        raise ConfigError("panel.language", "must be 'id' or 'en'")
    for key in ("session_expiry_s", "keepalive_s"):
        if getattr(config.mqtt, key) <= 0:
            raise ConfigError(f"mqtt.{key}", "must be positive")
