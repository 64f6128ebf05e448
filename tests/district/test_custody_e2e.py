"""Issue 27 end to end on real parts: two stations encoding chips inline, the custody keeper,
and the district's berita acara and monthly report, from one run with faults.

Real Mosquitto; two real stations (kiosk.station.loop.Station, ``[encoder] mode =
"inline"``, personalizer ``demo``), each with an Evolis printer simulator on a pty whose
blanks carry chips laid on one of the two readers of a private pcscd (vpcd and the
project's chip emulator); the keeper (``custody keep``) on the same broker; the district's
command line (``custody receive | report | monthly``) in this process.

The run: a manifest is received first (every UID the printers will use but one, and some
the office keeps); st-1's first chip fails its write (gagal-encode), a card jams at st-1
(gagal-cetak), a download goes unanswered at st-2 (gagal-cetak) and its retry takes a blank
outside every manifest (foreign: flagged at the district and at st-2 within seconds); the
district declares one printed card of st-1 damaged (``invalidate``, rusak) and withdraws
the foreign blank the same way. Then the berita acara (CSV, and PDF read back with
pdftotext) lists exactly the invalid blanks the stations reported, which are exactly the
blanks the printers rejected plus the two declared; the monthly report balances (received
= on hand + printed + invalid) for the district, its on hand is what lies in the feeders
and the office, and per station the district's figures are the station's own register,
whose stock balances too (refilled = remaining + printed + invalid).
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections import Counter
from datetime import datetime

import pytest

from kiosk.district.custody import CATEGORIES, CATEGORY_LABELS
from kiosk.district.custody.period import zone
from kiosk.sim.chip import seeded_uids
from tests.district.test_custody_report import pdf_text
from tests.sim.test_chip import pcsc, pcsc_parts  # noqa: F401  (fixtures)
from tests.support.custody import (
    ChipStation,
    NoteWatcher,
    csv_rows,
    custody,
    keeper_running,
)
from tests.support.wait import wait_until

WIB = zone("Asia/Jakarta")
FOREIGN = "04F00DCAFE0001"
FEEDER = 12
FLAG_WITHIN_S = 5.0  # "within seconds": station → keeper → station → alert and state


@pytest.fixture
def stations(tmp_path, broker, district_key, pcsc):  # noqa: F811
    """st-1 on reader "Kiosk Encoder", st-2 on "Kiosk Desk"; st-2's third blank is foreign."""
    uids_2 = seeded_uids(202, FEEDER - 1)
    uids_2.insert(2, bytes.fromhex(FOREIGN))
    made = {
        "st-1": ChipStation("st-1", tmp_path / "st-1", broker_url=broker.url,
                            public_key=str(district_key[1]), reader="Kiosk Encoder",
                            encoder_port=pcsc.reader("Kiosk Encoder").port,
                            uids=seeded_uids(101, FEEDER), feeder=FEEDER),
        "st-2": ChipStation("st-2", tmp_path / "st-2", broker_url=broker.url,
                            public_key=str(district_key[1]), reader="Kiosk Desk",
                            encoder_port=pcsc.reader("Kiosk Desk").port, uids=uids_2,
                            feeder=FEEDER),
    }
    yield made
    for station in made.values():
        station.stop()


def office_day() -> str:
    return datetime.now(WIB).date().isoformat()


def completed(district, records, timeout=60.0) -> None:
    ids = [record["record_id"] for record in records]
    wait_until(lambda: all(district.final_state(rid) == "completed" for rid in ids),
               timeout, what=f"{ids} completed")


def blank_events(district) -> list[dict]:
    """The blank events the stations sent, each once (station, boot_id, seq), as heard."""
    seen, out = set(), []
    for event in district.events_of("blank"):
        key = (event["station"], event["boot_id"], event["seq"])
        if key not in seen:
            seen.add(key)
            out.append(event)
    return out


def kept_events(db) -> int:
    with sqlite3.connect(db) as connection:
        return connection.execute("SELECT COUNT(*) FROM blanks").fetchone()[0]


def notices(db) -> tuple[int, int]:
    """(foreign-blank commands the keeper owed, those not answered yet)."""
    with sqlite3.connect(db) as connection:
        return connection.execute("SELECT COUNT(*), COUNT(*) - COUNT(answered_at)"
                                  " FROM notices").fetchone()


