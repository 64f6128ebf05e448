"""The custody page of the district's web server: ``/custody`` and ``/api/custody``.

Mounted on `kiosk.district.web.server.DistrictWeb`'s aiohttp application by one call
(`mount_custody`), read from the register (``kiosk district web --custody-db FILE``):

- ``GET /custody``                 the page (web/static/custody.html, custody.js)
- ``GET /api/custody``             per station and for the district, today and this month:
                                   blanks printed and invalid per category; the foreign and
                                   duplicate UIDs of the month; the day's berita acara links
- ``GET /custody/berita-acara.pdf?date=YYYY-MM-DD[&station=S]`` (and ``.csv``): the berita
                                   acara of that day (default today), as the command writes it

Days are the office's in WIB (``Asia/Jakarta``, `mount_custody`'s *tz_name*). Nothing here
writes to the register; no name or NIK is ever shown.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from importlib import resources

from aiohttp import web

from kiosk.district.custody import CATEGORIES, DEFAULT_TZ
from kiosk.district.custody.period import days, zone, zone_label
from kiosk.district.custody.register import Register
from kiosk.district.custody.report import EmptyPeriod, berita_acara, to_csv, to_pdf
from kiosk.district.routing import is_station

_NO_CACHE = {"Cache-Control": "no-store"}
OFFICE = "Dinas Kependudukan dan Pencatatan Sipil (kode wilayah {district})"


def mount_custody(app: web.Application, db_path: str | None, prefix: str,
                  tz_name: str = DEFAULT_TZ) -> None:
    """Add the custody page's routes to *app* (the register at *db_path*, if any)."""
    page = _CustodyPage(db_path, prefix.rsplit("/", 1)[-1], tz_name)
    app.router.add_get("/custody", page.page)
    app.router.add_get("/api/custody", page.api)
    app.router.add_get("/custody/berita-acara.{kind:pdf|csv}", page.berita_acara)
    app.on_cleanup.append(page.close)


class _CustodyPage:
    def __init__(self, db_path: str | None, district: str, tz_name: str) -> None:
        self.db_path, self.district = db_path, district
        self.tz = zone(tz_name)
        self._register: Register | None = None

    def register(self) -> Register | None:
        """The register, opened on first use once the keeper has made it."""
        if self._register is None and self.db_path:
            try:
                self._register = Register(self.db_path, create=False)
            except FileNotFoundError:
                return None
        return self._register

    async def close(self, app: web.Application) -> None:
        if self._register is not None:
            self._register.close()

    async def page(self, request: web.Request) -> web.Response:
        html = resources.files("kiosk.district.web").joinpath("static", "custody.html")
        return web.Response(body=html.read_bytes(), content_type="text/html",
                            charset="utf-8", headers=_NO_CACHE)

    async def api(self, request: web.Request) -> web.Response:
        return web.json_response(self.document(), headers=_NO_CACHE)

    def document(self) -> dict:
        today = datetime.now(self.tz).date()
        register = self.register()
        body: dict = {"configured": bool(self.db_path), "ready": register is not None,
                      "district": self.district, "zone": zone_label(self.tz),
                      "today": today.isoformat(), "month": today.strftime("%Y-%m"),
                      "categories": list(CATEGORIES), "stations": [], "district_totals": None,
                      "flagged": [],
                      "links": {kind: f"/custody/berita-acara.{kind}?date={today}"
                                for kind in ("pdf", "csv")}}
        if register is None:
            return body
        month_start, tomorrow = days(today.replace(day=1), today, self.tz)
        day_start, _ = days(today, today, self.tz)
        month = _counts(register.activity(month_start, tomorrow))
        day = _counts(register.activity(day_start, tomorrow))
        names = sorted(name for name in month if name != "")
        body["stations"] = [{"station": name, "today": day.get(name, _zero()),
                             "month": month[name]} for name in names]
        body["district_totals"] = {"today": day.get("", _zero()),
                                   "month": month.get("", _zero())}
        body["flagged"] = [{"uid": line.uid, "station": line.station,
                            "at": datetime.fromtimestamp(line.at, self.tz).isoformat(
                                timespec="seconds"),
                            "record_id": line.record_id, "outcome": line.outcome,
                            "category": line.category, "foreign": line.foreign,
                            "duplicate": line.duplicate}
                           for line in register.flagged(month_start, tomorrow)]
        return body

    async def berita_acara(self, request: web.Request) -> web.Response:
        register = self.register()
        if register is None:
            raise web.HTTPNotFound(text="Register blanko belum ada (custody keep --db).")
        try:
            day = date.fromisoformat(request.query.get("date", "")) if request.query.get(
                "date") else datetime.now(self.tz).date()
        except ValueError:
            raise web.HTTPBadRequest(text="date: YYYY-MM-DD") from None
        station = request.query.get("station") or None
        if station is not None and not is_station(station):
            raise web.HTTPBadRequest(text="station: not a station id")
        try:
            doc = berita_acara(register, day, day, tz=self.tz,
                               office=OFFICE.format(district=self.district),
                               district=self.district, station=station)
        except EmptyPeriod:
            raise web.HTTPNotFound(text=f"Tidak ada blanko tidak valid pada {day}.") from None
        kind = request.match_info["kind"]
        name = f"berita-acara-{day}{'-' + station if station else ''}.{kind}"
        writer, content = (to_pdf, "application/pdf") if kind == "pdf" else (to_csv, "text/csv")
        body = await asyncio.to_thread(writer, doc)  # the lines are read: the page goes on
        return web.Response(body=body, content_type=content, headers={
            **_NO_CACHE, "Content-Disposition": f'inline; filename="{name}"'})


def _zero() -> dict:
    return {"printed": 0, "invalid": dict.fromkeys(CATEGORIES, 0), "invalid_total": 0}


def _counts(rows) -> dict[str, dict]:
    """Per station and for the district (key ``""``): printed, invalid per category."""
    out: dict[str, dict] = {}
    for station, outcome, category, count in rows:
        for key in (station, ""):
            counts = out.setdefault(key, _zero())
            if outcome == "printed":
                counts["printed"] += count
            else:
                counts["invalid"][category] = counts["invalid"].get(category, 0) + count
                counts["invalid_total"] += count
    return out



