"""What the chip step adds to a card, beside a bare pyserial + pyscard client, in one run.

Real parts: a private pcscd with Debian's vpcd (kiosk/sim/pcscd.py), the printer simulator
on its pty with a chip on every blank laid on the virtual reader while the card sits at
the encoder. Each card goes: Sic → wait for the chip (pcscd's card detection) → UID →
personalize (the demo personalizer: SELECT/CREATE, UPDATE BINARY, READ BINARY) → UID
again → Ss … Se. Two clients do exactly these steps on the same parts, alternating card by
card:

* the station's own chip step: `EvolisPrinter.print_encoded_card` running the print
  worker's chip step (`PrintWorker._encode`: UID read, the UID committed to the job through
  the core's handshake, here a durable commit to a real spool, personalize, UID again) with
  `PcscEncoder` + demo;
* the baseline: bare pyserial writes of the same Evolis commands and bare pyscard calls
  (SCardGetStatusChange, SCardConnect, SCardTransmit) with the same APDUs.

For each: the chip step (Sic answered → the encode step's end), the personalizer's own
work within it (its APDUs), and the rest: card detection, UID reads and, for the layers,
what they add (among it, a third UID read just before the personalizer runs: the check
that nothing is written to a chip other than the one committed). Figures, not a test:
it never fails on them.

    python bench/chip.py [--cards 10] [--card-s 0.05]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import serial
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kiosk.card.render import render_card
from kiosk.contract.record import parse_record
from kiosk.devices.encoder.pcsc import PcscEncoder
from kiosk.devices.encoder.personalizers import DemoPersonalizer, demo_content
from kiosk.devices.printer.evolis import protocol as evolis
from kiosk.devices.printer.evolis.driver import EvolisPrinter
from kiosk.devices.printer.evolis.panels import encode_card
from kiosk.sim.pcscd import PcscServer
from kiosk.sim.printer import PrinterSimulator
from kiosk.sim.samples import make_record
from kiosk.station.core import events as ev
from kiosk.station.printing import PrintWorker, _Card
from kiosk.station.spool import Spool

READER = "Kiosk Encoder"


class TimedDemo(DemoPersonalizer):
    """The demo personalizer, timing its own work."""

    def __init__(self) -> None:
        self.spent: list[float] = []

    def personalize(self, card, record):
        start = time.perf_counter()
        try:
            return super().personalize(card, record)
        finally:
            self.spent.append(time.perf_counter() - start)


class Hooks:
    def __init__(self, panels):
        self.panels = panels

    def document(self):
        return self.panels

    def ask_pick(self):
        pass

    def may_pick(self):
        return True

    def picked(self, marks=None):
        pass


class StationStep:
    """The print worker's chip step with the core's part played by a real spool: each
    ChipSeen is one durable commit of the UID to its job, then the answer (AnswerPick)."""

    def __init__(self, encoder: PcscEncoder, spool: Spool) -> None:
        self.spool = spool
        self.worker = PrintWorker(None, lambda payload: None, self.emit,  # type: ignore[arg-type]
                                  encoder=encoder)

    def emit(self, event: object) -> None:
        if isinstance(event, ev.ChipSeen):
            with self.spool.transaction():
                self.spool.update_job(event.record_id, chip_uid=event.uid)
            self.worker.answer_pick(ev.AnswerPick(event.record_id, True, event.token))

    def card(self, printer: EvolisPrinter, record: dict, panels) -> tuple[float, float]:
        """(card, chip step) seconds through the station's own code."""
        payload = json.dumps(record).encode()
        with self.spool.transaction():
            self.spool.add_job(record["record_id"], 0, "", payload)
        card = _Card(self.worker, ev.StartCard(record["record_id"], payload))
        marks: dict[str, float] = {}

        def encode() -> bool:
            marks["sic"] = time.perf_counter()  # Sic has just been answered OK
            done = self.worker._encode(card)  # the station's chip step, as it runs
            marks["encoded"] = time.perf_counter()
            assert done, card.chip_failure
            return done

        start = time.perf_counter()
        printer.print_encoded_card(Hooks(panels), encode)
        printer.finish()
        return time.perf_counter() - start, marks["encoded"] - marks["sic"]


