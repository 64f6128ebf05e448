"""``kiosk status`` on a real spool file: the register of blanks and the foreign blanks."""

from __future__ import annotations

import io
import json
import subprocess
import sys

from kiosk.station.config import from_dict
from kiosk.station.spool import Spool
from tests.conftest import to_toml

UIDS = ("04A1B2C3D4E5F6", "04A1B2C3D4E5F7", "04A1B2C3D4E5F8", "04A1B2C3D4E5F9",
        "04A1B2C3D4E5FA", "04A1B2C3D4E5FB")


def settings(tmp_path) -> dict:
    return {"station": {"district": "3210", "id": "st-1", "spool": str(tmp_path / "spool.db")}}


def fill(path, *, foreign: dict[str, str] | None = None) -> None:
    """A spool as the station leaves it: blanks printed, spoiled, declared, and a reprint."""
    spool = Spool(path)
    try:
        for uid in UIDS[:3]:
            spool.register_blank(uid, f"R-{uid[-2:]}", "ektp", "printed", None, "")
        spool.register_blank(UIDS[3], "R-F9", "ektp", "invalid", "gagal-encode",
                             "GET DATA (UID): no status word")
        spool.register_blank(UIDS[4], "R-F9", "ektp", "invalid", "gagal-cetak", "CARD JAM")
        damaged = spool.register_blank(UIDS[5], None, "ektp", "printed", None, "")
        spool.declare_invalid(damaged.id, "rusak", "scratched in the tray")
        if foreign is not None:
            spool.set_meta("foreign_blanks", json.dumps(foreign))
    finally:
        spool.close()


def status_of(tmp_path) -> str:
    from kiosk.ops.status import print_status

    out = io.StringIO()
    print_status(from_dict(settings(tmp_path)), out)
    return out.getvalue()


def test_the_register_counts_printed_and_each_invalid_category(tmp_path):
    fill(tmp_path / "spool.db")
    assert ("Register of blanks: printed 3; invalid: gagal-encode 1, gagal-cetak 1, rusak 1,"
            " perubahan-elemen-data 0") in status_of(tmp_path).splitlines()


def test_an_empty_register_and_no_foreign_blanks(tmp_path):
    Spool(tmp_path / "spool.db").close()
    lines = status_of(tmp_path).splitlines()
    assert ("Register of blanks: printed 0; invalid: gagal-encode 0, gagal-cetak 0, rusak 0,"
            " perubahan-elemen-data 0") in lines
    assert "Foreign blanks named by the district: 0" in lines


def test_the_foreign_blanks_the_district_named(tmp_path):
    foreign = {"08112233": "R-77: in no shipment manifest",
               "04FFEEDDCCBBAA": "no record: in no shipment manifest"}
    fill(tmp_path / "spool.db", foreign=foreign)
    text = status_of(tmp_path)
    lines = text.splitlines()
    at = lines.index("Foreign blanks named by the district: 2")
    assert lines[at + 1:at + 3] == ["  04FFEEDDCCBBAA  no record: in no shipment manifest",
                                    "  08112233  R-77: in no shipment manifest"]


def test_kiosk_status_from_the_command_line(tmp_path):
    """The command a technician types, on the spool file the station wrote."""
    fill(tmp_path / "spool.db", foreign={"08112233": "R-77: in no shipment manifest"})
    config = tmp_path / "station.toml"
    config.write_text(to_toml(settings(tmp_path)))
    result = subprocess.run([sys.executable, "-m", "kiosk", "status", "--config", str(config)],
                            capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert "Register of blanks: printed 3; invalid: gagal-encode 1," in result.stdout
    assert "  08112233  R-77: in no shipment manifest" in result.stdout
