"""The station's configuration: every impossible value refused at start-up, each key named.

station.md (Configuration): unknown keys, wrong types and impossible values are errors
at start-up, all reported at once, each naming its key; exit 2.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from kiosk.station.config import ConfigError, from_dict
from tests.conftest import to_toml

IDENTITY = {"district": "3210", "id": "st-1"}
NAN, INF = float("nan"), float("inf")


def problems_of(settings: dict) -> dict[str, str]:
    """key → problem of the `ConfigError` *settings* raise (it must raise)."""
    with pytest.raises(ConfigError) as raised:
        from_dict({"station": dict(IDENTITY), **settings})
    return dict(raised.value.problems)


IMPOSSIBLE = [
    ("station", "district", "3210-st"), ("station", "district", "32"),
    ("station", "district", "abcd"), ("station", "id", "St 1"),
    ("station", "spool", ""), ("station", "min_free_mb", -1), ("station", "min_free_mb", NAN),
    ("mqtt", "url", "http://broker:1883"), ("mqtt", "url", "mqtt://"),
    ("mqtt", "url", "mqtt://broker:0"), ("mqtt", "url", "mqtt://broker:70000"),
    ("mqtt", "url", "mqtt://broker:1883/x"), ("mqtt", "topic_root", "ektp/#"),
    ("mqtt", "topic_root", "ektp/+/v1"), ("mqtt", "topic_root", ""),
    ("mqtt", "topic_root", "/ektp"), ("mqtt", "topic_root", "ektp//v1"),
    ("mqtt", "topic_root", "$SYS"), ("mqtt", "session_expiry_s", 0),
    ("mqtt", "session_expiry_s", 2**32), ("mqtt", "keepalive_s", 0),
    ("mqtt", "keepalive_s", 65536), ("mqtt", "ca_file", ""), ("mqtt", "username", ""),
    ("mqtt", "password_file", ""),
    ("printer", "port", ""), ("printer", "baud", 0), ("printer", "baud", -9600),
    ("printer", "ribbon", "ymc"), ("printer", "colour_bits", 8), ("printer", "rotate", 180),
    ("printer", "print_seconds", 0), ("printer", "setting_timeout_s", -1),
    ("printer", "download_timeout_s", INF), ("printer", "max_attempts", 0),
    ("printer", "poll_s", 0), ("printer", "poll_s", NAN), ("printer", "resync_s", 0),
    ("tray", "port", ""), ("tray", "low_threshold", -5), ("tray", "card_um", 0),
    ("tray", "card_um", -760), ("tray", "card_um", 50_000), ("tray", "empty_height_um", -1),
    ("tray", "mismatch_tolerance", -1), ("tray", "path_jam_s", 0),
    ("receipt", "port", ""),
    ("station", "documents", []), ("station", "documents", ["sim"]),
    ("panel", "lcd", "hdmi"), ("panel", "lcd", "i2c:1:0x99"), ("panel", "lcd", "i2c:x:0x27"),
    ("panel", "language", "fr"), ("panel", "hold_s", 0), ("panel", "button_ok", 40),
    ("panel", "led_red", -1), ("panel", "buzzer", 28),
    ("security", "keep_personal_data_h", NAN), ("security", "keep_personal_data_h", INF),
    ("security", "keep_personal_data_h", -1), ("security", "trusted_keys", [""]),
]


@pytest.mark.parametrize(("section", "key", "value"), IMPOSSIBLE)
def test_each_impossible_value_is_refused_naming_its_key(section, key, value):
    settings = {"station": dict(IDENTITY)}
    settings.setdefault(section, {})[key] = value
    with pytest.raises(ConfigError) as raised:
        from_dict(settings)
    assert [where for where, _ in raised.value.problems] == [f"{section}.{key}"]
    assert raised.value.lines()[0].startswith(f"{section}.{key}: ")


@pytest.mark.parametrize(("section", "key", "value"), [
    ("printer", "baud", "115200"), ("printer", "baud", True), ("printer", "poll_s", "1"),
    ("tray", "enabled", 1), ("security", "trusted_keys", "/etc/kiosk/district.pub"),
    ("panel", "lcd", 0),
])
def test_a_wrong_type_is_refused_naming_its_key(section, key, value):
    assert list(problems_of({section: {key: value}})) == [f"{section}.{key}"]


def test_keys_that_must_differ_or_go_together():
    assert problems_of({"panel": {"led_red": 5}}) == {
        "panel.led_red": "pin 5 is already panel.button_pause"}
    assert "panel.buzzer" in problems_of({"panel": {"lcd": "i2c:1:0x27", "buzzer": 3}})
    assert list(problems_of({"mqtt": {"cert_file": "/etc/kiosk/st.crt"}})) == ["mqtt.key_file"]
    assert list(problems_of({"security": {"trusted_keys": []}})) == ["security.trusted_keys"]


def test_every_problem_is_reported_at_once():
    problems = problems_of({
        "tray": {"card_um": 0, "low_threshold": -5, "colour": "red"},
        "printer": {"baud": 0, "port": "", "poll_s": 0, "ribbon": "x"},
        "mqtt": {"topic_root": "ektp/#"},
        "security": {"keep_personal_data_h": NAN},
        "screen": {},
    })
    assert set(problems) == {
        "tray.card_um", "tray.low_threshold", "tray.colour", "printer.baud", "printer.port",
        "printer.poll_s", "printer.ribbon", "mqtt.topic_root", "security.keep_personal_data_h",
        "screen"}
    assert problems["tray.colour"] == "unknown key"
    assert problems["screen"] == "unknown section"


def test_a_missing_identity_is_named_with_the_rest():
    with pytest.raises(ConfigError) as raised:
        from_dict({"printer": {"baud": 0}})
    assert dict(raised.value.problems) == {
        "printer.baud": "must be greater than 0, got 0",
        "station.district": "is required", "station.id": "is required"}


def test_an_empty_identity_is_required_not_malformed():
    with pytest.raises(ConfigError) as raised:
        from_dict({"station": {"district": "", "id": ""}})
    assert raised.value.problems == [("station.district", "is required"),
                                     ("station.id", "is required")]


def test_the_defaults_and_good_values_load():
    config = from_dict({
        "station": {"district": "3210", "id": "majalengka-01"},
        "mqtt": {"url": "mqtts://broker.example:8883", "topic_root": "ektp/v1",
                 "cert_file": "/etc/kiosk/st.crt", "key_file": "/etc/kiosk/st.key"},
        "printer": {"baud": 9600, "poll_s": 0.1, "ribbon": "k", "port": "socket://10.0.0.9:9100"},
        "tray": {"card_um": 760, "low_threshold": 0},
        "panel": {"lcd": "i2c:1:0x27"},
        "security": {"keep_personal_data_h": 0},
    })
    assert config.printer.baud == 9600
    assert config.topic_base == "ektp/v1/3210/majalengka-01"


BAD = {"station": dict(IDENTITY),
       "printer": {"baud": 0, "port": "", "poll_s": 0},
       "tray": {"card_um": 0, "low_threshold": -5},
       "mqtt": {"topic_root": "ektp/#"}}
BAD_KEYS = ("printer.baud", "printer.port", "printer.poll_s", "tray.card_um",
            "tray.low_threshold", "mqtt.topic_root")


def run_kiosk(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kiosk", *args], capture_output=True,
                          text=True, timeout=60)


def test_kiosk_run_exits_2_naming_every_key(tmp_path):
    config = tmp_path / "station.toml"
    config.write_text(to_toml(BAD))
    done = run_kiosk("run", "--config", str(config))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert "Traceback" not in done.stderr
    for key in BAD_KEYS:
        assert any(line.startswith(f"kiosk: configuration error: {key}: ") for line in lines), (
            key, done.stderr)


def test_kiosk_doctor_reports_what_kiosk_run_refuses(tmp_path):
    config = tmp_path / "station.toml"
    config.write_text(to_toml(BAD))
    refused = [line.removeprefix("kiosk: configuration error: ")
               for line in run_kiosk("run", "--config", str(config)).stderr.splitlines()]
    doctor = run_kiosk("doctor", "--config", str(config))
    assert doctor.returncode == 1
    reported = [line.removeprefix("FAIL config: ") for line in doctor.stdout.splitlines()
                if line.startswith("FAIL config: ")]
    assert reported == refused
    assert len(reported) == len(BAD_KEYS)


# -- [encoder] (chip.md) ------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "value"), [
    ("mode", "usb"), ("mode", ""), ("personalizer", "dukcapil"), ("personalizer", ""),
    ("timeout_s", 0), ("timeout_s", -1), ("timeout_s", NAN), ("timeout_s", INF),
    ("card_wait_s", 0), ("card_wait_s", -10), ("card_wait_s", INF),
    ("mode", 1), ("reader", 3), ("timeout_s", "60"), ("card_wait_s", True),
])
def test_each_impossible_encoder_value_is_refused_naming_its_key(key, value):
    assert list(problems_of({"encoder": {key: value}})) == [f"encoder.{key}"]


def test_an_unknown_personalizer_is_refused_with_those_installed():
    problem = problems_of({"encoder": {"personalizer": "dukcapil"}})["encoder.personalizer"]
    assert "must name an installed personalizer" in problem and "demo" in problem


def test_encoder_defaults_and_the_card_wait_by_mode():
    from kiosk.station.config import EncoderSection

    config = from_dict({"station": dict(IDENTITY)})
    assert config.encoder == EncoderSection(mode="none", reader="", personalizer="none",
                                            timeout_s=60.0, card_wait_s=None)
    wait = {mode: from_dict({"station": dict(IDENTITY), "encoder": {"mode": mode}}).encoder.wait_s
            for mode in ("inline", "desk")}
    assert wait == {"inline": 10.0, "desk": 120.0}
    chosen = from_dict({"station": dict(IDENTITY), "encoder": {
        "mode": "desk", "reader": "OMNIKEY 5022", "personalizer": "demo", "card_wait_s": 30}})
    assert (chosen.encoder.wait_s, chosen.encoder.reader) == (30, "OMNIKEY 5022")


def test_inline_encoding_needs_a_printer_that_stops_the_card_at_its_encoder():
    """Only the Evolis driver can hold a card at the contactless encoder (chip.md): inline
    with a print queue is refused at start-up, naming the key; desk mode is the way there."""
    with pytest.raises(ConfigError) as refused:
        from_dict({"station": dict(IDENTITY), "encoder": {"mode": "inline"},
                   "printer": {"driver": "ipp", "uri": "ipp://localhost/printers/card"}})
    assert "encoder.mode" in str(refused.value) and "evolis" in str(refused.value)
    assert from_dict({"station": dict(IDENTITY), "encoder": {"mode": "inline"}})
