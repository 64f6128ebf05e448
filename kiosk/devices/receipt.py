"""The station's receipt printer: handover slips and the end-of-shift report.

Owns the ESC/POS documents (built with python-escpos' ``Dummy`` printer), the
serial link to the receipt printer (any ``serial_for_url`` URL), its real-time
status (``DLE EOT``) and a bounded queue of documents waiting for paper. The
station core decides *when* to print; this module never blocks it and never
raises into it: problems become ``ReceiptFault`` events.
"""

from __future__ import annotations

import contextlib
import logging
import re
import termios
import threading
from collections import deque
from collections.abc import Callable
from datetime import datetime

import serial
from escpos.constants import RT_STATUS
from escpos.printer import Dummy

from kiosk.station.core.events import PrintShiftReport, PrintSlip, ReceiptFault

log = logging.getLogger(__name__)

PAPER_EMPTY = "receipt-paper-empty-warning"
PAPER_LOW = "receipt-paper-low-warning"
OFFLINE = "receipt-offline-report"
_HOLDING = frozenset((PAPER_EMPTY, OFFLINE))  # reasons that keep documents queued

# DLE EOT n replies (ESC/POS): bits 1 and 4 are fixed on, bits 0 and 7 fixed off.
FIXED_MASK, FIXED_BITS = 0x93, 0x12
PRINTER_OFFLINE = 0x08  # n=1
COVER_OPEN, ERROR = 0x04, 0x40  # n=2
NEAR_END, PAPER_END = 0x0C, 0x60  # n=4: near-end sensor bits 2-3, end sensor bits 5-6

_PORT_ERRORS = (serial.SerialException, OSError, termios.error)  # tcflush raises termios.error
NIK_LENGTH, _LABEL_WIDTH = 16, 11

LANGUAGES = ("id", "en")
_WORDING = {  # key: (Bahasa Indonesia, English)
    "slip_title": ("TANDA TERIMA", "HANDOVER SLIP"),
    "slip_subtitle": ("KTP Elektronik", "Electronic ID card"),
    "station": ("Stasiun", "Station"),
    "record": ("ID rekaman", "Record id"),
    "nik": ("NIK", "NIK"),
    "name": ("Nama", "Name"),
    "printed_at": ("Dicetak", "Printed"),
    "slip_footer": ("Simpan tanda terima ini.", "Please keep this slip."),
    "report_title": ("LAPORAN AKHIR SHIFT", "END-OF-SHIFT REPORT"),
    "time": ("Waktu", "Time"),
    "refills": ("Isi ulang", "Refills"),
    "picked": ("Diambil", "Picked"),
    "printed": ("Dicetak", "Printed"),
    "spoiled": ("Rusak", "Spoiled"),
    "remaining": ("Sisa", "Remaining"),
    "rejected": ("Ditolak", "Rejected"),
    "ledger": ("Stok", "Ledger"),
    "balanced": ("SEIMBANG: diambil = dicetak + rusak", "BALANCED: picked = printed + spoiled"),
    "unbalanced": ("TIDAK SEIMBANG: selisih {diff:+d}", "NOT BALANCED: difference {diff:+d}"),
}
TEXTS = {lang: {key: pair[i] for key, pair in _WORDING.items()} for i, lang in enumerate(LANGUAGES)}


def local_time(rfc3339: str) -> str:
    """``DD-MM-YYYY HH:MM`` in the station's local time; the text itself if unparsable."""
    try:
        return datetime.fromisoformat(rfc3339).astimezone().strftime("%d-%m-%Y %H:%M")
    except ValueError:
        return rfc3339


def masked_nik(last4: str) -> str:
    """``************1234``: whatever is passed in, at most its last 4 digits appear."""
    digits = re.sub(r"\D", "", last4)[-4:]
    return digits.rjust(NIK_LENGTH, "*")


def _document(title: str, subtitle: str | None, rows: list[tuple[str, object]]) -> Dummy:
    """A Dummy printer holding a centred title and left-aligned ``label : value`` rows."""
    printer = Dummy()
    printer.hw("INIT")
    printer.set(align="center", bold=True, double_width=True, double_height=True)
    printer.textln(title)
    printer.set(normal_textsize=True, bold=False)
    if subtitle:
        printer.textln(subtitle)
    printer.set(align="left")
    printer.ln()
    for label, value in rows:
        printer.textln(f"{label.ljust(_LABEL_WIDTH)}: {value}")
    printer.ln()
    return printer


