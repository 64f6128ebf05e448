"""The berita acara, the monthly report and the manifests, through the command line.

The register is filled with blank events as a station publishes them (parsed by the
keeper's own `parse_blank`); the PDF is read back with poppler's ``pdftotext``. Bad input
(a malformed manifest, an empty period, an unreadable records file) gets exit 2, a
message naming the file and line, and changes nothing.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from kiosk.district.cli import main
from kiosk.district.custody import CATEGORY_LABELS
from kiosk.district.custody.blank import parse_blank
from kiosk.district.custody.register import Register

INSTALL_HINT = "pdftotext is missing: run scripts/setup, or 'sudo apt-get install poppler-utils'"
CATEGORIES = ("gagal-encode", "gagal-cetak", "rusak", "perubahan-elemen-data")


def event(seq: int, uid: str | None, outcome: str, category: str | None, record_id: str,
          ts: str, detail: str = "") -> bytes:
    return json.dumps({"schema": "ektp.event/1", "boot_id": "boot-1", "seq": seq, "ts": ts,
                       "type": "blank", "uid": uid, "record_id": record_id,
                       "document": "ektp", "outcome": outcome, "category": category,
                       "detail": detail}).encode()


@pytest.fixture
def db(tmp_path) -> Path:
    """Two stations, 1-3 December 2026 (WIB): 30 printed, 12 invalid (3 per category)."""
    path = tmp_path / "custody.db"
    register = Register(path)
    seq = 0
    with register.transaction():
        for n in range(42):
            seq += 1
            invalid = n % 7 == 3 or n >= 36
            category = CATEGORIES[n % 4] if invalid else None
            # 01:00Z on the 1st is 08:00 WIB; some at 18:30Z: the next day in WIB
            ts = f"2026-12-0{1 + n % 3}T{'18:30' if n % 5 == 0 else '01:00'}:{n:02d}Z"
            register.add(f"st-{1 + n % 2}", parse_blank(event(
                seq, f"04A1B2C3D4{n:04X}", "invalid" if invalid else "printed", category,
                f"R-{n:04d}", ts, "verify failed" if invalid else "")))
    register.close()
    return path


def invalid_rows(db: Path, first="2026-12-01", last="2026-12-03") -> list[tuple]:
    import sqlite3
    from datetime import date

    from kiosk.district.custody.period import days, zone

    start, end = days(date.fromisoformat(first), date.fromisoformat(last), zone("Asia/Jakarta"))
    with sqlite3.connect(db) as connection:
        return connection.execute(
            "SELECT uid, category, station, record_id FROM blanks WHERE outcome = 'invalid'"
            " AND at >= ? AND at < ? ORDER BY at, id", (start, end)).fetchall()


def pdf_text(path: Path) -> str:
    if shutil.which("pdftotext") is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True,
                          capture_output=True, text=True, timeout=60).stdout


def report(db: Path, out: Path, *extra: str) -> int:
    return main(["custody", "report", "--db", str(db), "--from", "2026-12-01", "--to",
                 "2026-12-03", "-o", str(out), "--office",
                 "Dinas Kependudukan dan Pencatatan Sipil Kabupaten Majalengka", *extra])


def test_the_pdf_lists_every_invalid_blank_with_totals_and_places_to_sign(db, tmp_path):
    out = tmp_path / "ba.pdf"
    assert report(db, out, "--format", "pdf") == 0
    text = pdf_text(out)
    expected = invalid_rows(db)
    assert len(expected) >= 10  # one falls on 4 December WIB (18:30Z on the 3rd)
    lines = text.splitlines()
    for uid, category, station, record_id in expected:
        line = next((line for line in lines if uid in line), None)
        assert line is not None, f"{uid} is not in the berita acara"
        for cell in (record_id, station, CATEGORY_LABELS[category]):
            assert cell in line, f"{cell} not on the line of {uid}: {line}"
    for phrase in ("BERITA ACARA PEMUSNAHAN BLANKO KTP-EL TIDAK VALID", "Kabupaten Majalengka",
                   "1 Desember 2026 s.d. 3 Desember 2026 (waktu WIB)",
                   "Rekapitulasi per kategori", "Yang memusnahkan", "Mengetahui", "NIP"):
        assert phrase in text, f"{phrase!r} missing"
    totals = [sum(1 for row in expected if row[1] == c) for c in CATEGORIES]
    after = lines[next(i for i, line in enumerate(lines) if "Rekapitulasi" in line):]
    heading = next(line for line in after if "Gagal encode" in line)
    assert heading.split() == ["Gagal", "encode", "Gagal", "cetak", "Rusak", "Perubahan",
                               "elemen", "data", "Jumlah"]
    numbers = next(line.split() for line in after if line.split()
                   and all(cell.isdigit() for cell in line.split()))
    assert numbers == [str(n) for n in [*totals, len(expected)]]


def test_dates_are_the_office_days_and_one_station_can_be_asked(db, tmp_path):
    out = tmp_path / "ba.csv"
    assert main(["custody", "report", "--db", str(db), "--from", "2026-12-02", "--to",
                 "2026-12-02", "--station", "st-2", "--format", "csv", "-o", str(out)]) == 0
    got = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    expected = [row for row in invalid_rows(db, "2026-12-02", "2026-12-02")
                if row[2] == "st-2"]
    assert [(r["uid"], r["stasiun"], r["record_id"]) for r in got] == [
        (uid, station, record_id) for uid, _, station, record_id in expected]
    assert all(r["tanggal_waktu"].startswith("2026-12-02T") and
               r["tanggal_waktu"].endswith("+07:00") for r in got)


def test_names_and_niks_come_from_the_records_file_and_are_never_stored(db, tmp_path):
    records = tmp_path / "export.jsonl"
    people = {row[3]: (f"NAMA ORANG {n}", f"32100112{n:08d}")
              for n, row in enumerate(invalid_rows(db))}
    records.write_text("".join(json.dumps({"record_id": rid, "nik": nik,
                                           "fields": {"nama": nama}}) + "\n"
                               for rid, (nama, nik) in people.items()))
    before = db.read_bytes()
    out = tmp_path / "ba.pdf"
    assert report(db, out, "--records", str(records)) == 0
    text = pdf_text(out)
    for rid, (nama, nik) in people.items():
        line = next(line for line in text.splitlines() if rid in line)
        assert nama in line and nik in line, line
    assert db.read_bytes() == before  # the register is not written by a report
    for path in db.parent.glob("custody.db*"):
        assert b"NAMA ORANG" not in path.read_bytes()
    as_csv = tmp_path / "people.csv"
    as_csv.write_text("record_id,nik,nama,alamat\n" + "".join(
        f"{rid},{nik},{nama},JL X\n" for rid, (nama, nik) in people.items()))
    out_csv = tmp_path / "ba.csv"
    assert report(db, out_csv, "--records", str(as_csv), "--format", "csv") == 0
    rows = list(csv.DictReader(io.StringIO(out_csv.read_text(encoding="utf-8-sig"))))
    assert {r["record_id"]: (r["nama"], r["nik"]) for r in rows} == people


def test_a_report_for_an_empty_period_says_so_and_writes_nothing(db, tmp_path, capsys):
    out = tmp_path / "ba.pdf"
    assert main(["custody", "report", "--db", str(db), "--from", "2026-11-01", "--to",
                 "2026-11-30", "-o", str(out)]) == 2
    assert "no invalid blank from 2026-11-01 to 2026-11-30" in capsys.readouterr().err
    assert not out.exists()
    assert main(["custody", "report", "--db", str(db), "--from", "2026-12-03", "--to",
                 "2026-12-01", "-o", str(out)]) == 2
    assert "--from 2026-12-03 is after --to 2026-12-01" in capsys.readouterr().err
    assert main(["custody", "report", "--db", str(tmp_path / "none.db"), "--from",
                 "2026-12-01", "--to", "2026-12-01", "-o", str(out)]) == 2
    assert "no register at" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists() and not out.exists()


@pytest.mark.parametrize(("content", "message"), [
    (None, "cannot read"),
    ('{"record_id": "R-1", "nik": "3210011201900001", "fields": {"nama": "A"}}\nnot json\n',
     ":2: not JSON"),
    ('{"record_id": "R-1", "fields": {"nama": "A"}}\n', ":1: record R-1 has no nik or nama"),
    ('{"record_id": "R-1", "nik": "1", "fields": {"nama": "A"}}\n' * 2, ":2: record_id R-1"),
])
def test_an_unreadable_records_file_is_named_and_nothing_is_written(db, tmp_path, capsys,
                                                                     content, message):
    records = tmp_path / "export.jsonl"
    if content is not None:
        records.write_text(content)
    out = tmp_path / "ba.pdf"
    assert report(db, out, "--records", str(records)) == 2
    err = capsys.readouterr().err
    assert str(records) in err and message in err, err
    assert not out.exists()


# -- manifests -------------------------------------------------------------------------


def receive(db: Path, manifest: Path, *extra: str) -> int:
    return main(["custody", "receive", "--db", str(db), str(manifest), *extra])


def manifest_uids(db: Path) -> list[str]:
    import sqlite3

    with sqlite3.connect(db) as connection:
        return [row[0] for row in connection.execute("SELECT uid FROM manifest ORDER BY uid")]


def test_a_manifest_is_loaded_from_lines_or_a_csv_uid_column(tmp_path, capsys):
    db = tmp_path / "custody.db"
    plain = tmp_path / "kiriman-1.txt"
    plain.write_text("# kiriman 1\n04a1b2c3d4e5f6\n\n04:A1:B2:C3:D4:E5:F7\n")
    assert receive(db, plain, "--date", "2026-12-01") == 0
    table = tmp_path / "kiriman-2.csv"
    table.write_text("box,uid\n1,0422334455667788990A\n1,DEADBEEF\n")
    assert receive(db, table) == 0
    assert manifest_uids(db) == ["0422334455667788990A", "04A1B2C3D4E5F6", "04A1B2C3D4E5F7",
                                 "DEADBEEF"]
    assert "2 blanks received on 2026-12-01 from kiriman-1.txt" in capsys.readouterr().out


@pytest.mark.parametrize(("content", "message"), [
    ("04A1B2C3D4E5F6\nhello\n", ":2: 'hello' is not a chip UID"),
    ("04A1B2C3D4E5F6\n04A1B2C3D4E5\n", ":2: '04A1B2C3D4E5' is not a chip UID"),
    ("04A1B2C3D4E5F6\nDEADBEEF\n04a1b2c3d4e5f6\n", ":3: UID 04A1B2C3D4E5F6 is already on line 1"),
    ("", "no UID in the file"),
    ("uid\n\n", "no UID in the file"),
    ("box,uid\n1,DEADBEEF\n2\n", ":3: no uid cell on this line"),
    ("DEADBEEF\nCAFED00D\n", ":2: UID CAFED00D was already received with first.txt"),
])
def test_a_malformed_manifest_names_its_line_and_loads_nothing(tmp_path, capsys, content,
                                                                message):
    db = tmp_path / "custody.db"
    first = tmp_path / "first.txt"
    first.write_text("CAFED00D\n")
    assert receive(db, first) == 0
    capsys.readouterr()
    manifest = tmp_path / "bad.txt"
    manifest.write_text(content)
    assert receive(db, manifest) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert manifest_uids(db) == ["CAFED00D"]


# -- the monthly report ------------------------------------------------------------------


def test_the_monthly_report_balances_received_on_hand_printed_and_invalid(tmp_path, capsys):
    db = tmp_path / "custody.db"
    manifest = tmp_path / "kiriman.txt"
    manifest.write_text("".join(f"04A1B2C3D4{n:04X}\n" for n in range(20)))
    assert receive(db, manifest, "--date", "2026-11-28") == 0
    register = Register(db)
    with register.transaction():
        seq = 0
        for n in range(12):  # 8 printed, 4 invalid (one per category), over two stations
            seq += 1
            invalid = n >= 8
            register.add(f"st-{1 + n % 2}", parse_blank(event(
                seq, f"04A1B2C3D4{n:04X}", "invalid" if invalid else "printed",
                CATEGORIES[n - 8] if invalid else None, f"R-{n}",
                f"2026-12-0{1 + n % 5}T02:00:00Z")))
        seq += 1  # a card printed in December, declared changed in January
        register.add("st-1", parse_blank(event(seq, "04A1B2C3D40000", "invalid",
                                               "perubahan-elemen-data", "R-0",
                                               "2027-01-05T02:00:00Z")))
        seq += 1  # a blank in no manifest
        register.add("st-2", parse_blank(event(seq, "CAFEBABE", "printed", None, "R-x",
                                               "2026-12-09T02:00:00Z")))
    register.close()
    capsys.readouterr()
    assert main(["custody", "monthly", "--db", str(db), "--month", "2026-12"]) == 0
    text = capsys.readouterr().out
    assert "Bulan: Desember 2026" in text
    assert "diterima 20 = ada 8 + dicetak 8 + tidak valid 4" in text
    assert "1 blanko asing" in text
    out = tmp_path / "m.csv"
    assert main(["custody", "monthly", "--db", str(db), "--month", "2026-12", "--format",
                 "csv", "-o", str(out)]) == 0
    rows = {r["stasiun"]: r for r in csv.DictReader(io.StringIO(
        out.read_text(encoding="utf-8-sig")))}
    assert (rows["st-1"]["dicetak"], rows["st-2"]["dicetak"]) == ("4", "5")
    assert rows["KABUPATEN/KOTA"]["dicetak"] == "9"
    assert rows["KABUPATEN/KOTA"]["tidak_valid"] == "4"
    capsys.readouterr()
    assert main(["custody", "monthly", "--db", str(db), "--month", "2027-01"]) == 0
    january = capsys.readouterr().out  # R-0 moved from printed to invalid: still balanced
    assert "diterima 20 = ada 8 + dicetak 7 + tidak valid 5" in january
    assert main(["custody", "monthly", "--db", str(db), "--month", "2027-13"]) == 2
    assert "is not YYYY-MM" in capsys.readouterr().err
