"""Receipt printer driver against the receipt simulator over a real pty."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import serial
from escpos.constants import RT_MASK_LOWPAPER, RT_MASK_NOPAPER, RT_MASK_ONLINE

from kiosk.devices.receipt import (
    OFFLINE,
    PAPER_EMPTY,
    PAPER_LOW,
    ReceiptPrinter,
    decode_status,
    masked_nik,
)
from kiosk.sim.receipt import ReceiptSimulator, split_escpos
from kiosk.station.core.events import PrintShiftReport, PrintSlip, ReceiptFault

NIK = "3210015506900007"
RECORD = "REC-KQ-AB"
PAPER_QUERY = b"\x10\x04\x04"


def make_slip(nik_last4: str = NIK[-4:], record_id: str = RECORD) -> PrintSlip:
    return PrintSlip(record_id, nik_last4, "Siti Nurhaliza", "majalengka-01",
                     "2024-05-01T03:04:05Z")


def make_report(picked: int = 12, remaining: int | None = 138) -> PrintShiftReport:
    return PrintShiftReport("majalengka-01", "2024-05-01T10:30:00Z", refills=1, picked=picked,
                            printed=10, spoiled=2, remaining=remaining, rejected=3)


class Faults:
    """Collects the ReceiptFault events the printer emits and waits on them."""

    def __init__(self) -> None:
        self.items: list[ReceiptFault] = []
        self._changed = threading.Condition()

    def __call__(self, event: object) -> None:
        assert isinstance(event, ReceiptFault)
        with self._changed:
            self.items.append(event)
            self._changed.notify_all()

    def reasons(self) -> list[tuple[str, ...]]:
        with self._changed:
            return [e.reasons for e in self.items]

    def wait_count(self, n: int, timeout: float = 3.0) -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.items) >= n, timeout), self.items


def wait_until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def wait_polls(sim: ReceiptSimulator, more: int = 3) -> None:
    """Let the printer check the paper *more* further times."""
    seen = sim.received.count(PAPER_QUERY)
    wait_until(lambda: sim.received.count(PAPER_QUERY) >= seen + more)


@pytest.fixture
def jakarta(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "WIB-7")  # POSIX form: UTC+7 with no tz database needed
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def sim() -> Iterator[ReceiptSimulator]:
    with ReceiptSimulator() as simulator:
        yield simulator


@pytest.fixture
def faults() -> Faults:
    return Faults()


@pytest.fixture
def connect(faults: Faults) -> Iterator[Callable[..., ReceiptPrinter]]:
    started: list[ReceiptPrinter] = []

    def make(url: str, **options) -> ReceiptPrinter:
        options = {"poll_every": 0.05, "reply_timeout": 0.2, **options}
        printer = ReceiptPrinter(url, faults, **options)
        printer.start()
        started.append(printer)
        return printer

    yield make
    for printer in started:
        printer.stop()


def test_slip_prints_every_field_and_the_record_id_as_qr(sim, connect, faults, jakarta) -> None:
    connect(sim.path).slip(make_slip())
    wait_until(lambda: len(sim.documents()) == 1)
    text = sim.text_of(sim.documents()[0])
    for expected in ("TANDA TERIMA", "Stasiun", "majalengka-01", "ID rekaman", RECORD,
                     "************0007", "Nama", "Siti Nurhaliza", "01-05-2024 10:04"):
        assert expected in text
    assert sim.qr_payloads() == [RECORD]
    assert faults.items == []


@pytest.mark.parametrize("nik_given", [NIK[-4:], NIK], ids=["last4", "whole-nik-by-mistake"])
def test_no_nik_digit_but_the_last_four_ever_reaches_the_printer(sim, connect, nik_given) -> None:
    printer = connect(sim.path)
    printer.slip(make_slip(nik_given))
    wait_until(lambda: len(sim.documents()) == 1)
    sent = sim.received
    assert b"************0007" in sent
    windows = {NIK[i : i + 5] for i in range(len(NIK) - 4)}
    assert not [w for w in windows if w.encode() in sent]
    assert re.findall(rb"\d{5,}", sent) == []
    assert masked_nik(NIK) == "************0007"


def test_shift_report_lists_the_ledger_and_says_it_balances(sim, connect, jakarta) -> None:
    printer = connect(sim.path)
    printer.shift_report(make_report())
    printer.shift_report(make_report(picked=13, remaining=None))
    wait_until(lambda: len(sim.documents()) == 2)
    balanced, unbalanced = (sim.text_of(doc) for doc in sim.documents())
    assert "LAPORAN AKHIR SHIFT" in balanced and "01-05-2024 17:30" in balanced
    for label, value in (("Isi ulang", "1"), ("Diambil", "12"), ("Dicetak", "10"),
                         ("Rusak", "2"), ("Sisa", "138"), ("Ditolak", "3")):
        assert re.search(rf"^{label} *: {value}$", balanced, re.MULTILINE), label
    assert "Stok SEIMBANG" in balanced and "TIDAK" not in balanced
    assert "Stok TIDAK SEIMBANG: selisih +1" in unbalanced
    assert re.search(r"^Sisa *: -$", unbalanced, re.MULTILINE)
    assert sim.qr_payloads() == []
    before_each = sim.received.split(b"\x1b@")[:-1]  # ESC @ opens each document
    assert len(before_each) == 2 and all(PAPER_QUERY in chunk for chunk in before_each)


def test_english_slip_and_report(sim, connect, jakarta) -> None:
    printer = connect(sim.path, language="en")
    printer.slip(make_slip())
    printer.shift_report(make_report())
    wait_until(lambda: len(sim.documents()) == 2)
    slip, report = (sim.text_of(doc) for doc in sim.documents())
    for expected in ("HANDOVER SLIP", "Station", "Record id", "Name", "Printed",
                     "************0007", "01-05-2024 10:04"):
        assert expected in slip
    assert "TANDA TERIMA" not in slip
    assert "END-OF-SHIFT REPORT" in report and "Ledger BALANCED" in report
    assert re.search(r"^Picked *: 12$", report, re.MULTILINE)


def test_unknown_language_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="language"):
        ReceiptPrinter("/dev/null", print, language="jv")


def test_paper_out_holds_the_slip_until_paper_returns(connect, faults) -> None:
    with ReceiptSimulator(paper=False) as sim:
        printer = connect(sim.path)
        faults.wait_count(1)
        printer.slip(make_slip())
        wait_polls(sim)
        assert faults.reasons() == [(PAPER_EMPTY,)]
        assert sim.documents() == [] and printer.pending == 1
        sim.set_paper(True)
        wait_until(lambda: len(sim.documents()) == 1)
        faults.wait_count(2)
        wait_polls(sim)
        assert faults.reasons() == [(PAPER_EMPTY,), ()]
        assert printer.pending == 0 and sim.qr_payloads() == [RECORD]


def test_paper_low_warns_once_and_still_prints(connect, faults) -> None:
    with ReceiptSimulator(near_end=True) as sim:
        connect(sim.path).slip(make_slip())
        wait_until(lambda: len(sim.documents()) == 1)
        wait_polls(sim)
        assert faults.reasons() == [(PAPER_LOW,)]
        sim.set_near_end(False)
        faults.wait_count(2)
        assert faults.reasons() == [(PAPER_LOW,), ()]


def test_port_vanishing_is_offline_then_recovers_and_prints(
    connect, faults, tmp_path: Path
) -> None:
    sim = ReceiptSimulator(str(tmp_path / "kiosk-receipt")).start()  # back under the same name
    try:
        _vanish_and_recover(sim, connect(sim.path), faults)
    finally:
        sim.stop()


def _vanish_and_recover(sim: ReceiptSimulator, printer: ReceiptPrinter, faults: Faults) -> None:
    printer.slip(make_slip("0001", "REC-ONE"))
    wait_until(lambda: len(sim.documents()) == 1)
    sim.vanish()
    faults.wait_count(1)
    assert faults.reasons() == [(OFFLINE,)]
    printer.slip(make_slip("0002", "REC-TWO"))
    time.sleep(0.2)  # several polls while the port is gone
    assert printer.pending == 1 and faults.reasons() == [(OFFLINE,)]
    sim.reappear()
    wait_until(lambda: len(sim.documents()) == 2)
    faults.wait_count(2)
    assert faults.reasons() == [(OFFLINE,), ()]
    assert sim.qr_payloads() == ["REC-ONE", "REC-TWO"]


def test_cover_open_is_offline_with_the_cause_in_the_detail(sim, connect, faults) -> None:
    sim.set_cover_open(True)
    printer = connect(sim.path)
    printer.slip(make_slip())
    faults.wait_count(1)
    assert faults.items[0].reasons == (OFFLINE,) and "cover open" in faults.items[0].detail
    assert sim.documents() == []
    sim.set_cover_open(False)
    wait_until(lambda: len(sim.documents()) == 1)


def test_calls_return_at_once_without_a_port_and_the_queue_is_bounded(
    connect, faults, tmp_path: Path
) -> None:
    printer = connect(str(tmp_path / "no-such-port"), max_queued=3)
    started = time.monotonic()
    for index in range(5):
        printer.slip(make_slip(record_id=f"REC-{index}"))
    printer.shift_report(make_report())
    assert time.monotonic() - started < 0.1
    faults.wait_count(1)
    assert faults.reasons() == [(OFFLINE,)] and printer.pending == 3


@pytest.mark.parametrize(
    ("paper", "near_end", "replies"),
    [(True, False, (0x12, 0x12, 0x12, 0x12)), (True, True, (0x12, 0x12, 0x12, 0x1E)),
     (False, False, (0x1A, 0x32, 0x12, 0x7E))],
)
def test_simulator_status_bytes_follow_esc_pos(paper, near_end, replies) -> None:
    with ReceiptSimulator(paper=paper, near_end=near_end) as sim, \
            serial.serial_for_url(sim.path, 19200, timeout=1) as port:
        answers = []
        for n in (1, 2, 3, 4):
            port.write(bytes((0x10, 0x04, n)))
            answers.append(port.read(1)[0])
    assert tuple(answers) == replies
    # python-escpos' own masks read them the same way
    assert (answers[0] & RT_MASK_ONLINE == 0) == paper
    assert (answers[3] & RT_MASK_NOPAPER == RT_MASK_NOPAPER) == (not paper)
    assert (answers[3] & RT_MASK_LOWPAPER == RT_MASK_LOWPAPER) == (near_end or not paper)


def test_decode_status() -> None:
    assert decode_status(0x12, 0x12) == ()
    assert decode_status(0x12, 0x1E) == (PAPER_LOW,)
    assert decode_status(0x12, 0x16) == (PAPER_LOW,)  # one near-end bit is enough
    assert decode_status(0x1A, 0x7E) == (PAPER_EMPTY,)  # the manual's out-of-paper replies
    assert decode_status(0x1A, 0x12) == (OFFLINE,)


def test_split_escpos_waits_for_a_whole_command() -> None:
    data = b"AB\x1bE\x01C\x1d(k\x05\x001P0xy\x1dV\x00"
    assert split_escpos(data) == ([b"AB", b"\x1bE\x01", b"C", b"\x1d(k\x05\x001P0xy",
                                   b"\x1dV\x00"], len(data))
    tokens, used = split_escpos(data[:9])
    assert tokens == [b"AB", b"\x1bE\x01", b"C"] and used == 6


def test_cli_prints_the_path_first_and_stops_on_sigterm(tmp_path: Path) -> None:
    code = (
        "import argparse, sys; from kiosk.sim import receipt; p = argparse.ArgumentParser();"
        "receipt.add_arguments(p); sys.exit(receipt.run(p.parse_args(sys.argv[1:])))"
    )
    link = str(tmp_path / "cli-receipt")
    args = [sys.executable, "-c", code, "--link", link, "--no-paper"]
    with subprocess.Popen(args, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == link
            with serial.serial_for_url(link, 19200, timeout=2) as port:
                port.write(PAPER_QUERY)
                assert port.read(1) == b"\x7e"
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=5) == 0
        finally:
            process.kill()