def render_slip(slip: PrintSlip, language: str = "id") -> bytes:
    """The ESC/POS bytes of a handover slip, with a QR code of the record id."""
    text = TEXTS[language]
    printer = _document(text["slip_title"], text["slip_subtitle"], [
        (text["station"], slip.station),
        (text["record"], slip.record_id),
        (text["nik"], masked_nik(slip.nik_last4)),
        (text["name"], slip.name),
        (text["printed_at"], local_time(slip.printed_at)),
    ])
    printer.set(align="center")
    printer.qr(slip.record_id, native=True, size=6)
    printer.textln(text["slip_footer"])
    printer.cut()
    return printer.output


def render_shift_report(report: PrintShiftReport, language: str = "id") -> bytes:
    """The ESC/POS bytes of the end-of-shift report of the blank-card ledger."""
    text = TEXTS[language]
    remaining = "-" if report.remaining is None else report.remaining
    counts = [("refills", report.refills), ("picked", report.picked), ("printed", report.printed),
              ("spoiled", report.spoiled), ("remaining", remaining), ("rejected", report.rejected)]
    rows = [(text["station"], report.station), (text["time"], local_time(report.generated_at))]
    rows += [(text[key], value) for key, value in counts]
    printer = _document(text["report_title"], None, rows)
    diff = report.picked - report.printed - report.spoiled
    printer.set(bold=True)
    verdict = text["balanced"] if diff == 0 else text["unbalanced"].format(diff=diff)
    printer.textln(f"{text['ledger']} {verdict}")
    printer.set(bold=False)
    printer.cut()
    return printer.output


def decode_status(printer: int, paper: int) -> tuple[str, ...]:
    """Fault reasons from the replies to DLE EOT 1 and 4 (either bit of a sensor pair counts)."""
    if paper & PAPER_END:
        return (PAPER_EMPTY,)
    if printer & PRINTER_OFFLINE:
        return (OFFLINE,)
    return (PAPER_LOW,) if paper & NEAR_END else ()


