"""Inline encoding at the device level: the Evolis driver's smart-card commands, the
printer simulator's chips in a private pcscd's virtual reader, the PC/SC encoder and the
demo personalizer, composed as chip.md's card life (the station's core is not wired yet:
the small loop here stands for it, retrying a chip failure on a new blank).
"""

from __future__ import annotations

import json

import pytest

from kiosk.card.render import render_card
from kiosk.contract.record import parse_record
from kiosk.devices.encoder.facts import CardPresent, Personalized
from kiosk.devices.encoder.pcsc import PcscEncoder
from kiosk.devices.encoder.personalizers import demo_content
from kiosk.devices.printer.base import CardError
from kiosk.devices.printer.evolis.driver import EvolisPrinter
from kiosk.devices.printer.evolis.panels import encode_card
from kiosk.sim.printer import PrinterSimulator
from kiosk.sim.samples import make_record
from kiosk.station.core.events import BLANK_GONE
from tests.sim.test_chip import pcsc, pcsc_parts  # noqa: F401  (fixtures)


class Hooks:
    def __init__(self, panels):
        self.panels, self.picks = panels, 0

    def document(self):
        return self.panels

    def ask_pick(self):
        pass

    def may_pick(self):
        return True

    def picked(self, marks=None):
        self.picks += 1


@pytest.fixture
def rig(pcsc):  # noqa: F811
    with PrinterSimulator(feeder=10, card_seconds=0.01,
                          encoder_port=pcsc.reader("Kiosk Encoder").port) as sim:
        printer = EvolisPrinter(sim.path, print_seconds=1)
        printer.connect()
        encoder = PcscEncoder("Kiosk Encoder", personalizer="demo", timeout_s=5, card_wait_s=5)
        yield sim, printer, encoder
        encoder.close()
        printer.close()


def encode_step(encoder: PcscEncoder, record: dict, log: list) -> bool:
    """UID read → (committed) → personalize → verify → UID read again."""
    seen = encoder.read_card()
    log.append(seen)
    if not isinstance(seen, CardPresent):
        return False
    done = encoder.personalize(record, seen.uid)
    log.append(done)
    again = encoder.read_card(wait_s=0)
    encoder.release()
    return isinstance(done, Personalized) and again == seen


def make_card(printer, encoder, record, panels, attempts=3) -> list:
    log: list = []
    for _ in range(attempts):
        try:
            printer.print_encoded_card(Hooks(panels), lambda: encode_step(encoder, record, log))
        except CardError as error:
            assert error.blank == BLANK_GONE and "Ser" in error.detail
            log.append("rejected")
            continue
        printer.finish()
        return log
    raise AssertionError(f"no card after {attempts} attempts: {log}")


def test_five_records_each_on_its_own_chip_with_a_failing_chip_rejected(rig):
    sim, printer, encoder = rig
    records = [make_record(index) for index in range(1, 6)]
    sim.add_uids([bytes.fromhex(f"04AA00000000{n:02X}") for n in range(1, 8)])
    sim.fail_next_chip("garbage")  # the first blank's chip answers garbage
    logs = []
    for record in records:
        panels = encode_card(render_card(parse_record(json.dumps(record).encode())),
                             ribbon="k")
        logs.append(make_card(printer, encoder, record, panels))
    assert logs[0][1] == "rejected" and "not an APDU response" in logs[0][0].reason
    assert [card.uid for card in sim.rejected_cards] == ["04AA0000000001"]
    assert (sim.printed, sim.picked, sim.rejected) == (5, 6, 1)
    for card, record, log in zip(sim.cards, records, logs, strict=True):
        assert card.chip.content() == demo_content(record)  # its own record, nobody else's
        assert [fact.uid for fact in log if isinstance(fact, CardPresent)] == [card.uid]
    assert sim.rejected_cards[0].chip.writes == 0  # the failing chip got nothing


def test_a_personalization_that_fails_ejects_the_card_and_the_next_blank_prints(rig):
    sim, printer, encoder = rig
    record = make_record(1)
    sim.fail_next_chip("removed-mid-write")
    panels = encode_card(render_card(parse_record(json.dumps(record).encode())), ribbon="k")
    log = make_card(printer, encoder, record, panels)
    assert "rejected" in log and log[1].reason.startswith("the card left the reader during demo")
    assert len(sim.rejected_cards) == 1 and sim.cards[0].chip.content() == demo_content(record)


def test_the_driver_reads_whether_a_card_is_inside_and_rejects_it(rig):
    sim, printer, encoder = rig
    assert printer.card_inside() is False
    assert printer.reject_card() is False  # ERROR CDE: no card inside
    printer.pick_to_encoder()
    assert printer.card_inside() is True
    assert isinstance(encoder.read_card(), CardPresent)
    encoder.release()
    assert printer.reject_card() is True
    assert printer.card_inside() is False and sim.rejected == 1


def test_after_encode_command_is_a_setting(rig):
    sim, printer, encoder = rig
    printer.after_encode = "Sx"  # a printer that wants another command: it is sent as given
    record = make_record(2)
    panels = encode_card(render_card(parse_record(json.dumps(record).encode())), ribbon="k")
    with pytest.raises(CardError) as failed:
        printer.print_encoded_card(Hooks(panels), lambda: encode_step(encoder, record, []))
    assert failed.value.blank == BLANK_GONE and "Sx" in failed.value.detail
    assert "Sx" in sim.commands
