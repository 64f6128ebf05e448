"""``kiosk district custody keep | receive | report | monthly``: the register on the command line.

- ``keep``: the service that keeps every ``blank`` event (keep.py), until SIGTERM/SIGINT;
- ``receive MANIFEST``: load a shipment's UIDs (manifest.py);
- ``report --from DATE --to DATE [--station S] --format pdf|csv [--records FILE] [-o OUT]``:
  the berita acara (report.py);
- ``monthly --month YYYY-MM [--format text|csv] [-o OUT]``: the monthly report (monthly.py).

Every one takes ``--db`` (the register's file, default ``custody.db``). Exit codes as the
other district commands: 0 ok, 2 bad usage or input (the message names the file and line;
nothing is changed or written), 1 other failure.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
from datetime import date, datetime
from pathlib import Path

from kiosk.district.custody import DEFAULT_TZ

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
DEFAULT_DB = "custody.db"
DEFAULT_OFFICE = "Dinas Kependudukan dan Pencatatan Sipil"


class UsageError(Exception):
    """Bad usage or input: the message says what and where (exit 2)."""


def add_custody(sub, common: argparse.ArgumentParser) -> None:
    """The ``custody`` command and its sub-commands, under ``kiosk district``."""
    custody = sub.add_parser("custody", help="the register of blanks, berita acara, reports")
    commands = custody.add_subparsers(dest="custody_command", required=True)
    register = argparse.ArgumentParser(add_help=False)
    register.add_argument("--db", default=DEFAULT_DB, help="the register's SQLite file")
    register.add_argument("--tz", default=DEFAULT_TZ,
                          help=f"the office's time zone (default {DEFAULT_TZ}, WIB)")
    paper = argparse.ArgumentParser(add_help=False)
    paper.add_argument("--office", default=None,
                       help="the office's name as printed (default: Disdukcapil + district)")
    paper.add_argument("-o", "--output", help="the file to write (default: a name of its own)")

    keep = commands.add_parser("keep", parents=[common, register],
                               help="keep every blank event of the district (a service)")
    keep.add_argument("--client-id", help="MQTT client id (default {district}-custody)")

    receive = commands.add_parser("receive", parents=[common, register],
                                  help="load the UIDs of a shipment of blanks")
    receive.add_argument("manifest", help="one UID a line, or a CSV with a 'uid' column")
    receive.add_argument("--date", help="the day it was received (YYYY-MM-DD, default today)")

    report = commands.add_parser("report", parents=[common, register, paper],
                                 help="the berita acara of invalid blanks (PDF or CSV)")
    report.add_argument("--from", dest="first", required=True, help="first day, YYYY-MM-DD")
    report.add_argument("--to", dest="last", required=True, help="last day, YYYY-MM-DD")
    report.add_argument("--station", help="one station only")
    report.add_argument("--format", choices=("pdf", "csv"), default="pdf")
    report.add_argument("--records", help="the district's record export (JSON lines or CSV):"
                                          " adds name and NIK columns, never stored")

    month = commands.add_parser("monthly", parents=[common, register, paper],
                                help="blanks received, printed and invalid in a month")
    month.add_argument("--month", required=True, help="YYYY-MM")
    month.add_argument("--format", choices=("text", "csv"), default="text")


def run(args: argparse.Namespace) -> int:
    handlers = {"keep": _keep, "receive": _receive, "report": _report, "monthly": _monthly}
    try:
        return handlers[args.custody_command](args)
    except UsageError as error:
        print(f"kiosk district custody: {error}", file=sys.stderr)
        return EXIT_USAGE


def _register(args: argparse.Namespace, *, create: bool):
    from kiosk.district.custody.register import Register

    try:
        return Register(args.db, create=create)
    except FileNotFoundError as error:
        raise UsageError(str(error)) from None
    except (OSError, sqlite3.Error) as error:
        raise UsageError(f"cannot open the register {args.db}: {error}") from None


def _zone(args: argparse.Namespace):
    from kiosk.district.custody.period import zone

    try:
        return zone(args.tz)
    except ValueError as error:
        raise UsageError(str(error)) from None


def _day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option} {text!r} is not a date (YYYY-MM-DD)") from None


def _office(args: argparse.Namespace) -> str:
    return args.office or f"{DEFAULT_OFFICE} (kode wilayah {args.district})"


def _write(data: bytes, output: str) -> None:
    """All of *data* at *output* or nothing (a temporary file renamed into place)."""
    target = Path(output)
    try:
        handle, temporary = tempfile.mkstemp(dir=target.parent or ".", prefix=".custody-")
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, target)
    except OSError as error:
        raise UsageError(f"cannot write {output}: {error.strerror}") from None


# -- the commands ----------------------------------------------------------------------


def _keep(args: argparse.Namespace) -> int:
    from kiosk.contract.mqtt import Credentials
    from kiosk.district.custody.keep import Keeper
    from kiosk.signals import stopped_by_signals

    credentials = Credentials(args.tls_ca, args.tls_cert, args.tls_key, args.username,
                              args.password_file)
    try:
        keeper = Keeper(args.url, args.db, district=args.district, root=args.root,
                        client_id=args.client_id, credentials=credentials)
    except ValueError as error:
        raise UsageError(str(error)) from None
    except (OSError, sqlite3.Error) as error:
        raise UsageError(f"cannot open the register {args.db}: {error}") from None
    print(f"keeping the blanks of district {args.district} in {args.db} (broker {args.url})",
          flush=True)
    with stopped_by_signals(keeper.stop):  # not stop() in a handler: see kiosk/signals.py
        keeper.run()
    return EXIT_OK


def _receive(args: argparse.Namespace) -> int:
    from kiosk.district.custody.manifest import ManifestError, read_manifest

    received_on = _day(args.date, "--date") if args.date else datetime.now(_zone(args)).date()
    path = Path(args.manifest)
    try:
        uids = read_manifest(path)
    except ManifestError as error:
        raise UsageError(str(error)) from None
    register = _register(args, create=True)
    try:
        earlier = register.shipment_of(uid for _, uid in uids)
        if earlier:
            line, uid = next((line, uid) for line, uid in uids if uid in earlier)
            raise UsageError(f"{path}:{line}: UID {uid} was already received with"
                             f" {earlier[uid]} ({len(earlier)} UIDs of this file were);"
                             " nothing loaded")
        count = register.receive(path.name, uids, received_on.isoformat())
    finally:
        register.close()
    print(f"{count} blanks received on {received_on} from {path.name}")
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from kiosk.district.custody.people import PeopleError, read_people
    from kiosk.district.custody.report import EmptyPeriod, berita_acara, to_csv

    first, last = _day(args.first, "--from"), _day(args.last, "--to")
    if first > last:
        raise UsageError(f"--from {first} is after --to {last}")
    tz = _zone(args)
    to_pdf = _pdf_writer() if args.format == "pdf" else None
    try:
        people = read_people(Path(args.records)) if args.records else None
    except PeopleError as error:
        raise UsageError(str(error)) from None
    register = _register(args, create=False)
    try:
        doc = berita_acara(register, first, last, tz=tz, office=_office(args),
                           district=args.district, station=args.station, people=people)
    except EmptyPeriod as error:
        raise UsageError(str(error)) from None
    finally:
        register.close()
    data = to_pdf(doc) if to_pdf else to_csv(doc)
    station = f"-{args.station}" if args.station else ""
    output = args.output or f"berita-acara-{first}_{last}{station}.{args.format}"
    _write(data, output)
    print(f"{output}: {len(doc.lines)} invalid blanks from {first} to {last}")
    return EXIT_OK


def _pdf_writer():
    from kiosk.extras import MissingExtra, require

    try:
        require("fpdf", "district", "the berita acara as PDF")
    except MissingExtra as missing:
        raise UsageError(str(missing)) from None
    from kiosk.district.custody.report import to_pdf

    return to_pdf


def _monthly(args: argparse.Namespace) -> int:
    from kiosk.district.custody.monthly import monthly, to_csv, to_text
    from kiosk.district.custody.period import month_days

    try:
        month_days(args.month)
    except ValueError as error:
        raise UsageError(str(error)) from None
    tz = _zone(args)
    register = _register(args, create=False)
    try:
        report = monthly(register, args.month, tz)
    finally:
        register.close()
    data = (to_csv(report) if args.format == "csv"
            else to_text(report, _office(args)).encode())
    if args.output:
        _write(data, args.output)
        print(f"{args.output}: the report of {args.month}")
    else:
        sys.stdout.write(data.decode("utf-8-sig"))
    return EXIT_OK
