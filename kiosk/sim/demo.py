"""``kiosk demo``: the whole station in simulation, in one terminal.

A Mosquitto of its own on a free loopback port, the printer and tray
simulators on pseudo-terminals, the real station, and a district that books
a refill and then feeds the sample records (seeds/records.jsonl, then
generated ones), signed with a demo key, at about the pace the printer takes
them. A progress bar counts cards out; the end is a summary with the time per
card, the latency from publish to the printer's first byte and the register of
blanks (chip.md, Custody: printed and each invalid category).

``--encoder inline`` gives every blank a chip (kiosk/sim/chip.py) laid on the virtual
reader of a private pcscd (kiosk/sim/pcscd.py) when the printer holds it at its
encoder; the station writes it with the ``demo`` personalizer. Each blank's UID is
shown as the district hears of it (mqtt.md ``blank`` events), the first blank's chip
fails its write (gagal-encode) so its job goes on the next blank, and the summary lists
the UIDs of the invalid blanks. libpcsclite reads ``PCSCLITE_CSOCK_NAME`` once per
process: the demo sets it to a socket of its own before any PC/SC call.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from kiosk.contract.custody import INVALID_CATEGORIES
from kiosk.contract.signing import generate_key_pair, load_private_key, sign_record
from kiosk.district.client import DistrictClient
from kiosk.extras import MissingExtra, require
from kiosk.sim.broker import Broker, MosquittoMissing
from kiosk.sim.cups import CupsMissing, CupsServer
from kiosk.sim.pcscd import PcscdMissing, PcscServer, find_pcscd
from kiosk.sim.printer import PrinterSimulator
from kiosk.sim.samples import make_kia_record, make_record
from kiosk.sim.tray import TraySimulator
from kiosk.station.config import from_dict
from kiosk.station.core.store import BlankRow
from kiosk.station.loop import Station
from kiosk.station.spool import Spool

STATION, DISTRICT = "demo-01", "3210"
KIA_STATION = "demo-kia"  # the children's card, on an Evolis of its own (issue 28)
SEEDS = Path(__file__).resolve().parents[2] / "seeds" / "records.jsonl"
READER = "Kiosk Encoder"  # the private pcscd's vpcd reader: the printer's built-in encoder
CHIP_FAULT = "write-fails"  # the first blank's chip: its UID reads, its write fails


def sample_records(count: int) -> list[dict]:
    """The seeds first, then generated records with the same generator."""
    records = []
    if SEEDS.exists():
        records = [json.loads(line) for line in SEEDS.read_text().splitlines() if line.strip()]
    index = len(records) + 1
    while len(records) < count:
        records.append(make_record(index))
        index += 1
    return records[:count]


def private_pcscd(workdir: Path) -> PcscServer:
    """A pcscd of the demo's own with the printer's encoder reader (not started); raises
    PcscdMissing or MissingExtra, each saying how to install what is missing."""
    find_pcscd()
    if "smartcard.scard" not in sys.modules:  # libpcsclite has not read the variable yet
        os.environ["PCSCLITE_CSOCK_NAME"] = str(workdir / "pcscd.comm")
    require("smartcard.scard", "chip", "kiosk demo --encoder inline")
    return PcscServer(workdir / "pcscd", (READER,))


def blank_line(event: dict) -> str:
    """One blank event (mqtt.md) as the demo shows it: its UID, what became of it."""
    record = event.get("record_id") or "no record"
    if event.get("outcome") == "printed":
        return f"blank {event['uid']}: printed {record}"
    return f"blank {event['uid']}: invalid {event.get('category')} ({record}: " \
           f"{event.get('detail') or 'no detail'})"


class Demo:
    """Owns the simulated world; `run` plays it and returns the figures."""

    def __init__(self, workdir: Path, cards: int, card_seconds: float,
                 printer: str = "evolis", kia_cards: int = 2, encoder: str = "none") -> None:
        self.workdir = workdir
        self.cards = cards
        self.kia_cards = kia_cards
        self.card_seconds = card_seconds
        self.broker = Broker(workdir / "broker")  # raises MosquittoMissing before anything runs
        self.pcscd = private_pcscd(workdir) if encoder == "inline" else None
        self.on_blank: Any = None  # called with each blank event of a chip (inline)
        self._blanks_shown = 0
        self.station: Station | None = None
        self.district: DistrictClient | None = None
        self.web = None  # the district's page, once started
        self.tray = TraySimulator(str(workdir / "tray"), cards=cards + 40)
        self.cups = None
        if printer == "ipp":  # a private CUPS whose queue ends in the card-printer simulator
            self.cups = CupsServer(workdir / "cups", card_seconds=card_seconds)
        port = self.pcscd.reader(READER).port if self.pcscd is not None else None
        self.printer = PrinterSimulator(str(workdir / "printer"), card_seconds=card_seconds,
                                        feeder=cards + 40, on_pick=self.tray.take_card,
                                        encoder_port=port)
        (workdir / "keys").mkdir()
        private, public = generate_key_pair(workdir / "keys")
        self.key = load_private_key(private)
        self.settings = {
            "station": {"district": DISTRICT, "id": STATION, "spool": str(workdir / "spool.db")},
            "mqtt": {"url": self.broker.url},
            "printer": {"port": self.printer.path, "print_seconds": card_seconds + 5,
                        "poll_s": 0.5, "resync_s": 6.0},
            "tray": {"port": self.tray.path, "low_threshold": 10},
            "panel": {"lcd": "terminal"},
            "security": {"trusted_keys": [str(public)]},
        }
        if self.pcscd is not None:
            self.settings["encoder"] = {"mode": "inline", "reader": READER,
                                        "personalizer": "demo"}
        if self.cups is not None:
            self.settings["printer"] = {"driver": "ipp", "uri": self.cups.uri, "poll_s": 0.1}
            self.settings["tray"]["enabled"] = False  # the tray board sits by an Evolis here
        self.kia_printer = PrinterSimulator(str(workdir / "printer-kia"),
                                            card_seconds=card_seconds, feeder=kia_cards + 10)
        self.kia_station: Station | None = None
        self.kia_settings = {
            "station": {"district": DISTRICT, "id": KIA_STATION, "documents": ["kia"],
                        "spool": str(workdir / "spool-kia.db")},
            "mqtt": {"url": self.broker.url},
            "printer": {"port": self.kia_printer.path, "print_seconds": card_seconds + 5,
                        "poll_s": 0.5, "resync_s": 6.0},
            "tray": {"enabled": False},
            "panel": {"lcd": "none"},
            "security": {"trusted_keys": [str(public)]},
        }

    def start(self) -> None:
        os.environ.setdefault("GPIOZERO_PIN_FACTORY", "mock")  # the panel's pins are simulated
        self.broker.start()
        self.web = start_page(self.broker.url)
        self.tray.start()
        if self.pcscd is not None:
            self.pcscd.start()
            self.printer.fail_next_chip(CHIP_FAULT)  # the first blank's chip
        self.printer.start()
        if self.cups is not None:
            self.cups.start()
        self.station = Station(from_dict(self.settings))
        self.thread = threading.Thread(target=self.station.run, name="station", daemon=True)
        self.thread.start()
        if self.kia_cards:
            self.kia_printer.start()
            self.kia_station = Station(from_dict(self.kia_settings))
            self.kia_thread = threading.Thread(target=self.kia_station.run, name="station-kia",
                                               daemon=True)
            self.kia_thread.start()
        self.district = DistrictClient(self.broker.url, district=DISTRICT).wait_connected()
        names = [STATION, KIA_STATION] if self.kia_cards else [STATION]
        if not self.district.wait_for(
                lambda: all(self.district.availability.get(n) == "online" for n in names), 15):
            raise RuntimeError("a station did not come online")
        self.district.command(STATION, "refill", {"count": self.tray.cards})
        if self.kia_cards:
            self.district.command(KIA_STATION, "refill", {"count": self.kia_printer.feeder})

    def stop(self) -> None:
        """Undo whatever `start` got to, in reverse order."""
        if self.station is not None:
            self.station.stop()
            self.thread.join(timeout=20)
        if self.kia_station is not None:
            self.kia_station.stop()
            self.kia_thread.join(timeout=20)
        self.kia_printer.stop()
        if self.district is not None:
            self.district.close()
        self.printer.stop()
        if self.pcscd is not None:
            self.pcscd.stop()
        if self.cups is not None:
            self.cups.stop()
        self.tray.stop()
        if self.web is not None:
            self.web.stop()
        self.broker.stop()

    def inject_faults(self) -> None:
        """A jam at the third card and an empty feeder later; the 'operator' fixes both."""
        if self.cups is not None:
            self._inject_ipp_faults()
            return
        self.printer.inject("Se", "CARD JAM", times=1)

        def operator() -> None:
            while self.printer.fault is None and self.printer.printed < 2:
                time.sleep(0.1)
            time.sleep(2.0)
            self.printer.clear_jam()
            while self.printer.printed < min(self.cards - 1, 5):
                time.sleep(0.1)
            left = self.printer.feeder
            self.printer.load_cards(-left)
            time.sleep(3.0)
            self.printer.load_cards(left)

        threading.Thread(target=operator, daemon=True).start()

    def _inject_ipp_faults(self) -> None:
        """Through CUPS: an empty feeder at the third card, refilled by the 'operator'."""
        sim = self.cups.printer

        def operator() -> None:
            while sim.printed < min(self.cards - 1, 2):
                time.sleep(0.1)
            sim.raise_fault("media-empty-error")
            time.sleep(3.0)
            sim.clear()

        threading.Thread(target=operator, daemon=True).start()

    def feed(self, progress: Any) -> list[float]:
        """E-KTP records to the E-KTP station, KIA records (one every few) to the KIA one."""
        task = progress.add_task("kartu tercetak / cards printed",
                                 total=self.cards + self.kia_cards)
        sent: list[float] = []
        records = [sign_record(r, self.key) for r in sample_records(self.cards)]
        kia = [sign_record(make_kia_record(i + 1), self.key) for i in range(self.kia_cards)]
        every = max(1, self.cards // max(1, self.kia_cards))
        ids = [r["record_id"] for r in records + kia]
        for index, record in enumerate(records):
            sent.append(self.district.publish_record(STATION, record))
            if kia and index % every == every - 1:
                self.district.publish_record(KIA_STATION, kia.pop(0))
            self._wait(progress, task, ids, pause=self.card_seconds * 2 + 0.1)  # arrives idle
        for record in kia:
            self.district.publish_record(KIA_STATION, record)
        while not self._done(ids):
            self._wait(progress, task, ids, pause=0.2)
        # The last blank's event came before its job's completion (one topic, in order).
        self.show_blanks()
        progress.update(task, completed=self.cards + self.kia_cards)
        return sent

    def _wait(self, progress: Any, task, ids: list[str], pause: float) -> None:
        time.sleep(pause)
        self.show_blanks()
        done = sum(1 for rid in ids if self.district.final_state(rid) == "completed")
        progress.update(task, completed=done)

    def _done(self, ids: list[str]) -> bool:
        return all(self.district.final_state(rid) in ("completed", "aborted") for rid in ids)

    def show_blanks(self) -> None:
        """Each new blank event of a chip (the E-KTP station's, inline) to `on_blank`."""
        blanks = [event for event in self.district.events_of("blank")
                  if event["station"] == STATION and event.get("uid")]
        for event in blanks[self._blanks_shown:]:
            if self.on_blank is not None:
                self.on_blank(blank_line(event))
        self._blanks_shown = len(blanks)

    def register(self) -> tuple[dict[str, int], list[BlankRow]]:
        """The E-KTP station's register of blanks: counts, and every row (newest first),
        read on a connection of its own (the station's is its thread's)."""
        spool = Spool(self.settings["station"]["spool"])
        try:
            return spool.register_counts(), spool.blanks()
        finally:
            spool.close()


def run_demo(*, cards: int = 12, card_seconds: float = 0.5, faults: bool = False,
             printer: str = "evolis", kia_cards: int = 2, encoder: str = "none") -> int:
    screen = _Screen.make()
    if encoder == "inline" and printer != "evolis":
        screen.say("--encoder inline needs --printer evolis: a CUPS queue cannot stop the"
                   " card at an encoder (chip.md)")
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="kiosk-demo-"))
    _log_to(workdir / "demo.log")
    try:
        demo = Demo(workdir, cards, card_seconds, printer, kia_cards, encoder)
    except (MosquittoMissing, CupsMissing, PcscdMissing, MissingExtra) as missing:
        screen.say(str(missing))
        return 1
    where = demo.cups.uri if demo.cups else demo.printer.path
    screen.say(f"kiosk demo: broker {demo.broker.url}, printer {where},"
               f" tray {demo.tray.path}, log {workdir / 'demo.log'}")
    if demo.pcscd is not None:
        screen.say(f"chip encoder: {READER} on a private pcscd ({demo.pcscd.socket_path}),"
                   f" personalizer demo; the first blank's chip fails its write")
        demo.on_blank = screen.say
    started = time.monotonic()
    try:
        demo.start()
        if demo.web is not None:
            screen.say(f"district page: {demo.web.url} (while the demo runs)")
        else:
            screen.say("district page: not served (pip install 'kiosk[district]')")
        if faults:
            demo.inject_faults()
        lcd = demo.station.panel.lcd if demo.station.panel else None
        sent = screen.run(demo.feed, lcd)
        elapsed = time.monotonic() - started
        ledger = demo.station.spool.ledger()
        screen.table("Ringkasan / summary", summary(demo, sent, elapsed, ledger))
    finally:
        demo.stop()
    return 0