def test_a_day_of_two_chip_stations_with_faults_gives_the_berita_acara_and_a_balanced_month(
        tmp_path, broker, district, signed, stations):
    st1, st2 = stations["st-1"], stations["st-2"]
    db = tmp_path / "custody.db"
    first_day = office_day()
    shipped = [uid for station in (st1, st2) for uid in station.uids if uid != FOREIGN]
    office = [uid.hex().upper() for uid in seeded_uids(303, 5)]  # never put in a printer
    manifest = tmp_path / "kiriman-1.txt"
    manifest.write_text("".join(f"{uid}\n" for uid in shipped + office))
    received = len(shipped) + len(office)
    assert f"{received} blanks received" in custody(
        "receive", "--db", str(db), "--date", first_day, str(manifest))
    notes = NoteWatcher(broker.url)
    try:
        with keeper_running(broker.url, db):
            run_the_day(district, signed, st1, st2, notes, db)
            events = blank_events(district)
            wait_until(lambda: kept_events(db) == len(events), 10, what="every event kept")
            the_foreign_warning_stays_cleared(district, db, st2)
            with sqlite3.connect(db) as connection:  # its declaration is foreign too
                assert connection.execute("SELECT uid, outcome FROM blanks WHERE foreign_uid"
                                          " = 1 ORDER BY id").fetchall() == [
                    (FOREIGN, "printed"), (FOREIGN, "invalid")]
            # Only that blank, told once: every other UID used is in the manifest.
            assert [n["uid"] for n in notes.of("foreign-blank-warning")] == [FOREIGN]
            assert not notes.of("duplicate-uid")
            ledgers = {s.name: s.station.spool.ledger() for s in (st1, st2)}
    finally:
        notes.close()
    last_day = office_day()

    invalid = [(e["uid"], e["category"], e["station"], e["record_id"]) for e in events
               if e["outcome"] == "invalid"]
    # What the stations reported is what happened to the blanks in the printers...
    rejected = {card.uid for station in (st1, st2) for card in station.sim.rejected_cards}
    assert {uid for uid, category, *_ in invalid
            if category in ("gagal-encode", "gagal-cetak")} == rejected
    assert Counter(category for _, category, *_ in invalid) == {
        "gagal-encode": 1, "gagal-cetak": 2, "rusak": 2}
    # ...and what each station's own register says.
    for station in (st1, st2):
        assert sorted(row for row in station.register() if row[2] == "invalid") == sorted(
            (uid, rid, "invalid", category) for uid, category, name, rid in invalid
            if name == station.name)

    the_berita_acara_lists_them(tmp_path, db, first_day, last_day, invalid)
    the_month_balances(tmp_path, db, events, received, (st1, st2), ledgers, last_day)


def run_the_day(district, signed, st1: ChipStation, st2: ChipStation, notes: NoteWatcher,
                db) -> None:
    """Records at both stations with the faults at their moments, the foreign blank
    flagged, then one printed card and the foreign blank declared rusak by the district."""
    st1.sim.fail_next_chip("write-fails")  # st-1's first blank: gagal-encode
    st1.start(district)
    st2.start(district)
    for name in ("st-1", "st-2"):
        assert district.command(name, "refill", {"count": FEEDER})["ok"] is True
    a = [signed(i) for i in range(1, 5)]
    b = [signed(i) for i in range(11, 14)]
    district.publish_record("st-1", a[0])
    district.publish_record("st-2", b[0])
    completed(district, [a[0], b[0]])
    st1.sim.inject("Se", "CARD JAM")  # gagal-cetak at st-1
    st2.sim.inject("Db", "no-reply")  # gagal-cetak at st-2; its retry takes the foreign blank
    for station, records in ((st1, a[1:]), (st2, b[1:])):
        for record in records:
            district.publish_record(station.name, record)
    wait_until(lambda: "media-jam-error" in district.states["st-1"]["printer_state_reasons"],
               30, what="st-1 jammed")
    st1.sim.clear_jam()  # the operator pulls the card out
    completed(district, a + b)
    the_foreign_blank_is_flagged_within_seconds(district, notes, db)

    reply = district.command("st-1", "invalidate", {
        "category": "rusak", "reason": "dropped at the desk", "record_id": a[2]["record_id"]})
    assert reply["ok"] is True, reply
    reply = district.command("st-2", "invalidate", {
        "category": "rusak", "reason": "not of our shipments: withdrawn", "uid": FOREIGN})
    assert reply["ok"] is True, reply
    wait_until(lambda: any(a["station"] == "st-2" and a["reason"] == "foreign-blank-warning"
                           and a.get("cleared") for a in district.events_of("alert")),
               10, what="st-2's warning cleared once the blank is declared")


