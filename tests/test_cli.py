"""The `kiosk` command line: simulators for hardware-in-the-loop work, exit codes."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
import serial

from kiosk.devices.tray import nmea


def start(*argv: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kiosk", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)


def stop(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=10)


@pytest.mark.parametrize(("device", "question", "answer"), [
    ("printer", b"\x1bRfv\r", b"SIM"),
    ("tray", nmea.build("PKSKC", "PING"), b"$PKSKA,PING"),
    ("receipt", b"\x10\x04\x01", b"\x12"),
])
def test_sim_prints_its_port_first_and_answers_there(device, question, answer):
    process = start("sim", device)
    try:
        path = process.stdout.readline().strip()
        assert path.startswith("/dev/pts/")
        with serial.serial_for_url(path, 115200, timeout=3) as port:
            port.reset_input_buffer()
            port.write(question)
            reply = b""
            while answer not in reply:
                chunk = port.read(64)
                assert chunk, f"no answer from the {device} simulator"
                reply += chunk
    finally:
        assert stop(process) == 0


def test_sim_printer_link_and_dump(tmp_path):
    link = tmp_path / "printer"
    process = start("sim", "printer", "--link", str(link), "--dump", str(tmp_path / "cards"))
    try:
        assert process.stdout.readline().strip() == str(link)
        assert link.is_symlink()
    finally:
        assert stop(process) == 0


def test_bad_configuration_exits_2_naming_the_key(tmp_path):
    config = tmp_path / "station.toml"
    config.write_text('[station]\ndistrict = "3210"\nid = "st-1"\n[printer]\nbaud = "fast"\n')
    result = subprocess.run([sys.executable, "-m", "kiosk", "run", "--config", str(config)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "printer.baud" in result.stderr and "integer" in result.stderr
    config.write_text('[station]\ndistrict = "3210"\nid = "st-1"\nspeed = 3\n')
    result = subprocess.run([sys.executable, "-m", "kiosk", "status", "--config", str(config)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "station.speed: unknown key" in result.stderr


def test_status_shows_the_spool_without_personal_data(tmp_path):
    import json

    from kiosk.sim.samples import make_record
    from kiosk.station.spool import Spool

    record = make_record(1)
    spool = Spool(tmp_path / "spool.db")
    with spool.transaction():
        spool.add_job(record["record_id"], 0, "************" + record["nik"][-4:],
                      json.dumps(record).encode())
        spool.book("refill", 50)
    spool.close()
    config = tmp_path / "station.toml"
    config.write_text(f'[station]\ndistrict = "3210"\nid = "st-1"\n'
                      f'spool = "{tmp_path / "spool.db"}"\n')
    result = subprocess.run([sys.executable, "-m", "kiosk", "status", "--config", str(config)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert record["record_id"] in result.stdout and "pending" in result.stdout
    assert record["nik"] not in result.stdout and record["fields"]["nama"] not in result.stdout
    assert "in the tray 50" in result.stdout