class _Screen:
    """What the demo shows: drawn with rich where it is installed (`demo` extra), plain
    lines where it is not (a station's release, proven under emulation, carries no rich)."""

    @staticmethod
    def make() -> _Screen:
        try:
            import rich  # noqa: F401
        except ImportError:
            return _Screen()
        return _RichScreen()

    def say(self, text: str) -> None:
        print(text, flush=True)

    def run(self, feed: Any, lcd: Any) -> list[float]:
        return feed(_PlainProgress())

    def table(self, title: str, rows: list[tuple[str, str]]) -> None:
        print(title)
        for label, value in rows:
            print(f"  {label} │ {value}")


class _PlainProgress:
    """rich's Progress as far as `Demo.feed` uses it: one line each time the count moves."""

    def __init__(self) -> None:
        self._tasks: dict[int, list] = {}

    def add_task(self, description: str, total: int) -> int:
        self._tasks[len(self._tasks)] = [description, total, -1]
        return len(self._tasks) - 1

    def update(self, task: int, completed: int) -> None:
        description, total, shown = self._tasks[task]
        if completed != shown:
            self._tasks[task][2] = completed
            print(f"{description}: {completed}/{total}", flush=True)


class _RichScreen(_Screen):
    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console()

    def say(self, text: str) -> None:
        # soft_wrap: a blank's line stays one line (the terminal folds it, not rich)
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def run(self, feed: Any, lcd: Any) -> list[float]:
        from rich.console import Group
        from rich.live import Live
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=self.console)
        with Live(Group(lcd or "", progress), console=self.console, refresh_per_second=8):
            return feed(progress)

    def table(self, title: str, rows: list[tuple[str, str]]) -> None:
        from rich.table import Table

        table = Table(title=title, show_header=False)
        for label, value in rows:
            table.add_row(label, value)
        self.console.print(table)


