"""Simulator of an ESC/POS receipt printer on a pseudo-terminal.

Owns a pretend thermal printer: it keeps every byte the station sends, answers
the real-time status queries (``DLE EOT n``) with the bit patterns of
Epson-compatible printers, splits what it gets into documents at each cut, and
reads them back (text, QR payloads) for tests. Also the ``kiosk sim receipt``
command glue (``add_arguments`` / ``run``).
"""

from __future__ import annotations

import argparse
import threading
from types import TracebackType

from kiosk.sim import serve_until_signalled
from kiosk.sim.pty import PtyPort

ESC, GS, DLE, FS, EOT = 0x1B, 0x1D, 0x10, 0x1C, 0x04
_COMMAND_STARTS = frozenset((ESC, GS, DLE, FS))

# DLE EOT n replies: bits 1 and 4 fixed on, 0 and 7 fixed off (ESC/POS reference).
FIXED_ON = 0x12
OFFLINE = 0x08  # n=1
COVER_OPEN, PAPER_END_STOP = 0x04, 0x20  # n=2
NEAR_END, PAPER_END = 0x0C, 0x60  # n=4

# Total length of fixed-size commands, by their first two bytes.
_FIXED_LENGTH = {
    b"\x1b@": 2, b"\x1b2": 2, b"\x1bp": 5, b"\x1bc": 4,
    b"\x1dL": 4, b"\x1dW": 4, b"\x1dP": 4,
    b"\x10\x04": 3, b"\x10\x05": 3, b"\x10\x14": 5, b"\x1c.": 2, b"\x1c&": 2,
}
_CUT_WITH_FEED = frozenset((65, 66, 97, 98, 103, 104))


def _command_length(buf: bytes | bytearray, i: int) -> int | None:
    """Bytes in the command starting at *buf[i]*; None until all of it has arrived."""
    have = len(buf) - i
    if have < 2:
        return None
    head = bytes(buf[i : i + 2])
    need: int | None
    if head == b"\x1d(":  # GS ( k, GS ( L: pL pH count what follows them
        need = 5 + buf[i + 3] + 256 * buf[i + 4] if have >= 5 else None
    elif head == b"\x1dv":  # GS v 0 m xL xH yL yH: a raster image
        need = 8 + (buf[i + 4] + 256 * buf[i + 5]) * (buf[i + 6] + 256 * buf[i + 7]) \
            if have >= 8 else None
    elif head == b"\x1dV":  # GS V m [n]: the forms that feed first carry n
        need = (4 if buf[i + 2] in _CUT_WITH_FEED else 3) if have >= 3 else None
    else:
        need = _FIXED_LENGTH.get(head, 3)  # most ESC/GS commands take one parameter byte
    return need if need is not None and have >= need else None


def split_escpos(buf: bytes | bytearray) -> tuple[list[bytes], int]:
    """Complete tokens (a text run or one command) at the start of *buf*, and bytes used."""
    tokens: list[bytes] = []
    i = 0
    while i < len(buf):
        if buf[i] in _COMMAND_STARTS:
            length = _command_length(buf, i)
            if length is None:
                break
        else:
            length = 1
            while i + length < len(buf) and buf[i + length] not in _COMMAND_STARTS:
                length += 1
        tokens.append(bytes(buf[i : i + length]))
        i += length
    return tokens, i


def is_cut(token: bytes) -> bool:
    return token.startswith(b"\x1dV")


