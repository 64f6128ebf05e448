"""``kiosk district ...``: the district side on the command line.

- ``send FILE``: publish records from JSON lines or CSV to the district inbox
  (the router's), or with ``--station`` straight to one station; signed with
  ``--key``; checked like a station checks them first (``--no-check`` skips).
- ``watch``: a live table of the district's stations from their retained
  availability and state (``--once`` prints it once).
- ``cmd STATION NAME [k=v ...]``: one MQTT 5 command; the reply is printed.
- ``route``: the durable router (kiosk/district/router.py).
- ``web``: the district's live web page (kiosk/district/web/), read-only;
  ``--host-name NAME`` (repeatable) for each name browsers reach it by (IP
  addresses, localhost and this machine's own name are always accepted),
  ``--forget-after DAYS`` (default 7) to drop a station nothing was heard of for
  that long.
- ``custody ...``: the register of blanks and its reports (kiosk/district/custody/cli.py).
- ``update``: a release bundle to the stations, in waves (kiosk/district/update.py).

Record files are read by kiosk/district/recordfile.py (its docstring gives the CSV
columns). ``k=v`` values are read as JSON when they parse (``count=5`` is a
number), else as text (``'k="5"'`` forces text).

Exit codes: 0 ok, 2 bad usage or input (the message names file and line),
1 other failure (no reply, broker gone, a command answered ``ok: false``, a record the
broker refused: its PUBACK reason code is printed with the record's line).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path

from kiosk.district.custody.cli import add_custody
from kiosk.district.custody.cli import run as run_custody
from kiosk.district.routing import HOLD_AHEAD, RELEASE_AFTER_S

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
SEND_WINDOW = 100  # records handed to paho before waiting for the oldest PUBACK


class InputError(Exception):
    """A record file that cannot be sent as it is (bad usage: exit 2)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add send/watch/cmd/route to the ``district`` sub-parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default="mqtt://127.0.0.1:1883", help="district broker")
    common.add_argument("--district", default="3210", help="district code")
    common.add_argument("--root", default="ektp/v1", help="topic root")
    common.add_argument("--tls-ca", help="CA file for mqtts:// (server verification)")
    common.add_argument("--tls-cert", help="client certificate (mTLS)")
    common.add_argument("--tls-key", help="client certificate key (mTLS)")
    common.add_argument("--username")
    common.add_argument("--password-file")
    sub = parser.add_subparsers(dest="district_command", required=True)

    send = sub.add_parser("send", parents=[common], help="publish records (JSON lines or CSV)")
    send.add_argument("file", help="records: .jsonl (one JSON object a line) or .csv")
    send.add_argument("--key", help="Ed25519 private key (PEM): sign every record with it")
    send.add_argument("--station", help="send to this station instead of the district inbox")
    send.add_argument("--format", choices=("auto", "jsonl", "csv"), default="auto")
    send.add_argument("--no-check", action="store_true", help="send without checking records")
    send.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for a PUBACK")

    watch = sub.add_parser("watch", parents=[common], help="live table of the stations")
    watch.add_argument("--once", action="store_true", help="print the table once and exit")
    watch.add_argument("--interval", type=float, default=1.0, help="refresh period (s)")

    cmd = sub.add_parser("cmd", parents=[common], help="one command, MQTT 5 request/response")
    cmd.add_argument("station")
    cmd.add_argument("name", help="status, pause, resume, cancel, reprint, refill, drain, ...")
    cmd.add_argument("args", nargs="*", metavar="k=v", help="arguments (values read as JSON)")
    cmd.add_argument("--timeout", type=float, default=10.0)

    route = sub.add_parser("route", parents=[common], help="the durable router of the inbox")
    route.add_argument("--db", default="router.db", help="the router's SQLite file")
    route.add_argument("--client-id", help="MQTT client id (default {district}-router)")
    route.add_argument("--release-after", type=float, default=RELEASE_AFTER_S, metavar="S",
                       help="release the unstarted records of a station unable to print for"
                            f" S seconds (0: never; default {RELEASE_AFTER_S:g})")
    route.add_argument("--hold-ahead", type=int, default=HOLD_AHEAD, metavar="N",
                       help="records a station may hold, printing and queued; the rest wait"
                            f" at the router (0: send every record at once; default {HOLD_AHEAD})")
    page = sub.add_parser("web", parents=[common], help="the district's live web page")
    page.add_argument("--listen", default="127.0.0.1:8080", metavar="HOST:PORT",
                      help="where the page is served (default 127.0.0.1:8080: this machine only)")
    page.add_argument("--host-name", action="append", default=[], metavar="NAME",
                      help="a name browsers reach the page by (repeatable); IP addresses,"
                           " localhost and this machine's name are always accepted, any"
                           " other Host is refused")
    page.add_argument("--forget-after", type=float, default=7.0, metavar="DAYS",
                      help="drop a station from the page once nothing was heard of it for"
                           " DAYS (default 7)")
    page.add_argument("--custody-db", help="the register of blanks (custody keep --db) whose"
                                           " page /custody shows")
    add_custody(sub, common)
    from kiosk.district import update  # kiosk district update (its own module)

    update.add_parser(sub, common)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the parsed ``kiosk district`` sub-command; returns the exit code."""
    from kiosk.district.recordfile import RecordFileError
    from kiosk.district.update import RolloutError, run_update

    handlers = {"send": _send, "watch": _watch, "cmd": _cmd, "route": _route, "web": _web,
                "custody": run_custody,
                "update": lambda args: run_update(args, lambda: _client(args, keep_events=True))}
    try:
        return handlers[args.district_command](args)
    except (InputError, RecordFileError, RolloutError) as error:
        print(f"kiosk district: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (TimeoutError, RuntimeError) as error:
        print(f"kiosk district: {error}", file=sys.stderr)
        return EXIT_FAILURE


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kiosk.district.cli ...`` (the same as ``kiosk district ...``)."""
    parser = argparse.ArgumentParser(prog="kiosk district")
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return run(args)
    except KeyboardInterrupt:
        return EXIT_OK