def start_page(url: str):
    """The district's page on 127.0.0.1:8080 (or a free port), or None without aiohttp."""
    try:
        from kiosk.district.web.model import DistrictView
        from kiosk.district.web.server import DistrictWeb
    except ImportError:
        return None
    for port in (8080, 0):
        view = DistrictView(f"ektp/v1/{DISTRICT}", district=DISTRICT, stock_sample_s=1.0)
        try:
            return DistrictWeb(url, district=DISTRICT, listen=("127.0.0.1", port),
                               view=view).start()
        except OSError:  # 8080 taken
            continue
    return None


def _log_to(path: Path) -> None:
    """The terminal belongs to the progress bar; the station's log goes to a file."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def first_bytes(sent: list[float], starts: list[float]) -> list[float]:
    """Publish → first printer byte for each record: the first job start after it was sent."""
    latencies, cursor = [], 0
    for at in sent:
        while cursor < len(starts) and starts[cursor] < at:
            cursor += 1
        if cursor < len(starts):
            latencies.append(starts[cursor] - at)
            cursor += 1
    return latencies


def summary(demo: Demo, sent: list[float], elapsed: float, ledger) -> list[tuple[str, str]]:
    cards = [] if demo.cups else demo.printer.cards  # through CUPS: only what the server says
    per_card = [card.printed_at - card.picked_at for card in cards]
    latencies = [] if demo.cups else first_bytes(sent, demo.printer.job_first_byte_at)
    rows = [("cards printed", str(ledger.printed)),
            ("blank cards spoiled", str(ledger.spoiled)),
            ("ledger balanced", "yes" if ledger.balanced else "NO")]
    if demo.kia_station is not None:
        kia = demo.kia_station.spool.ledger()
        rows += [(f"KIA cards printed ({KIA_STATION})", str(kia.printed)),
                 ("KIA ledger balanced", "yes" if kia.balanced else "NO")]
    rows += register_rows(demo)
    rows.append(("run time", f"{elapsed:.1f} s"))
    if per_card:
        rows.append(("time per card, picked → out (median)",
                     f"{statistics.median(per_card):.2f} s"))
    if latencies:
        rows.append(("publish → first printer byte (median)",
                     f"{statistics.median(latencies) * 1000:.1f} ms"))
    return rows


def register_rows(demo: Demo) -> list[tuple[str, str]]:
    """The register of blanks: printed, each invalid category, and (with chips) the UIDs of
    the invalid blanks."""
    counts, blanks = demo.register()
    rows = [(f"register: {name}", str(counts.get(name, 0)))
            for name in ("printed", *INVALID_CATEGORIES)]
    if demo.pcscd is not None:
        invalid = [f"{row.uid} {row.category}" for row in reversed(blanks)
                   if row.outcome == "invalid"]
        rows.append(("invalid blanks (UID)", ", ".join(invalid) or "none"))
    return rows
