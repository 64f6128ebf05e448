"""``kiosk update [--check] BUNDLE|URL`` and ``kiosk update --recover`` (station.md, Releases).

Reads the station's configuration: ``[station] spool`` (the health file and the pending
update events live beside it) and the ``[update]`` table, checked here::

    [update]  trusted_keys = ["/etc/kiosk/release.pub"]   health_s = 120
              root = "/opt/kiosk"   settle_s = 10   stale_s = 5   card_wait_s = 900
                                                                  (project additions)

Exit codes: 0 updated (or already running, or --check passed), 1 refused, rolled back
or failed (the message says which and why), 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from kiosk.station.config import Config, ConfigError, from_dict, load

DEFAULT_CONFIG = "/etc/kiosk/station.toml"
FIRST_INSTALL = {"station": {"district": "0000", "id": "first-install"}}  # for its defaults
DOWNLOAD = ".download.bundle"  # updater.fetch's file, beside the releases

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", nargs="?", help="a bundle file, or an http(s):// URL")
    parser.add_argument("--config", default=DEFAULT_CONFIG)
    parser.add_argument("--check", action="store_true",
                        help="verify the bundle for this station, change nothing")
    parser.add_argument("--recover", action="store_true",
                        help="finish or undo a switch an interrupted update left (at boot)")
    parser.add_argument("--no-restart", action="store_true",
                        help="with --recover: fix the symlink only (the unit starts later)")
    parser.add_argument("--sha256", help="the digest the district announced for the file")
    parser.add_argument("--version", dest="announced",
                        help="the version the district announced (named by the outcome)")
    parser.add_argument("--supervisor", default="systemd:kiosk.service",
                        help="systemd:UNIT (default) or local:SOCKET (tests)")


def _read(path: str) -> tuple[Config, dict[str, Any]]:
    """The station's configuration (its [update] table checked with every other key)."""
    config = load(path)
    return config, dataclasses.asdict(config.update)


def load_settings(path: str) -> Any:
    """The updater's Settings from the station's TOML; ConfigError names every bad key."""
    from kiosk.ops.update.bundle import trusted_keys
    from kiosk.ops.update.updater import Settings

    if not Path(path).exists() and path == DEFAULT_CONFIG:
        # The first install: no configuration yet (kiosk install writes it from the release).
        print(f"kiosk update: no {path} yet: the defaults ([update] and the spool's place)")
        config = from_dict(FIRST_INSTALL)
        options = dataclasses.asdict(config.update)
    else:
        config, options = _read(path)
    try:
        keys = trusted_keys(options["trusted_keys"])
    except ValueError as error:
        raise ConfigError("update.trusted_keys", str(error)) from None
    return Settings(root=Path(options["root"]), spool=Path(config.station.spool), keys=keys,
                    health_s=options["health_s"], settle_s=options["settle_s"],
                    stale_s=options["stale_s"], card_wait_s=options["card_wait_s"])


def run(args: argparse.Namespace) -> int:
    from kiosk.ops.update.supervisor import from_spec
    from kiosk.ops.update.updater import Updater

    if bool(args.bundle) == bool(args.recover):
        print("kiosk update: give a BUNDLE or URL, or --recover", file=sys.stderr)
        return 2
    try:
        supervisor = from_spec(args.supervisor)
    except ValueError as error:
        print(f"kiosk update: {error}", file=sys.stderr)
        return 2
    settings = load_settings(args.config)
    updater = Updater(settings, supervisor)
    if args.recover:
        outcome = updater.recover(restart=not args.no_restart)
        if outcome is None:
            print("kiosk update: nothing to recover")
        return 0 if outcome is None or outcome.outcome in ("rolled-back", "updated") else 1
    downloaded = args.bundle.startswith(("http://", "https://"))
    try:
        return _update(args, updater, settings)
    finally:
        if downloaded:
            (settings.root / "releases" / DOWNLOAD).unlink(missing_ok=True)


def _update(args: argparse.Namespace, updater: Any, settings: Any) -> int:
    from kiosk.ops.update.updater import fetch

    source = args.bundle
    if source.startswith(("http://", "https://")):
        from kiosk.ops.update.bundle import BundleError

        try:
            path = fetch(source, settings.root / "releases")
        except BundleError as error:
            print(f"kiosk update: refused: {error}", file=sys.stderr)
            if not args.check:
                updater.refuse(args.announced, str(error))
            return 1
    else:
        path = Path(source)
    if args.sha256 and not _digest_matches(path, args.sha256):
        updater.refuse(args.announced, f"{source}: digest-mismatch: the file is not the one"
                       " the district announced (sha256)")
        return 1
    if args.check:
        return _check(updater, path)
    return 0 if updater.update(path, announced=args.announced).ok else 1


def _digest_matches(path: Path, expected: str) -> bool:
    import hashlib

    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    except OSError:
        return False
    return digest.hexdigest() == expected.lower()


def _check(updater: Any, path: Path) -> int:
    from kiosk.ops.update.bundle import BundleError
    from kiosk.ops.update.platform import PlatformError
    from kiosk.ops.update.spoolcheck import SpoolRefused

    try:
        manifest = updater.check(path)
    except (BundleError, PlatformError, SpoolRefused) as error:
        print(f"kiosk update: refused: {path.name}: {error}", file=sys.stderr)
        return 1
    print(f"kiosk update: {manifest.describe()}: good for this station"
          f" (installed {manifest.installed_bytes / 1e6:.0f} MB)")
    return 0
