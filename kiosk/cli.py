"""The ``kiosk`` command line (station.md, Command line).

Exit codes: 0 ok, 2 bad usage or configuration (the message names the key),
1 any other failure. Sub-commands import what they need when they run, so
``kiosk --help`` and the service start quickly on a Raspberry Pi.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from kiosk import __version__
from kiosk.extras import MissingExtra
from kiosk.ops.logsetup import setup_logging
from kiosk.station.config import ConfigError, load

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        return int(args.handler(args) or 0)
    except ConfigError as error:
        for line in error.lines():  # every problem, each naming its key
            print(f"kiosk: configuration error: {line}", file=sys.stderr)
        return EXIT_USAGE
    except MissingExtra as error:
        print(f"kiosk: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kiosk", description="E-KTP card print station")
    parser.add_argument("--version", action="version", version=f"kiosk {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="the headless service (systemd starts this)")
    run.add_argument("--config", required=True)
    run.set_defaults(handler=_run)

    status = sub.add_parser("status", help="what the local spool holds (no personal data)")
    status.add_argument("--config", required=True)
    status.set_defaults(handler=_status)

    demo = sub.add_parser("demo", help="the whole station in simulation")
    demo.add_argument("--cards", type=int, default=12)
    demo.add_argument("--kia", type=int, default=2, metavar="N",
                      help="KIA cards on a second, KIA-only station (0: none)")
    demo.add_argument("--card-seconds", type=float, default=0.5)
    demo.add_argument("--faults", action="store_true", help="a jam and an empty feeder on the way")
    demo.add_argument("--printer", choices=("evolis", "ipp"), default="evolis",
                      help="the Evolis simulator on a pty, or a private CUPS queue (IPP)")
    demo.add_argument("--encoder", choices=("none", "inline"), default="none",
                      help="inline: every blank has a chip, written at the printer's encoder"
                           " (a private pcscd with a virtual reader; needs --printer evolis)")
    demo.set_defaults(handler=_demo)

    sim = sub.add_parser("sim", help="one device simulator (a pty, or a private CUPS queue)")
    devices = sim.add_subparsers(dest="device", required=True)
    from kiosk.sim import cups as sim_cups
    from kiosk.sim import printer as sim_printer
    from kiosk.sim import receipt as sim_receipt
    from kiosk.sim import tray as sim_tray

    for name, module in (("printer", sim_printer), ("tray", sim_tray), ("receipt", sim_receipt),
                         ("cups-printer", sim_cups)):
        device = devices.add_parser(name)
        module.add_arguments(device)
        device.set_defaults(handler=module.run)

    from kiosk.ops import doctor, install, pki

    for name, module, text in (
        ("install", install, "put user, directories, config, unit and udev rules in place"),
        ("doctor", doctor, "check config, devices, chip reader, broker, clock, spool, GPIO"),
        ("pki", pki, "certificates for mutual TLS and the broker's ACL (docs/security.md)"),
    ):
        command = sub.add_parser(name, help=text)
        module.add_arguments(command)
        command.set_defaults(handler=module.run)

    from kiosk.ops.update import cli as update_cli

    update = sub.add_parser("update", help="install a signed release bundle, with rollback")
    update_cli.add_arguments(update)
    update.set_defaults(handler=update_cli.run)

    from kiosk.district import cli as district_cli

    district = sub.add_parser("district", help="the district side: send, watch, cmd, route, web")
    district_cli.add_arguments(district)  # sets handler=district_cli.run

    render = sub.add_parser("render", help="preview PNG of a record (E-KTP or KIA) as the "
                            "printer gets it")
    render.add_argument("record", help="record JSON file (ektp.record/1 or kia.record/1)")
    render.add_argument("-o", "--output", required=True)
    render.set_defaults(handler=_render)
    return parser


def _run(args: argparse.Namespace) -> int:
    from kiosk.ops.memory import limit_malloc_arenas
    from kiosk.ops.systemd import Notifier
    from kiosk.ops.update.health import HealthReporter, health_path, release_name, station_facts
    from kiosk.signals import stopped_by_signals
    from kiosk.station.loop import Station

    limit_malloc_arenas()
    notifier = Notifier.from_environment()
    notifier.status("starting")
    config = load(args.config)
    reporter = HealthReporter(health_path(config.station.spool), release_name(),
                              notifier.notify)
    station = Station(config, notify=reporter.notify, config_path=args.config)
    reporter.facts = station_facts(station)  # the health file `kiosk update` judges
    with stopped_by_signals(station.stop):  # not stop() in a handler: it takes a lock
        station.run()
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    from kiosk.ops.status import print_status

    print_status(load(args.config))
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from kiosk.sim.demo import run_demo

    return run_demo(cards=args.cards, card_seconds=args.card_seconds, faults=args.faults,
                    printer=args.printer, kia_cards=args.kia, encoder=args.encoder)


def _render(args: argparse.Namespace) -> int:
    from kiosk.card.render import RenderError
    from kiosk.contract.documents import DOCUMENTS, parse_job
    from kiosk.contract.rejected import Rejected
    from kiosk.devices.printer.evolis.panels import render_preview

    try:
        with open(args.record, "rb") as handle:
            record = parse_job(handle.read(), documents=DOCUMENTS)
    except (OSError, Rejected) as error:
        print(f"kiosk: cannot read {args.record}: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        render_preview(record).save(args.output)
    except RenderError as error:
        print(f"kiosk: cannot render {args.record}: {error}", file=sys.stderr)
        return EXIT_FAILURE
    print(args.output)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