class ReceiptSimulator:
    """An ESC/POS receipt printer on a pty: ``path`` is what the station opens.

    Usage::

        with ReceiptSimulator(paper=True) as sim:
            receipt = ReceiptPrinter(sim.path, events.put)
            sim.set_paper(False)          # DLE EOT 4 now reports paper end
            doc = sim.documents()[0]      # the bytes up to and including a cut
            sim.text_of(doc), sim.qr_payloads()

    Status commands are answered at once and are not part of the documents;
    everything else is kept as sent (``received`` holds every byte).
    """

    def __init__(self, link: str | None = None, *, paper: bool = True,
                 near_end: bool = False) -> None:
        self._port = PtyPort(link)
        self._lock = threading.Lock()
        self._paper, self._near_end, self._cover_open = paper, near_end, False
        self._received = bytearray()
        self._unparsed = bytearray()
        self._current: list[bytes] = []
        self._documents: list[list[bytes]] = []
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def path(self) -> str:
        return self._port.path

    # -- life cycle -------------------------------------------------------------

    def start(self) -> ReceiptSimulator:
        if self._thread is not None:
            raise RuntimeError("ReceiptSimulator already started")
        self._thread = threading.Thread(target=self._run, name="receipt-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._port.close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ReceiptSimulator:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- controls -----------------------------------------------------------------

    def set_paper(self, present: bool) -> None:
        self._paper = present

    def set_near_end(self, near_end: bool) -> None:
        self._near_end = near_end

    def set_cover_open(self, open: bool) -> None:
        self._cover_open = open

    def vanish(self) -> None:
        self._port.vanish()

    def reappear(self) -> None:
        self._port.reappear()

    # -- what was printed -------------------------------------------------------------

    @property
    def received(self) -> bytes:
        with self._lock:
            return bytes(self._received)

    def documents(self) -> list[bytes]:
        """Every document received so far, each ending with its cut command."""
        with self._lock:
            return [b"".join(tokens) for tokens in self._documents]

    @staticmethod
    def text_of(doc: bytes) -> str:
        """The printable text of *doc*, commands removed (code page 437, as after ESC @)."""
        tokens, _ = split_escpos(doc)
        text = b"".join(t for t in tokens if t[0] not in _COMMAND_STARTS)
        return text.decode("cp437", errors="replace")

    def qr_payloads(self) -> list[str]:
        """The data of every QR code stored (``GS ( k`` cn=49 fn=80), in order."""
        with self._lock:
            tokens = [t for doc in self._documents for t in doc] + self._current
        return [t[8:].decode("utf-8", errors="replace") for t in tokens
                if t.startswith(b"\x1d(k") and t[5:7] == b"1P"]

    # -- the printer's loop -----------------------------------------------------------

    def status(self, n: int) -> int:
        """The reply to ``DLE EOT n``."""
        stopped = not self._paper or self._cover_open
        if n == 1:
            return FIXED_ON | (OFFLINE if stopped else 0)
        if n == 2:
            return (FIXED_ON | (COVER_OPEN if self._cover_open else 0)
                    | (0 if self._paper else PAPER_END_STOP))
        if n == 4:
            near_end = self._near_end or not self._paper  # the near-end sensor sees no paper too
            return FIXED_ON | (NEAR_END if near_end else 0) | (0 if self._paper else PAPER_END)
        return FIXED_ON  # n=3: no cutter or unrecoverable error

    def _run(self) -> None:
        while not self._stopping.is_set():
            if not self._port.present:
                self._unparsed.clear()  # a half command does not survive unplugging
                self._stopping.wait(0.02)
                continue
            chunk = self._port.read(timeout=0.05)
            if chunk:
                self._feed(chunk)

    def _feed(self, chunk: bytes) -> None:
        replies = bytearray()
        with self._lock:
            self._received += chunk
            self._unparsed += chunk
            tokens, used = split_escpos(self._unparsed)
            del self._unparsed[:used]
            for token in tokens:
                if token[:2] == bytes((DLE, EOT)):
                    replies.append(self.status(token[2]))
                    continue
                self._current.append(token)
                if is_cut(token):
                    self._documents.append(self._current)
                    self._current = []
        if replies:
            self._port.write(bytes(replies))  # outside the lock: a full pty may block


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``kiosk sim receipt``."""
    parser.add_argument("--link", help="also publish the pty at this path")
    parser.add_argument("--no-paper", action="store_true", help="start with the paper roll empty")
    parser.add_argument("--near-end", action="store_true", help="start with the roll near its end")


def run(args: argparse.Namespace) -> int:
    """Run until SIGINT/SIGTERM; the pty path is the first line on stdout."""
    sim = ReceiptSimulator(args.link, paper=not args.no_paper, near_end=args.near_end)
    return serve_until_signalled(sim, lambda: f"{len(sim.documents())} document(s) received")