class Bare:
    """pyserial and pyscard, nothing else: the same commands and APDUs."""

    def __init__(self, path: str) -> None:
        from smartcard import scard

        self.scard = scard
        self.port = serial.serial_for_url(path, 115200, timeout=5)
        _, self.context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        self.spent: list[float] = []

    def ok(self, frame: bytes) -> None:
        self.port.write(frame)
        reply = self.port.read_until(b"\r")
        assert reply.strip(b"\r\0") == b"OK", (frame[:12], reply)

    def apdu(self, handle: int, protocol: int, data: bytes) -> tuple[bytes, int]:
        result, response = self.scard.SCardTransmit(handle, protocol, list(data))
        assert result == self.scard.SCARD_S_SUCCESS
        return bytes(response[:-2]), response[-2] << 8 | response[-1]

    def card(self, record: dict, panels) -> tuple[float, float]:
        scard, start = self.scard, time.perf_counter()
        for frame in (evolis.command("Pem", 2), evolis.command("Pr", "k"),
                      evolis.command("Pmi", "F"), evolis.command("Sic")):
            self.ok(frame)
        sic = time.perf_counter()
        slot = f"{READER} 00 00"
        states = [(slot, scard.SCARD_STATE_UNAWARE)]
        while True:
            _, found = scard.SCardGetStatusChange(self.context, 200, states)
            states = [(name, state & ~scard.SCARD_STATE_CHANGED) for name, state, _ in found]
            if states[0][1] & scard.SCARD_STATE_PRESENT:
                result, handle, protocol = scard.SCardConnect(
                    self.context, slot, scard.SCARD_SHARE_EXCLUSIVE,
                    scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1)
                if result == scard.SCARD_S_SUCCESS:
                    uid, sw = self.apdu(handle, protocol, bytes.fromhex("FFCA000000"))
                    if sw == 0x9000:
                        break
                    scard.SCardDisconnect(handle, scard.SCARD_LEAVE_CARD)
            if time.perf_counter() - sic > 10:
                raise TimeoutError("no chip at the encoder")
        work = time.perf_counter()
        self.personalize(handle, protocol, demo_content(record))
        self.spent.append(time.perf_counter() - work)
        again, _ = self.apdu(handle, protocol, bytes.fromhex("FFCA000000"))
        assert again == uid
        scard.SCardDisconnect(handle, scard.SCARD_LEAVE_CARD)
        encoded = time.perf_counter()
        self.ok(evolis.command("Ss"))
        self.ok(evolis.command("Sr"))
        for panel in panels:
            self.ok(evolis.download_compressed(panel.panel, panel.data) if panel.compressed
                    else evolis.download(panel.panel, panel.code, panel.data))
        self.ok(evolis.command("Se"))
        self.ok(evolis.command("Pem", 0))
        return time.perf_counter() - start, encoded - sic

    def personalize(self, handle: int, protocol: int, content: bytes) -> None:
        size = len(content)
        _, sw = self.apdu(handle, protocol, bytes.fromhex("00A4000002E10400"))
        if sw == 0x6A82:
            fcp = b"\x83\x02\xe1\x04\x80\x02" + size.to_bytes(2) + b"\x82\x01\x01"
            self.apdu(handle, protocol, bytes([0, 0xE0, 0, 0, len(fcp) + 2, 0x62, len(fcp)])
                      + fcp)
        self.apdu(handle, protocol, bytes([0, 0xD6, 0, 0, size]) + content)
        data, _ = self.apdu(handle, protocol, bytes([0, 0xB0, 0, 0, size]))
        assert data == content

    def close(self) -> None:
        self.scard.SCardReleaseContext(self.context)
        self.port.close()


def summary(values: list[float]) -> str:
    median, mean = statistics.median(values) * 1000, statistics.mean(values) * 1000
    return f"{median:7.1f} ms (mean {mean:.1f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cards", type=int, default=10, help="cards per client")
    parser.add_argument("--card-s", type=float, default=0.05, help="print time per card")
    args = parser.parse_args()
    records = [make_record(i) for i in range(1, args.cards + 1)]
    panels = [encode_card(render_card(parse_record(json.dumps(r).encode())), ribbon="k")
              for r in records]
    with tempfile.TemporaryDirectory() as home, PcscServer(Path(home) / "pcscd") as pcsc, \
            PrinterSimulator(feeder=2 * args.cards + 2, card_seconds=args.card_s,
                             encoder_port=pcsc.reader(READER).port) as sim:
        demo = TimedDemo()
        encoder = PcscEncoder(READER, personalizer=demo, timeout_s=10, card_wait_s=10)
        printer = EvolisPrinter(sim.path, ribbon="k", print_seconds=args.card_s + 1)
        printer.connect()
        station = StationStep(encoder, Spool(Path(home) / "spool.db"))
        layered: list[tuple[float, float]] = []
        bare_runs: list[tuple[float, float]] = []
        bare_work: list[float] = []
        for record, card_panels in zip(records, panels, strict=True):
            layered.append(station.card(printer, record, card_panels))
            wait_empty(encoder)
            printer.close()
            bare = Bare(sim.path)
            bare_runs.append(bare.card(record, card_panels))
            bare_work += bare.spent
            bare.close()
            wait_empty(encoder)
            printer.connect()
        encoder.close()
        printer.close()
        assert sim.printed == 2 * args.cards
    report(layered, demo.spent, bare_runs, bare_work)


def wait_empty(encoder: PcscEncoder) -> None:
    """pcscd polls every ~400 ms: the next card is laid only once the slot is seen empty."""
    from kiosk.devices.encoder.facts import NoCard

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not isinstance(encoder.read_card(0), NoCard):
        encoder.release()
        time.sleep(0.02)


def report(layered, layered_work, bare, bare_work) -> None:
    table = Table(title="The chip step per card (median, mean), one run, alternating clients")
    table.add_column("")
    table.add_column("the station's chip step")
    table.add_column("bare pyserial + pyscard")
    rest_layered = [step - work for (_, step), work in zip(layered, layered_work, strict=True)]
    rest_bare = [step - work for (_, step), work in zip(bare, bare_work, strict=True)]
    table.add_row("whole card (Pem;2 … Pem;0)", summary([c for c, _ in layered]),
                  summary([c for c, _ in bare]))
    table.add_row("chip step (Sic OK → encoded)", summary([s for _, s in layered]),
                  summary([s for _, s in bare]))
    table.add_row("personalizer's own work", summary(layered_work), summary(bare_work))
    table.add_row("the rest: card detection, UID reads, layers", summary(rest_layered),
                  summary(rest_bare))
    Console(width=120).print(table)
    gap = statistics.median(rest_layered) - statistics.median(rest_bare)
    print(f"the station's chip step adds {gap * 1000:.1f} ms per card (median) above the bare"
          " client")


if __name__ == "__main__":
    main()