def _credentials(args: argparse.Namespace):
    from kiosk.contract.mqtt import Credentials

    return Credentials(args.tls_ca, args.tls_cert, args.tls_key, args.username,
                       args.password_file)


def _client(args: argparse.Namespace, *, keep_events: bool = False):
    from kiosk.district.client import DistrictClient

    try:
        client = DistrictClient(args.url, district=args.district, root=args.root,
                                persistent=False, credentials=_credentials(args),
                                keep_events=keep_events)
    except ValueError as error:
        raise InputError(str(error)) from None
    try:
        return client.wait_connected()
    except TimeoutError:
        client.close()
        raise TimeoutError(f"cannot reach the broker at {args.url}") from None


# -- send ------------------------------------------------------------------------------


def _send(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import Progress

    from kiosk.district.recordfile import read_records

    path = Path(args.file)
    fmt = None if args.format == "auto" else args.format
    sign = _signer(args.key)
    total = sum(1 for _ in _checked(path, fmt, sign, check=not args.no_check))
    client = _client(args)
    topic = client.topic(args.station, "jobs") if args.station else client.inbox_topic
    console = Console(stderr=True)
    try:
        if not args.station and not client.wait_for(lambda: "_router" in client.availability, 1):
            console.print("[yellow]warning: no router has announced itself on this district;"
                          " the broker keeps inbox records only for a router's session")
        with Progress(console=console) as progress:
            task = progress.add_task(f"sending to {topic}", total=total)
            refused = _publish_all(client, topic, read_records(path, fmt), sign, args.timeout,
                                   lambda: progress.advance(task))
    finally:
        client.close()
    for line, reason in refused:  # the broker's own words, record by record
        print(f"kiosk district: {path}:{line}: {reason}", file=sys.stderr)
    if refused:
        print(f"kiosk district: {total - len(refused)} of {total} records sent to {topic};"
              f" {len(refused)} refused by the broker", file=sys.stderr)
        return EXIT_FAILURE
    print(f"{total} records sent to {topic}")
    return EXIT_OK


def _publish_all(client, topic: str, records, sign, timeout: float,
                 done) -> list[tuple[int, str]]:
    """Publish every (line, record), at most SEND_WINDOW unconfirmed; (line, reason) refused."""
    from kiosk.district.client import Refused

    refused: list[tuple[int, str]] = []
    in_flight: deque = deque()

    def confirm_oldest() -> None:
        line, info = in_flight.popleft()
        try:
            client.confirm(info, topic, timeout)
        except Refused as refusal:
            refused.append((line, str(refusal)))
        done()

    for line, record in records:
        in_flight.append((line, client.publish(topic, sign(record))))
        while in_flight and (len(in_flight) > SEND_WINDOW or in_flight[0][1].is_published()):
            confirm_oldest()
    while in_flight:
        confirm_oldest()
    return refused


def _signer(key_path: str | None):
    if key_path is None:
        return lambda record: record
    from kiosk.contract.signing import load_private_key, sign_record

    try:
        key = load_private_key(key_path)
    except ValueError as error:
        raise InputError(str(error)) from None
    return lambda record: sign_record(record, key)


def _checked(path: Path, fmt: str | None, sign, *, check: bool) -> Iterator[dict]:
    """The records of the file, each checked as a station would (signature aside)."""
    from kiosk.contract.record import Rejected, parse_record
    from kiosk.district.recordfile import read_records

    for line, record in read_records(path, fmt):
        if check:
            try:
                parse_record(json.dumps(sign(record), ensure_ascii=False).encode())
            except (Rejected, ValueError, TypeError) as error:
                raise InputError(f"{path}:{line}: {error}") from None
        yield record


# -- cmd, watch, route --------------------------------------------------------------------


def _cmd(args: argparse.Namespace) -> int:
    body = {}
    for item in args.args:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"argument {item!r} is not k=v")
        try:
            body[key] = json.loads(value)
        except ValueError:
            body[key] = value
    client = _client(args)
    try:
        reply = client.command(args.station, args.name, body, timeout=args.timeout)
    finally:
        client.close()
    print(json.dumps(reply, indent=2, ensure_ascii=False))
    return EXIT_OK if reply.get("ok") is True else EXIT_FAILURE


