"""``kiosk district web``: the broker feed and the HTTP server of the district's page.

`DistrictWeb` joins the two halves: a paho client (clean session, read-only:
it subscribes and never publishes) that feeds every station's and the
router's availability, state and events into a `DistrictView`, and an aiohttp
server on its own thread and event loop:

- ``GET /``               the page (static/index.html, with app.js and style.css)
- ``GET /api/district``   the district view (station.md)
- ``GET /api/history``    the plots' data: cards per hour over the last day, stock per station
- ``GET /api/stream``     server-sent events: ``district`` on every change (coalesced over
                          COALESCE_S, at most one per MIN_INTERVAL_S) and at least every
                          HEARTBEAT_S, ``history`` every HISTORY_S; the page updates in
                          place from them

    web = DistrictWeb("mqtt://127.0.0.1:1883", district="3210", listen=("127.0.0.1", 8080))
    web.start()      # returns once the HTTP port is open; web.url is the page
    ...
    web.stop()

It stands on a network where a station may be in hostile hands and a browser may run a
hostile page (docs/security.md): every response carries a Content-Security-Policy
(scripts, styles and connections from this origin only, no framing), ``nosniff`` and
``Server: kiosk``; a request whose ``Host`` is not an IP address, ``localhost``, this
machine's own name or one of the configured *host_names* is refused (421), so a
DNS-rebinding page cannot read the API; a connection that sends no complete request
within *idle_timeout_s* (silent, trickling headers, or idle between requests) is closed;
at most MAX_CONNECTIONS are open at once (the next ones get 503 and are closed); an
event stream whose client does not read within WRITE_TIMEOUT_S is closed. The broker
sends the page no message over MAX_PACKET bytes (MQTT 5 Maximum Packet Size), at QoS 0
(see `_on_connect`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from importlib import resources
from typing import Any

from aiohttp import web

from kiosk.contract.mqtt import Credentials, connect_client, make_client, session_properties
from kiosk.district.custody.web import mount_custody
from kiosk.district.web.model import FORGET_AFTER_S, DistrictView

log = logging.getLogger(__name__)

COALESCE_S = 0.1  # changes within this are sent as one update
MIN_INTERVAL_S = 0.25  # a stream of changes goes out at most 4 times a second (a big district)
HEARTBEAT_S = 2.0  # an update at least this often (ages move on; a dead link shows)
HISTORY_S = 10.0
IDLE_TIMEOUT_S = 15.0  # no complete request within this after connecting or after a reply
WRITE_TIMEOUT_S = 10.0  # a stream's client that takes no update within this is dropped
MAX_CONNECTIONS = 256  # far above a district's operators; well below the open-file limit
MAX_PACKET = 128 * 1024  # a station's state or event is at most 64 KiB (inputs.py)
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
       " connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                    "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
                    "Server": "kiosk"}
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}


def static_file(name: str) -> bytes:
    """One file of the page, shipped as package data."""
    return resources.files("kiosk.district.web").joinpath("static", name).read_bytes()


class DistrictWeb:
    """The district's live page for one district on one broker (read-only)."""

    def __init__(self, url: str, *, district: str = "3210", root: str = "ektp/v1",
                 listen: tuple[str, int] = ("127.0.0.1", 8080),
                 credentials: Credentials | None = None,
                 view: DistrictView | None = None, host_names: Iterable[str] = (),
                 idle_timeout_s: float = IDLE_TIMEOUT_S,
                 forget_after_s: float = FORGET_AFTER_S,
                 custody_db: str | None = None) -> None:
        self.listen = listen
        self.custody_db = custody_db  # the register of blanks (kiosk/district/custody/web.py)
        self.prefix = f"{root}/{district}"
        # This machine's own name works as typed on the office network; any other name
        # must be given (a DNS-rebinding page uses a name of its own).
        own = {socket.gethostname(), socket.getfqdn(), "localhost"}
        self.host_names = {name.lower().rstrip(".") for name in (*own, *host_names) if name}
        self.idle_timeout_s = idle_timeout_s
        self.view = view or DistrictView(self.prefix, district=district,
                                         forget_after_s=forget_after_s)
        self.view.on_change = self._changed
        self._loop = asyncio.new_event_loop()
        self._tick: asyncio.Event | None = None
        self._wake_pending = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="district-web", daemon=True)
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self._error: BaseException | None = None
        self._document: tuple[tuple[int, int], str] = ((-1, 0), "")  # shared by all streams
        self.port = listen[1]
        self.broker_url = url
        self.client = make_client(f"district-web-{uuid.uuid4().hex[:8]}", url=url,
                                  credentials=credentials)
        self.client.reconnect_delay_set(1, 2)  # the banner clears soon after the broker returns
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *args: self.view.set_broker(False)
        self.client.on_message = self._on_message

    @property
    def url(self) -> str:
        host = self.listen[0]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/"

    # -- life cycle --------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> DistrictWeb:
        """Open the HTTP port and start following the broker (in the background)."""
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the web server did not start")
        if self._error is not None:
            raise self._error
        connect_client(self.client, self.broker_url, session_expiry_s=0,
                       properties=session_properties(0, maximum_packet_size=MAX_PACKET))
        self.client.loop_start()
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused the web page's client: %s", reason_code)
            return
        # QoS 0: Mosquitto 2.0.11 keeps the in-flight slot of a QoS 1 message it drops as
        # over our Maximum Packet Size, so twenty oversized messages would stall the feed.
        client.subscribe([(f"{self.prefix}/+/{leaf}", 0)
                          for leaf in ("availability", "state", "events", "cmd/refill")])
        self.view.set_broker(True)

    def _on_message(self, client, userdata, message) -> None:
        try:
            self.view.on_message(message.topic, message.payload, bool(message.retain))
        except Exception:  # one odd message must not stop the feed
            log.exception("message on %s not understood", message.topic[:200])

    # -- the event loop's thread ---------------------------------------------------------

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._open())
        except BaseException as error:  # reported by start()
            self._error = error
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        left = asyncio.all_tasks(self._loop)  # streams still open: end them before closing
        for task in left:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
        self._loop.close()

    async def _open(self) -> None:
        self._tick = asyncio.Event()
        app = web.Application(middlewares=[self._check_host])
        app.on_response_prepare.append(_secure)
        app.router.add_get("/", self._page)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/favicon.ico", self._no_icon)
        app.router.add_get("/api/district", self._district)
        app.router.add_get("/api/history", self._history)
        app.router.add_get("/api/stream", self._stream)
        mount_custody(app, self.custody_db, self.prefix)  # /custody, /api/custody
        # keepalive_timeout also runs from the connection's start (aiohttp >= 3.10): a
        # client that sends no whole request in time is closed, whatever it trickles.
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                    shutdown_timeout=1.0,
                                    keepalive_timeout=self.idle_timeout_s)
        await self._runner.setup()
        self._listener = await asyncio.get_running_loop().create_server(
            self._connection, self.listen[0], self.listen[1])
        self.port = self._listener.sockets[0].getsockname()[1]  # the real one for port 0

    def _connection(self) -> asyncio.Protocol:
        """A new connection's handler, or a 503 and close when MAX_CONNECTIONS are open."""
        server = self._runner.server if self._runner else None
        if server is None or len(server.connections) >= MAX_CONNECTIONS:
            return _Busy()
        return server()

    async def _cleanup(self) -> None:
        if self._listener is not None:
            self._listener.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _check_host(self, request: web.Request, handler) -> web.StreamResponse:
        """Only names this page is meant to be reached by (DNS rebinding is refused)."""
        host = (request.host or "").lower()
        name = host[1:host.index("]")] if host.startswith("[") and "]" in host \
            else host.rsplit(":", 1)[0]
        if not (name in self.host_names or _is_address(name.rstrip("."))):
            return web.Response(status=421, text=f"unknown host name {name[:100]!r}: give it"
                                " to kiosk district web with --host-name\n")
        return await handler(request)

    def _changed(self) -> None:
        """From paho's thread: wake the stream handlers (once per burst of messages)."""
        if not self._wake_pending.is_set() and self._ready.is_set():
            self._wake_pending.set()
            self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        self._wake_pending.clear()
        tick, self._tick = self._tick, asyncio.Event()
        if tick is not None:
            tick.set()

    def _document_text(self) -> str:
        """The district document as JSON, made once per change and second for every stream."""
        key = (self.view.version, int(time.time()))
        if self._document[0] != key:
            self._document = (key, _json(self.view.document()))
        return self._document[1]

    # -- handlers ------------------------------------------------------------------------

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(body=static_file("index.html"), content_type="text/html",
                            charset="utf-8", headers=_NO_CACHE)

    async def _no_icon(self, request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        kind = next((t for ext, t in _TYPES.items() if name.endswith(ext)), None)
        if kind is None or "/" in name or name.startswith("."):
            raise web.HTTPNotFound()
        try:
            body = static_file(name)
        except FileNotFoundError:
            raise web.HTTPNotFound() from None
        return web.Response(body=body, content_type=kind, charset="utf-8", headers=_NO_CACHE)

    async def _district(self, request: web.Request) -> web.Response:
        return web.json_response(self.view.document(), headers=_NO_CACHE)

    async def _history(self, request: web.Request) -> web.Response:
        return web.json_response(self.view.history(), headers=_NO_CACHE)

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no"})  # nginx: pass each event on at once
        await response.prepare(request)
        history_at = sent_at = 0.0
        try:
            while True:
                tick = self._tick
                await asyncio.sleep(max(0.0, sent_at + MIN_INTERVAL_S - time.monotonic()))
                sent_at = time.monotonic()
                await _send(response, "district", self._document_text())
                if time.monotonic() - history_at >= HISTORY_S:
                    history_at = time.monotonic()
                    await _send(response, "history", _json(self.view.history()))
                try:
                    await asyncio.wait_for(tick.wait(), HEARTBEAT_S)
                    await asyncio.sleep(COALESCE_S)
                except TimeoutError:
                    pass
        except (ConnectionResetError, TimeoutError):  # gone, or not reading: let it go
            if request.transport is not None:
                request.transport.abort()
            return response


_NO_CACHE = {"Cache-Control": "no-store"}


def _json(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"))


async def _send(response: web.StreamResponse, kind: str, data: str) -> None:
    """One event; a client that does not take it within WRITE_TIMEOUT_S is given up."""
    await asyncio.wait_for(response.write(f"event: {kind}\ndata: {data}\n\n".encode()),
                           WRITE_TIMEOUT_S)


async def _secure(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class _Busy(asyncio.Protocol):
    """The answer to a connection over MAX_CONNECTIONS: 503, closed at once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"  # type: ignore[attr-defined]
                        b"Connection: close\r\n\r\n")
        transport.close()
