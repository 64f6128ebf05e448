"""``kiosk district update``: a release to the stations, in waves, canary first (station.md).

    kiosk district update --bundle FILE (--stations ID,... | --canary N | --all)
        [--serve HOST:PORT] [--public-url URL] [--wave-size N] [--wave-timeout S]

The bundle is served over HTTP by this command (``GET /bundles/SHA256.bundle``), never
carried in an MQTT message. Each station of a wave gets the command ``update`` (MQTT 5
request/response, the correlation data as request id) with ``{url, sha256, size,
version, platform}``; it replies at once (accepted or not) and, when its update is over,
reports an ``update`` event (``version``, ``outcome``, ``detail``). A wave is healthy
when each of its stations reported ``updated`` (or ``current``); the next wave is sent
only then. A station that refused, rolled back, failed or stayed silent past
``--wave-timeout`` stops the rollout: the stations not reached keep their release.

Waves: ``--canary N`` sends to N stations first, then the rest in waves of
``--wave-size``; ``--all`` and ``--stations`` go in waves of ``--wave-size`` from the
start (the first wave is the canary). ``--all`` and ``--canary`` take the stations
online on the broker (retained availability), sorted by id, and name the offline ones;
``--stations`` sends to those named, online or not.

While it runs, ``GET /`` is a minimal page and ``GET /api/update`` the same as JSON:
each station's running version (from its retained state) and its update state:
``waiting`` → ``announced`` (command sent) → ``updating`` (accepted) → ``updated`` |
``current`` | ``refused`` | ``rolled-back`` | ``failed`` | ``no-reply`` | ``timeout``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import html
import json
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kiosk.district.client import CommandTimeout, DistrictClient
from kiosk.extras import require

HEALTHY = ("updated", "current")
FINAL = (*HEALTHY, "refused", "rolled-back", "failed", "no-reply", "timeout")


class RolloutError(Exception):
    """Bad usage or a bundle that cannot be announced (exit 2)."""


@dataclass(frozen=True)
class BundleInfo:
    path: Path
    sha256: str
    size: int
    version: str
    platform: str

    @classmethod
    def read(cls, path: Path) -> BundleInfo:
        """The manifest's version and platform, and the file's digest (the station verifies
        the signature itself, with its own release keys)."""
        try:
            with tarfile.open(path, "r:") as outer:
                member = outer.extractfile("manifest.json")
                manifest = json.loads(member.read() if member else b"")
            version, platform = manifest["version"], manifest["platform"]["name"]
        except (OSError, tarfile.TarError, KeyError, ValueError, TypeError) as error:
            raise RolloutError(f"{path}: not a release bundle ({error})") from None
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        return cls(path, digest.hexdigest(), path.stat().st_size, version, platform)


@dataclass
class StationUpdate:
    state: str = "waiting"
    detail: str = ""
    version: str | None = None  # what it runs (its retained state)
    changed_at: float = field(default_factory=time.time)


def plan_waves(stations: list[str], *, canary: int | None, wave_size: int) -> list[list[str]]:
    """The waves, in order: a canary of *canary* stations (when given), then *wave_size* each."""
    first = stations[:canary] if canary else []
    rest = stations[len(first):]
    return ([first] if first else []) + [rest[i:i + wave_size]
                                         for i in range(0, len(rest), wave_size)]


class Rollout:
    def __init__(self, client: DistrictClient, bundle: BundleInfo, url: str, *,
                 wave_timeout_s: float = 1800.0, command_timeout_s: float = 30.0,
                 say: Callable[[str], None] = print) -> None:
        self.client, self.bundle, self.url = client, bundle, url
        self.wave_timeout_s, self.command_timeout_s = wave_timeout_s, command_timeout_s
        self.say = say
        self.stations: dict[str, StationUpdate] = {}
        self._lock = threading.Lock()

    def run(self, waves: list[list[str]]) -> bool:
        """Send the waves in order; False as soon as one is not healthy."""
        for station in (s for wave in waves for s in wave):
            self.stations.setdefault(station, StationUpdate())
        for number, wave in enumerate(waves, 1):
            self.say(f"wave {number}/{len(waves)}: {', '.join(wave)}")
            started = time.time()
            for station in wave:
                self._announce(station)
            self._wait(wave, started)
            bad = [s for s in wave if self.stations[s].state not in HEALTHY]
            if bad:
                for station in bad:
                    self.say(f"  {station}: {self.stations[station].state}:"
                             f" {self.stations[station].detail}")
                self.say(f"stopped after wave {number}: the next waves keep their release")
                return False
            self.say(f"wave {number} healthy")
        return True

    def _set(self, station: str, state: str, detail: str = "") -> None:
        with self._lock:
            self.stations[station] = StationUpdate(state, detail,
                                                   self.stations[station].version)

    def _announce(self, station: str) -> None:
        self._set(station, "announced")
        args = {"url": self.url, "sha256": self.bundle.sha256, "size": self.bundle.size,
                "version": self.bundle.version, "platform": self.bundle.platform}
        try:
            reply = self.client.command(station, "update", args, timeout=self.command_timeout_s)
        except CommandTimeout:
            self._set(station, "no-reply", f"no reply within {self.command_timeout_s:g} s")
            return
        if reply.get("ok") is True:
            self._set(station, "updating", str(reply.get("detail", "")))
        else:
            self._set(station, "refused", f"{reply.get('error')}: {reply.get('detail', '')}")

    def _wait(self, wave: list[str], since: float) -> None:
        def outcome_of(station: str) -> dict | None:
            for event in reversed(self.client.events_of("update")):
                if (event.get("station") == station
                        and event.get("version") == self.bundle.version):
                    return event
            return None

        def settled() -> bool:
            for station in wave:
                if self.stations[station].state in ("updating",):
                    event = outcome_of(station)
                    if event is not None:
                        outcome = str(event.get("outcome"))
                        self._set(station, outcome if outcome in FINAL else "failed",
                                  str(event.get("detail", "")))
            return all(self.stations[s].state in FINAL for s in wave)

        if not self.client.wait_for(settled, self.wave_timeout_s):
            for station in wave:
                if self.stations[station].state not in FINAL:
                    self._set(station, "timeout", f"no update event within"
                              f" {self.wave_timeout_s:g} s")

    def view(self) -> dict:
        """Each station's running version and update state (the page's JSON)."""
        states = dict(self.client.states)
        with self._lock:
            return {"schema": "kiosk.district-update/1", "version": self.bundle.version,
                    "platform": self.bundle.platform, "sha256": self.bundle.sha256,
                    "stations": [{"id": sid, "version": (states.get(sid) or {}).get("version"),
                                  "update": s.state, "detail": s.detail}
                                 for sid, s in sorted(self.stations.items())]}


# -- the HTTP side: the bundle and the page --------------------------------------------------


class Server:
    """A small aiohttp server on its own thread: the bundle, ``/`` and ``/api/update``."""

    def __init__(self, bundle: BundleInfo, view: Callable[[], dict], host: str,
                 port: int) -> None:
        self.bundle, self.view, self.host, self.port = bundle, view, host, port
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="update-http", daemon=True)
        self._runner = None
        self.error: BaseException | None = None

    @property
    def path(self) -> str:
        return f"/bundles/{self.bundle.sha256}.bundle"

    def start(self) -> Server:
        require("aiohttp", "district", "kiosk district update (its HTTP server)")
        self._thread.start()
        self._ready.wait(10)
        if self.error:
            raise RolloutError(f"cannot serve on {self.host}:{self.port}: {self.error}")
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _serve(self) -> None:
        from aiohttp import web

        async def bundle(request: web.Request) -> web.StreamResponse:
            return web.FileResponse(self.bundle.path)

        async def api(request: web.Request) -> web.StreamResponse:
            return web.json_response(self.view())

        async def index(request: web.Request) -> web.StreamResponse:
            return web.Response(text=page(self.view()), content_type="text/html")

        app = web.Application()
        app.router.add_get(self.path, bundle)
        app.router.add_get("/api/update", api)
        app.router.add_get("/", index)
        asyncio.set_event_loop(self._loop)
        try:
            self._runner = web.AppRunner(app, access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, self.host, self.port)
            self._loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # the port 0 became
        except Exception as error:  # said by start(), in the operator's terms
            self.error = error
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()


def page(view: dict) -> str:
    """The minimal page: one row a station (refreshes itself every 2 s)."""
    rows = "".join(
        f"<tr><td>{html.escape(s['id'])}</td><td>{html.escape(str(s['version'] or '?'))}</td>"
        f"<td>{html.escape(s['update'])}</td><td>{html.escape(s['detail'])}</td></tr>"
        for s in view["stations"])
    return ("<!doctype html><meta charset=utf-8><meta http-equiv=refresh content=2>"
            f"<title>Pembaruan / Update {html.escape(view['version'])}</title>"
            f"<h1>Pembaruan / Update: kiosk {html.escape(view['version'])}"
            f" ({html.escape(view['platform'])})</h1><table border=1>"
            "<tr><th>Stasiun / Station</th><th>Versi / Version</th>"
            "<th>Status pembaruan / Update state</th><th>Keterangan / Detail</th></tr>"
            f"{rows}</table>")


# -- the command line -------------------------------------------------------------------------


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("update", parents=[common],
                            help="a new release to the stations, in waves (canary first)")
    parser.add_argument("--bundle", required=True, help="the release bundle (scripts/release)")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--stations", help="these stations (comma-separated ids)")
    which.add_argument("--canary", type=int, metavar="N", help="N stations first, then the rest")
    which.add_argument("--all", action="store_true", help="every station seen on the broker")
    parser.add_argument("--serve", default="0.0.0.0:8081", metavar="HOST:PORT",
                        help="where the bundle and the page are served (default %(default)s)")
    parser.add_argument("--public-url", help="the server as stations reach it, e.g."
                        " http://10.0.0.2:8081 (default: http://HOST:PORT of --serve)")
    parser.add_argument("--wave-size", type=int, default=10, metavar="N")
    parser.add_argument("--wave-timeout", type=float, default=1800.0, metavar="S",
                        help="seconds a wave may take (default 1800)")


def run_update(args: argparse.Namespace, client_for: Callable[[], DistrictClient]) -> int:
    """Returns 0 when every wave was healthy, 1 when the rollout stopped."""
    bundle = BundleInfo.read(Path(args.bundle))
    host, sep, port = args.serve.rpartition(":")
    if not sep or not port.isdigit():
        raise RolloutError(f"--serve {args.serve!r} is not HOST:PORT")
    if host in ("0.0.0.0", "::", "") and not args.public_url:
        raise RolloutError(f"--serve {args.serve}: give --public-url, the address the"
                           " stations reach this server at (e.g. http://10.0.0.2:8081)")
    if args.wave_size < 1 or (args.canary is not None and args.canary < 1):
        raise RolloutError("--wave-size and --canary must be 1 or more")
    client = client_for()
    try:
        return _run(args, client, bundle, host, int(port))
    finally:
        client.close()


def _run(args: argparse.Namespace, client: DistrictClient, bundle: BundleInfo, host: str,
         port: int) -> int:
    client.settle()
    known = client.stations()
    if args.stations:
        stations = [s.strip() for s in args.stations.split(",") if s.strip()]
        unknown = [s for s in stations if s not in known]
        if unknown:
            raise RolloutError(f"--stations: never seen on the broker: {', '.join(unknown)}")
    else:  # --all, --canary: the stations online now; the others are named, not waited for
        stations = [s for s in known if client.availability.get(s) == "online"]
        offline = [s for s in known if s not in stations]
        if offline:
            print(f"offline, not sent (update them later): {', '.join(offline)}")
    if not stations:
        raise RolloutError("no station to update (none online on the broker)")
    rollout: Rollout | None = None
    server = Server(bundle, lambda: rollout.view() if rollout else {}, host, port).start()
    try:
        base = (args.public_url or f"http://{host}:{server.port}").rstrip("/")
        rollout = Rollout(client, bundle, base + server.path, wave_timeout_s=args.wave_timeout)
        print(f"kiosk {bundle.version} ({bundle.platform}, {bundle.size / 1e6:.1f} MB) at"
              f" {base + server.path}; page at {base}/")
        ok = rollout.run(plan_waves(stations, canary=args.canary, wave_size=args.wave_size))
        for row in rollout.view()["stations"]:
            print(f"  {row['id']}: {row['update']} {row['detail']}".rstrip())
        return 0 if ok else 1
    finally:
        server.stop()