def the_foreign_blank_is_flagged_within_seconds(district, notes: NoteWatcher, db) -> None:
    wait_until(lambda: any(e["uid"] == FOREIGN for e in blank_events(district)), 30,
               what="st-2's blank event of the foreign UID")
    told_at = time.monotonic()
    note = wait_until(lambda: notes.of("foreign-blank-warning"), FLAG_WITHIN_S,
                      what="the keeper's note on _custody/events")[0]
    assert (note["uid"], note["station"]) == (FOREIGN, "st-2")
    with sqlite3.connect(db) as connection:  # the note is sent after the commit
        assert connection.execute("SELECT station, uid, outcome FROM blanks WHERE foreign_uid"
                                  " = 1").fetchall() == [("st-2", FOREIGN, "printed")]
    wait_until(lambda: any(a["station"] == "st-2" and a["reason"] == "foreign-blank-warning"
                           and not a.get("cleared") for a in district.events_of("alert")),
               FLAG_WITHIN_S, what="st-2's foreign-blank-warning alert event")
    assert time.monotonic() - told_at < FLAG_WITHIN_S


def the_foreign_warning_stays_cleared(district, db, station: ChipStation) -> None:
    """Once the district has declared the foreign blank, the keeper has kept that event and
    every notice it owes is answered (the sign it had its chance to tell the station again),
    the warning is still cleared: the last alert of it says so, the station keeps none."""
    wait_until(lambda: notices(db) == (1, 0), 10, what="the one notice answered")
    alerts = [a for a in district.events_of("alert") if a["station"] == station.name
              and a["reason"] == "foreign-blank-warning"]
    assert [a.get("cleared", False) for a in alerts] == [False, True]
    assert json.loads(station.meta("foreign_blanks", "{}")) == {}


def the_berita_acara_lists_them(tmp_path, db, first_day, last_day, invalid) -> None:
    period = ("--db", str(db), "--from", first_day, "--to", last_day)
    out = tmp_path / "ba.csv"
    custody("report", *period, "--format", "csv", "-o", str(out))
    assert [(r["uid"], r["kategori"], r["stasiun"], r["record_id"]) for r in csv_rows(out)] \
        == [(uid, CATEGORY_LABELS[category], station, rid)
            for uid, category, station, rid in invalid]
    pdf = tmp_path / "ba.pdf"
    custody("report", *period, "--format", "pdf", "-o", str(pdf))
    lines = pdf_text(pdf).splitlines()
    table = [line.split(maxsplit=2) for line in lines if re.match(r"\s*\d+\s+[0-9A-F]{8}", line)]
    assert [(number, uid) for number, uid, _ in table] == [
        (str(n), uid) for n, (uid, *_) in enumerate(invalid, 1)]  # the lines in time order
    for (_, _, line), (_, category, station, rid) in zip(table, invalid, strict=True):
        for cell in (CATEGORY_LABELS[category], station, rid):
            assert cell in line, f"{cell} not on the line: {line}"
    after = lines[next(i for i, line in enumerate(lines) if "Rekapitulasi" in line):]
    totals = next(line.split() for line in after
                  if line.split() and all(cell.isdigit() for cell in line.split()))
    counts = Counter(category for _, category, *_ in invalid)
    assert totals == [str(counts[c]) for c in CATEGORIES] + [str(len(invalid))]