def _watch(args: argparse.Namespace) -> int:
    import time

    from rich.console import Console
    from rich.live import Live

    from kiosk.district.view import station_table

    client = _client(args)
    console = Console()
    try:
        client.settle()
        if args.once:
            console.print(station_table(client))
            return EXIT_OK
        with Live(station_table(client), console=console, auto_refresh=False) as live:
            while True:
                time.sleep(args.interval)
                live.update(station_table(client), refresh=True)
    finally:
        client.close()


def _route(args: argparse.Namespace) -> int:
    import sqlite3

    from kiosk.district.router import Router
    from kiosk.signals import stopped_by_signals

    try:
        router = Router(args.url, args.db, district=args.district, root=args.root,
                        client_id=args.client_id, release_after_s=args.release_after or None,
                        hold_ahead=args.hold_ahead or None, credentials=_credentials(args))
    except ValueError as error:
        raise InputError(str(error)) from None
    except (OSError, sqlite3.Error) as error:
        raise InputError(f"cannot open the router's store {args.db}: {error}") from None
    with stopped_by_signals(router.stop):  # not stop() in a handler: it takes a lock
        router.run()
    return EXIT_OK


def _web(args: argparse.Namespace) -> int:
    import signal
    import threading

    try:
        from kiosk.district.web.server import DistrictWeb
    except ImportError as missing:
        raise InputError(f"{missing.name} is missing: pip install 'kiosk[district]'") from None
    host, sep, port = args.listen.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise InputError(f"--listen {args.listen!r} is not HOST:PORT")
    try:
        if not args.forget_after > 0:
            raise ValueError(f"--forget-after must be a number of days above 0, not"
                             f" {args.forget_after}")
        page = DistrictWeb(args.url, district=args.district, root=args.root,
                           listen=(host.strip("[]"), int(port)), credentials=_credentials(args),
                           host_names=args.host_name,
                           forget_after_s=args.forget_after * 86400,
                           custody_db=args.custody_db)
    except ValueError as error:
        raise InputError(str(error)) from None
    try:
        page.start()
    except OSError as error:
        raise InputError(f"cannot listen on {args.listen}: {error}") from None
    print(f"district page at {page.url} (broker {args.url})", flush=True)
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    try:
        stopped.wait()
    finally:
        page.stop()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
