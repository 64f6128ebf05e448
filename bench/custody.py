"""The register of blanks at a district's year: keeping it, and the reports read from it.

A year of one district (default 6 stations × 250 cards a day × 300 working days, 2 %
invalid: 450,000 blank events, 9,000 invalid) is kept through the keeper's own
`Register.add` (the cost per event the keeper pays, beside a bare INSERT of the same rows),
with a manifest of every UID. Then each report runs as its own process (as the operator
runs it) and is timed with its peak memory, beside a plain ``sqlite3`` query of the same
rows in a process of its own and an empty Python start:

- the berita acara of one month (about 750 lines) and of the whole year (9,000), PDF and CSV;
- the monthly report of one month.

Printed figures, not pass/fail.

    python bench/custody.py [--stations 6] [--cards 250] [--days 300] [--invalid 0.02]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kiosk.district.custody.blank import Blank  # noqa: E402
from kiosk.district.custody.register import Register  # noqa: E402

CATEGORIES = ("gagal-encode", "gagal-cetak", "rusak", "perubahan-elemen-data")
FIRST_DAY = date(2026, 1, 5)


def year(stations: int, cards: int, days: int, invalid: float):
    """(station, Blank) for every blank of the year, in time order."""
    every = round(1 / invalid)
    n = 0
    for day in range(days):
        start = (FIRST_DAY + timedelta(days=day + day // 5 * 2)).toordinal()
        base = (start - date(1970, 1, 1).toordinal()) * 86400 + 1 * 3600  # 08:00 WIB
        for card in range(cards):
            for station in range(stations):
                n += 1
                bad = n % every == 0
                yield f"st-{station + 1}", Blank(
                    "boot-1", n, base + card * 100 + station, f"04{n:012X}", f"R-{n:07d}",
                    "ektp", "invalid" if bad else "printed",
                    CATEGORIES[n // every % 4] if bad else None, "verify failed" if bad else "")


def fill(db: Path, args) -> tuple[int, float, float]:
    """Keep the year through Register.add; returns (events, seconds, bare INSERT seconds)."""
    register = Register(db)
    total = args.stations * args.cards * args.days
    register.receive("year.txt", ((n, f"04{n:012X}") for n in range(1, total + 1)),
                     FIRST_DAY.isoformat())
    started, count, batch = time.perf_counter(), 0, []
    for station, blank in year(args.stations, args.cards, args.days, args.invalid):
        batch.append((station, blank))
        if len(batch) == 500:  # the keeper's batch size under load
            with register.transaction():
                for item in batch:
                    register.add(*item)
            count, batch = count + len(batch), []
    with register.transaction():
        for item in batch:
            register.add(*item)
    count += len(batch)
    kept_s = time.perf_counter() - started
    register.close()
    bare = Path(tempfile.mkdtemp()) / "bare.db"
    connection = sqlite3.connect(bare, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("CREATE TABLE blanks (station, boot_id, seq, at, uid, record_id, document,"
                       " outcome, category, detail)")
    started = time.perf_counter()
    rows = ((s, b.boot_id, b.seq, b.at, b.uid, b.record_id, b.document, b.outcome, b.category,
             b.detail) for s, b in year(args.stations, args.cards, args.days, args.invalid))
    connection.execute("BEGIN")
    connection.executemany("INSERT INTO blanks VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
    connection.execute("COMMIT")
    bare_s = time.perf_counter() - started
    connection.close()
    return count, kept_s, bare_s


# Each run reports its own VmHWM (peak resident set) as it exits: rusage's ru_maxrss would
# carry this (large) process's high-water mark into the child across fork and exec.
PEAK = """
import atexit, os, runpy, sys
def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            open(os.environ["PEAK_FILE"], "w").write(line.split()[1])
atexit.register(peak)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__") if sys.argv[0].endswith(".py") else \
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


def measure(command: list[str], work: Path) -> tuple[float, float]:
    """(seconds, peak RSS MB) of one Python process running *command* (module or script)."""
    peak = work / "peak"
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK, *command], cwd=ROOT,
                          stdout=subprocess.DEVNULL, env={**os.environ, "PEAK_FILE": str(peak)})
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{command} failed: exit {done.returncode}")
    return seconds, int(peak.read_text()) / 1024


PLAIN = """
import sqlite3, sys
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo
tz = ZoneInfo("Asia/Jakarta")
first, last = date.fromisoformat(sys.argv[2]), date.fromisoformat(sys.argv[3])
start = datetime.combine(first, time(), tz).timestamp()
end = datetime.combine(last + timedelta(days=1), time(), tz).timestamp()
with sqlite3.connect(sys.argv[1]) as db:
    rows = db.execute("SELECT uid, category, at, station, record_id, detail FROM blanks"
                      " WHERE outcome = 'invalid' AND at >= ? AND at < ? ORDER BY at, id",
                      (start, end)).fetchall()
print(len(rows))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=int, default=6)
    parser.add_argument("--cards", type=int, default=250)
    parser.add_argument("--days", type=int, default=300)
    parser.add_argument("--invalid", type=float, default=0.02)
    args = parser.parse_args()
    console = Console()
    work = Path(tempfile.mkdtemp(prefix="custody-bench-"))
    db = work / "custody.db"
    console.print(f"keeping {args.stations} × {args.cards} × {args.days} blank events …")
    count, kept_s, bare_s = fill(db, args)
    console.print(f"kept {count} events in {kept_s:.1f} s ({count / kept_s:,.0f}/s, the"
                  f" keeper's checks and flags) beside {bare_s:.1f} s for a bare INSERT of the"
                  f" same rows ({count / bare_s:,.0f}/s); register {db.stat().st_size / 1e6:.0f}"
                  " MB")
    last_day = FIRST_DAY + timedelta(days=args.days + args.days // 5 * 2)
    month = ("2026-03-01", "2026-03-31")
    whole = (FIRST_DAY.isoformat(), last_day.isoformat())
    plain = work / "plain.py"
    plain.write_text(PLAIN)
    (work / "empty.py").write_text("")
    cli = ["kiosk.district.cli", "custody"]
    runs = [("empty Python start", [str(work / "empty.py")])]
    for label, (first, last) in (("a month", month), ("the year", whole)):
        runs.append((f"plain sqlite3 query, {label}", [str(plain), str(db), first, last]))
        for fmt in ("csv", "pdf"):
            runs.append((f"berita acara {fmt.upper()}, {label}", [
                *cli, "report", "--db", str(db), "--from", first, "--to", last, "--format", fmt,
                "-o", str(work / f"ba-{label.split()[-1]}.{fmt}")]))
    runs.append(("monthly report, March", [*cli, "monthly", "--db", str(db), "--month",
                                           "2026-03"]))
    table = Table(title=f"custody reports over {count:,} events")
    for column in ("run", "seconds", "peak RSS (MB)"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for label, command in runs:
        seconds, rss = measure(command, work)
        table.add_row(label, f"{seconds:.2f}", f"{rss:.0f}")
    console.print(table)
    for path in sorted(work.glob("ba-*")):
        console.print(f"{path.name}: {path.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