def the_month_balances(tmp_path, db, events, received, stations, ledgers, last_day) -> None:
    month = last_day[:7]
    out = tmp_path / "month.csv"
    custody("monthly", "--db", str(db), "--month", month, "--format", "csv", "-o", str(out))
    rows = {row["stasiun"]: row for row in csv_rows(out)}
    district = rows.pop("KABUPATEN/KOTA")
    stock = [int(district[k]) for k in ("stok_diterima", "stok_ada", "stok_dicetak",
                                        "stok_tidak_valid")]
    assert stock[0] == received == stock[1] + stock[2] + stock[3]
    last = {}  # each manifest blank's last outcome, as the stations told it
    for event in events:
        if event["uid"] != FOREIGN:
            last[event["uid"]] = event["outcome"]
    assert stock[2:] == [Counter(last.values())["printed"], Counter(last.values())["invalid"]]
    # On hand is what still lies in the two feeders and at the office.
    assert stock[1] == sum(station.sim.feeder for station in stations) + 5
    text = custody("monthly", "--db", str(db), "--month", month)
    assert (f"diterima {stock[0]} = ada {stock[1]} + dicetak {stock[2]} + tidak valid"
            f" {stock[3]}") in text
    assert "TIDAK SEIMBANG" not in text and "1 blanko asing" in text
    assert sorted(rows) == [station.name for station in stations]
    for station in stations:
        row, own, ledger = rows[station.name], station.register(), ledgers[station.name]
        assert int(row["dicetak"]) == sum(1 for e in events if e["station"] == station.name
                                          and e["outcome"] == "printed")
        for category in CATEGORIES:
            assert int(row[category]) == sum(1 for r in own if r[3] == category)
        assert int(row["tidak_valid"]) == sum(1 for r in own if r[2] == "invalid")
        # The station's own stock: refilled = remaining + printed + invalid (its register).
        assert ledger.refills == FEEDER
        assert ledger.refills == ledger.remaining + len(own)
        assert ledger.remaining == station.sim.feeder


# -- the station's side of a foreign blank, one station --------------------------------------


@pytest.fixture
def one_station(tmp_path, broker, district_key, pcsc):  # noqa: F811
    """st-1 whose first blank is foreign; the rest are in the manifest it returns."""
    uids = [bytes.fromhex(FOREIGN), *seeded_uids(404, 5)]
    station = ChipStation("st-1", tmp_path / "st-1", broker_url=broker.url,
                          public_key=str(district_key[1]), reader="Kiosk Encoder",
                          encoder_port=pcsc.reader("Kiosk Encoder").port, uids=uids,
                          feeder=len(uids))
    manifest = tmp_path / "kiriman.txt"
    manifest.write_text("".join(f"{uid}\n" for uid in station.uids[1:]))
    yield station, manifest
    station.stop()


def test_a_foreign_blank_stands_in_the_stations_retained_state_within_seconds(
        tmp_path, broker, district, signed, one_station):
    """The brief of issue 27: flagged at the station in its alert event and in its retained
    state's printer_state_reasons (where the district page and every watcher read what
    stands at a station)."""
    station, manifest = one_station
    db = tmp_path / "custody.db"
    custody("receive", "--db", str(db), str(manifest))
    with keeper_running(broker.url, db):
        station.start(district)
        record = signed(1)
        district.publish_record("st-1", record)
        completed(district, [record])
        wait_until(lambda: any(e["uid"] == FOREIGN for e in blank_events(district)), 10,
                   what="the foreign blank's event")
        told_at = time.monotonic()
        wait_until(lambda: any(a["reason"] == "foreign-blank-warning"
                               for a in district.events_of("alert")), FLAG_WITHIN_S,
                   what="the alert event")
        wait_until(lambda: "foreign-blank-warning" in district.states["st-1"][
            "printer_state_reasons"], FLAG_WITHIN_S - (time.monotonic() - told_at),
            what="foreign-blank-warning in st-1's retained printer_state_reasons")


def test_a_foreign_blank_declared_before_the_district_says_so_leaves_no_warning_standing(
        tmp_path, broker, district, one_station):
    """A damaged blank found in the tray is declared by its UID (``invalidate``, never
    taken); its UID is in no manifest, so the keeper tells the station it is foreign. The
    warning must not stand for ever: the blank is declared already, and declaring it again
    is refused (already-invalid), so nothing could clear it."""
    station, manifest = one_station
    db = tmp_path / "custody.db"
    custody("receive", "--db", str(db), str(manifest))
    with keeper_running(broker.url, db):
        station.start(district)
        args = {"category": "rusak", "reason": "found cracked in the tray", "uid": FOREIGN}
        assert district.command("st-1", "invalidate", args)["ok"] is True
        wait_until(lambda: notices(db) == (1, 0), 10, what="the keeper's notice answered")
        again = district.command("st-1", "invalidate", args)
        assert (again["ok"], again.get("error")) == (False, "already-invalid")
        assert json.loads(station.meta("foreign_blanks", "{}")) == {}, (
            "foreign-blank-warning stands for a blank the station has declared invalid,"
            " and declaring it again is refused: nothing can clear it")