class ReceiptPrinter:
    """An ESC/POS receipt printer at *url*, fed by a worker thread.

    Usage::

        receipt = ReceiptPrinter("/dev/kiosk-receipt", events.put, language="id")
        receipt.start()
        receipt.slip(PrintSlip("3210-000123", "1234", "Siti", "majalengka-01", now))
        receipt.shift_report(action)   # both return at once
        receipt.stop()

    Before each document, and every *poll_every* seconds, the worker asks the
    printer for its status (``DLE EOT 1`` and ``4``; ``2`` when it is offline).
    Changes are emitted once as ``ReceiptFault(reasons, detail)``, ``()`` when
    fine again. Paper out or no answer keeps documents queued (at most
    *max_queued*; the oldest is dropped) until the printer is back; paper low
    only warns. A document cut short by a lost port is sent again in full.
    """

    def __init__(
        self, url: str, emit: Callable[[object], None], *, baud: int = 19200,
        language: str = "id", poll_every: float = 3.0, reply_timeout: float = 0.5,
        max_queued: int = 50,
    ) -> None:
        if language not in LANGUAGES:
            raise ValueError(f"receipt language must be one of {LANGUAGES}, got {language!r}")
        self.url = url
        self.language = language
        self._emit_to = emit
        self._baud = baud
        self._poll_every = poll_every
        self._reply_timeout = reply_timeout
        self._queue: deque[PrintSlip | PrintShiftReport] = deque()
        self._max_queued = max_queued
        self._wake = threading.Condition()
        self._poked = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._port: serial.SerialBase | None = None
        self._reasons: tuple[str, ...] = ()

    # -- what the station calls -----------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("ReceiptPrinter already started")
        self._thread = threading.Thread(target=self._run, name="receipt", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        with self._wake:
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._queue:
            log.warning("receipt printer stopped with %d document(s) unprinted", len(self._queue))

    def slip(self, action: PrintSlip) -> None:
        self._enqueue(action)

    def shift_report(self, action: PrintShiftReport) -> None:
        self._enqueue(action)

    @property
    def pending(self) -> int:
        """Documents waiting to be printed."""
        return len(self._queue)

    def _enqueue(self, action: PrintSlip | PrintShiftReport) -> None:
        with self._wake:
            if len(self._queue) >= self._max_queued:
                dropped = self._queue.popleft()
                log.warning("receipt queue full (%d): dropped %s", self._max_queued, _name(dropped))
            self._queue.append(action)
            self._poked = True
            self._wake.notify_all()

    # -- worker thread ----------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._service()
            except Exception:  # the worker must outlive any surprise
                log.exception("receipt worker failed")
            with self._wake:
                self._wake.wait_for(
                    lambda: self._poked or self._stopping.is_set(), self._poll_every
                )
                self._poked = False
        self._close()

    def _service(self) -> None:
        """Check the printer, then print queued documents while it can, checking before each."""
        while not self._stopping.is_set():
            reasons, detail = self._check()
            self._report(reasons, detail)
            if _HOLDING.intersection(reasons) or not self._queue:
                return
            action = self._queue[0]
            if not self._print(action):
                return
            with self._wake:
                if self._queue and self._queue[0] is action:
                    self._queue.popleft()

    def _print(self, action: PrintSlip | PrintShiftReport) -> bool:
        """Send one document; False (and offline reported) if the port failed."""
        try:
            if isinstance(action, PrintSlip):
                data = render_slip(action, self.language)
            else:
                data = render_shift_report(action, self.language)
        except Exception:  # a document that cannot be built is dropped, not retried forever
            log.exception("cannot render the %s", _name(action))
            return True
        try:
            assert self._port is not None  # _check opened it
            self._port.write(data)
            self._port.flush()
        except _PORT_ERRORS as exc:
            self._close()
            self._report((OFFLINE,), f"write to {self.url} failed: {exc}")
            return False
        return True

    def _check(self) -> tuple[tuple[str, ...], str]:
        """(reasons, detail) from the printer's real-time status; opens the port if needed."""
        try:
            if self._port is None:
                self._port = serial.serial_for_url(
                    self.url, baudrate=self._baud, timeout=self._reply_timeout, write_timeout=2.0
                )
            self._port.reset_input_buffer()
            printer, paper = self._ask(1), self._ask(4)
            cause = self._ask(2) if printer is not None and printer & PRINTER_OFFLINE else 0
        except (*_PORT_ERRORS, ValueError) as exc:  # ValueError: a malformed URL
            self._close()
            return (OFFLINE,), f"receipt port {self.url}: {exc}"
        if printer is None or cause is None:
            self._close()  # a stale handle is reopened at the next check
            return (OFFLINE,), f"no status answer within {self._reply_timeout:g} s"
        if paper is None:  # no roll sensor report: like python-escpos, take paper as adequate
            paper = FIXED_BITS
        return decode_status(printer, paper), _describe(printer, paper, cause)

    def _ask(self, n: int) -> int | None:
        """The reply to ``DLE EOT n``; None if none came or it is not a status byte."""
        assert self._port is not None
        self._port.write(RT_STATUS + bytes((n,)))
        reply = self._port.read(1)
        if len(reply) != 1 or reply[0] & FIXED_MASK != FIXED_BITS:
            return None
        return reply[0]

    def _close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            with contextlib.suppress(*_PORT_ERRORS):
                port.close()

    def _report(self, reasons: tuple[str, ...], detail: str) -> None:
        if reasons == self._reasons:
            return
        self._reasons = reasons
        try:
            self._emit_to(ReceiptFault(reasons, detail))
        except Exception:  # a faulty consumer must not stop the printing
            log.exception("receipt emit failed")


def _describe(printer: int, paper: int, cause: int) -> str:
    causes = [text for bit, text in ((COVER_OPEN, "cover open"), (ERROR, "error")) if cause & bit]
    return " ".join([f"DLE EOT 1/2/4: {printer:#04x}/{cause:#04x}/{paper:#04x}", *causes])


def _name(action: PrintSlip | PrintShiftReport) -> str:
    """What a document is, for logs: no personal data."""
    return f"slip of {action.record_id}" if isinstance(action, PrintSlip) else "shift report"
