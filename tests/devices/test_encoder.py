"""The chip encoder on real parts: a private pcscd, Debian's vpcd, the project's chip emulator.

Each bad input of issue 26 at the encoder level gives a clear reason, and nothing is
written to a chip that is not the one named for its record (`Chip.writes` counts every
write command the chip received).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest

from kiosk.devices.encoder import encoder_class, make_encoder
from kiosk.devices.encoder.facts import (
    CardPresent,
    ChipState,
    ChipUnreadable,
    NoCard,
    NotPersonalized,
    Personalized,
    ReaderGone,
    ReaderPresent,
    SecondCard,
)
from kiosk.devices.encoder.pcsc import PcscEncoder
from kiosk.devices.encoder.personalizer import (
    CardGone,
    Outcome,
    UnknownPersonalizer,
    installed,
    load_personalizer,
)
from kiosk.devices.encoder.personalizers import DemoPersonalizer, demo_content
from kiosk.sim.chip import Chip, VirtualCard
from kiosk.sim.samples import make_record
from tests.sim.test_chip import pcsc, pcsc_parts, wait_card  # noqa: F401  (fixtures)

UID = bytes.fromhex("04A1B2C3D4E5F6")
OTHER = bytes.fromhex("04112233445566")
RECORD = {**make_record(1), "sig": {"alg": "ed25519", "kid": "0" * 16, "value": "x"}}


@pytest.fixture
def encoder(pcsc):  # noqa: F811
    device = PcscEncoder("Kiosk Encoder", personalizer="demo", timeout_s=3, card_wait_s=5)
    yield device
    device.close()


def card(pcsc, chip: Chip, slot: int = 0, reader: str = "Kiosk Encoder") -> VirtualCard:  # noqa: F811
    return VirtualCard(chip, pcsc.reader(reader).port + slot)


# -- the good path -----------------------------------------------------------------------


def test_the_uid_of_the_card_in_the_reader(pcsc, encoder):  # noqa: F811
    with card(pcsc, Chip(UID)):
        assert encoder.read_card() == CardPresent("Kiosk Encoder 00 00", "04A1B2C3D4E5F6")


@pytest.mark.parametrize("length", [4, 10])
def test_single_and_triple_size_uids(pcsc, encoder, length):  # noqa: F811
    uid = bytes(range(1, length + 1))
    with card(pcsc, Chip(uid)):
        assert encoder.read_card().uid == uid.hex().upper()


def test_demo_personalizer_round_trip(pcsc, encoder):  # noqa: F811
    chip = Chip(UID)
    with card(pcsc, chip):
        seen = encoder.read_card()
        assert encoder.untouched(seen.uid) == ChipState(seen.reader, seen.uid, untouched=True)
        assert encoder.personalize(RECORD, seen.uid) == Personalized(
            seen.reader, seen.uid, RECORD["record_id"])
        assert encoder.untouched(seen.uid) == ChipState(seen.reader, seen.uid, untouched=False)
        assert encoder.read_card(wait_s=0) == seen  # the UID read again before the print
    assert chip.content() == demo_content(RECORD)
    text = chip.content().decode()
    assert text.startswith(f"{RECORD['record_id']}|sha256:") and len(text.split(":")[1]) == 16
    assert RECORD["nik"] not in text


def test_demo_content_ignores_the_signature():
    assert demo_content(RECORD) == demo_content({**RECORD, "sig": {"value": "other"}})
    assert demo_content(RECORD) != demo_content({**RECORD, "priority": 9})


def test_none_personalizer_writes_nothing(pcsc):  # noqa: F811
    chip = Chip(UID)
    encoder = PcscEncoder("Kiosk Encoder", personalizer="none", card_wait_s=5)
    with card(pcsc, chip):
        assert isinstance(encoder.read_card(), CardPresent)
        assert isinstance(encoder.personalize(RECORD, UID.hex().upper()), Personalized)
    encoder.close()
    assert chip.writes == 0 and chip.files == {}


def test_no_card_within_card_wait_s(pcsc):  # noqa: F811
    encoder = PcscEncoder("Kiosk Encoder", card_wait_s=0.5)
    assert encoder.read_card() == NoCard("Kiosk Encoder 00", 0.5)
    assert encoder.personalize(RECORD, "04A1B2C3D4E5F6").written is False
    encoder.close()


# -- bad input, each with its reason and nothing written where it must not be --------------


def test_a_chip_that_answers_garbage(pcsc, encoder):  # noqa: F811
    chip = Chip(UID, fault="garbage")
    with card(pcsc, chip):
        seen = encoder.read_card()
        assert isinstance(seen, ChipUnreadable)
        assert "not an APDU response" in seen.reason
        refused = encoder.personalize(RECORD, UID.hex().upper())
    assert isinstance(refused, NotPersonalized) and refused.written is False
    assert "nothing written" in refused.reason and chip.writes == 0


def test_an_impossible_uid_length(pcsc, encoder):  # noqa: F811
    chip = Chip(UID, fault="bad-uid")
    with card(pcsc, chip):
        seen = encoder.read_card()
        assert seen == ChipUnreadable(
            "Kiosk Encoder 00 00", "impossible UID length: 8 bytes (ISO 14443: 4, 7 or 10)")
        assert encoder.personalize(RECORD, UID.hex().upper()).written is False
    assert chip.writes == 0


def test_a_personalizer_that_raises(pcsc):  # noqa: F811
    class Broken:
        def personalize(self, card, record):
            raise RuntimeError("SAM refused the key")

        def untouched(self, card):
            raise RuntimeError("SAM absent")

    encoder = PcscEncoder("Kiosk Encoder", personalizer=Broken(), card_wait_s=5)
    with card(pcsc, Chip(UID)):
        encoder.read_card()
        failed = encoder.personalize(RECORD, UID.hex().upper())
        assert failed == NotPersonalized(
            "Kiosk Encoder 00 00", UID.hex().upper(), RECORD["record_id"],
            "Broken failed: RuntimeError: SAM refused the key", written=True)
        assert encoder.untouched() == ChipUnreadable(
            "Kiosk Encoder 00 00", "Broken failed: RuntimeError: SAM absent")
    encoder.close()


def test_a_personalizer_that_hangs_past_timeout_s_cannot_write_late(pcsc):  # noqa: F811
    release, tried = threading.Event(), threading.Event()
    late: list[BaseException] = []

    class Hanging:
        def personalize(self, card, record):
            release.wait(10)
            try:
                card.transmit(bytes.fromhex("00D6000001") + b"X")
            except CardGone as error:
                late.append(error)
            finally:
                tried.set()
            return Outcome(True)

        def untouched(self, card):
            return True

    chip = Chip(UID, files={0xE104: bytearray(4)}, selected=0xE104)
    encoder = PcscEncoder("Kiosk Encoder", personalizer=Hanging(), timeout_s=0.3,
                          card_wait_s=5)
    with card(pcsc, chip):
        encoder.read_card()
        failed = encoder.personalize(RECORD, UID.hex().upper())
        release.set()
        assert tried.wait(10)
    encoder.close()
    assert isinstance(failed, NotPersonalized) and failed.written is True
    assert failed.reason == "Hanging did not finish within timeout_s = 0.3 s"
    assert late and chip.writes == 0  # the late write was refused before the chip


@pytest.mark.parametrize(("reader", "mode"), [("Kiosk Encoder", "inline"), ("Kiosk Desk", "desk")])
def test_a_card_removed_mid_encode(pcsc, reader, mode):  # noqa: F811
    chip = Chip(UID, fault="removed-mid-write")
    encoder = PcscEncoder(reader, personalizer="demo", mode=mode, card_wait_s=5)
    with card(pcsc, chip, reader=reader):
        encoder.read_card()
        failed = encoder.personalize(RECORD, UID.hex().upper())
    encoder.close()
    assert isinstance(failed, NotPersonalized) and failed.written is True
    assert failed.reason.startswith("the card left the reader during demo")


@pytest.mark.parametrize(("fault", "reason"), [
    ("write-fails", "demo: UPDATE BINARY at 0 answered SW 6581"),
    ("corrupt", "demo: file E104 read back differs from what was written"),
])
def test_a_write_or_verify_that_fails(pcsc, encoder, fault, reason):  # noqa: F811
    with card(pcsc, Chip(UID, fault=fault)):
        encoder.read_card()
        failed = encoder.personalize(RECORD, UID.hex().upper())
    assert isinstance(failed, NotPersonalized) and failed.reason == reason


def test_another_chip_than_the_one_committed_is_never_written(pcsc, encoder):  # noqa: F811
    chip = Chip(OTHER)
    with card(pcsc, chip):
        assert isinstance(encoder.read_card(), CardPresent)
        refused = encoder.personalize(RECORD, UID.hex().upper())
    assert refused.written is False and chip.writes == 0
    assert refused.reason == (
        "the chip at the encoder is 04112233445566, not 04A1B2C3D4E5F6: nothing written")


def test_a_card_swapped_after_its_uid_was_read_is_not_written(pcsc, encoder):  # noqa: F811
    first, second = Chip(UID), Chip(OTHER)
    with card(pcsc, first):
        seen = encoder.read_card()
    assert wait_card("Kiosk Encoder 00 00", present=False)  # pcscd saw it go
    with card(pcsc, second):
        assert isinstance(encoder.read_card(), CardPresent)  # the new card is seen...
        refused = encoder.personalize(RECORD, seen.uid)  # ...and not written for the old
    assert refused.written is False and first.writes == second.writes == 0


def test_the_reader_unplugged_and_plugged_back(pcsc, encoder):  # noqa: F811
    with card(pcsc, Chip(UID)):
        assert isinstance(encoder.read_card(), CardPresent)
        pcsc.unplug("Kiosk Encoder")
        gone = encoder.check()
        assert isinstance(gone, ReaderGone) and "Kiosk Encoder" in gone.reason
        assert isinstance(encoder.read_card(), ReaderGone)
        assert isinstance(encoder.personalize(RECORD, UID.hex().upper()), ReaderGone)
        pcsc.plug("Kiosk Encoder")
        assert encoder.check() == ReaderPresent("Kiosk Encoder 00", came_back=True)
        assert encoder.check() == ReaderPresent("Kiosk Encoder 00", came_back=False)
        assert encoder.read_card() == CardPresent("Kiosk Encoder 00 00", UID.hex().upper())


def test_pcscd_stopped_is_a_reader_gone(pcsc, encoder):  # noqa: F811
    pcsc.stop()
    gone = encoder.check()
    assert isinstance(gone, ReaderGone)


def test_a_second_card_on_the_desk_reader(pcsc):  # noqa: F811
    encoder = PcscEncoder("Kiosk Desk", personalizer="demo", mode="desk", card_wait_s=5)
    first, second = Chip(UID), Chip(OTHER)
    with card(pcsc, first, reader="Kiosk Desk"):
        assert isinstance(encoder.read_card(), CardPresent)
        with card(pcsc, second, slot=1, reader="Kiosk Desk"):
            assert wait_card("Kiosk Desk 00 01", present=True)  # pcscd polls: ~400 ms
            seen = encoder.read_card()
            assert seen == SecondCard("Kiosk Desk 00", ("Kiosk Desk 00 00", "Kiosk Desk 00 01"))
            refused = encoder.personalize(RECORD, UID.hex().upper())
    encoder.close()
    assert refused.written is False and refused.reason == "2 cards on the reader: nothing written"
    assert first.writes == second.writes == 0


# -- choosing the reader, the mode and the personalizer ------------------------------------


def test_the_reader_by_a_unique_part_of_its_name_or_refused_when_ambiguous(pcsc):  # noqa: F811
    assert PcscEncoder("Desk").check() == ReaderPresent("Kiosk Desk 00")
    ambiguous = PcscEncoder("Kiosk").check()
    assert isinstance(ambiguous, ReaderGone)
    assert ambiguous.reason == ("'Kiosk' names several readers (Kiosk Desk 00, Kiosk Encoder 00):"
                                " give more of the name")
    assert "listed: " in PcscEncoder("Omnikey").check().reason


@dataclass
class Section:
    mode: str = "inline"
    reader: str = "Kiosk Encoder"
    personalizer: str = "demo"
    timeout_s: float = 60.0
    card_wait_s: float | None = None


def test_the_mode_chooses_the_encoder(pcsc_parts):  # noqa: F811
    assert make_encoder(Section(mode="none")) is None
    inline, desk = make_encoder(Section()), make_encoder(Section(mode="desk"))
    assert (inline.card_wait_s, desk.card_wait_s) == (10.0, 120.0)
    assert make_encoder(Section(card_wait_s=3)).card_wait_s == 3
    assert isinstance(inline.personalizer, DemoPersonalizer)
    with pytest.raises(ValueError, match="unknown encoder mode 'usb'"):
        encoder_class("usb")


def test_personalizers_are_found_by_entry_point():
    assert {"none", "demo"} <= set(installed())
    assert isinstance(load_personalizer("demo"), DemoPersonalizer)
    with pytest.raises(UnknownPersonalizer, match="no personalizer 'dukcapil' is installed"):
        load_personalizer("dukcapil")


def test_no_personal_data_in_the_journal_or_the_facts(pcsc, caplog):  # noqa: F811
    """The demo writes RECORD_ID|sha256:…; reasons and logs name no person."""
    import logging

    caplog.set_level(logging.DEBUG)
    facts = []
    encoder = PcscEncoder("Kiosk Encoder", personalizer="demo", card_wait_s=5)
    for fault in (None, "write-fails", "corrupt", "removed-mid-write"):
        with card(pcsc, Chip(UID, fault=fault)):
            facts += [encoder.read_card(), encoder.personalize(RECORD, UID.hex().upper())]
        assert wait_card("Kiosk Encoder 00 00", present=False)
    encoder.close()
    said = caplog.text + repr(facts)
    for personal in (RECORD["nik"], RECORD["fields"]["nama"], RECORD["fields"]["tempat_lahir"]):
        assert personal not in said


def test_what_the_doctor_can_say(pcsc):  # noqa: F811
    from kiosk.devices.encoder.findings import encoder_findings

    assert next(iter(encoder_findings(Section(mode="none"))))[0] == "ok"
    assert next(iter(encoder_findings(Section(personalizer="dukcapil"))))[:2] == (
        "fail", "personalizer")
    assert [f[:2] for f in encoder_findings(Section(reader="Omnikey"))][-1] == ("fail", "reader")
    assert [f[0] for f in encoder_findings(Section())] == ["ok", "ok", "warn"]
    with card(pcsc, Chip(UID)):
        assert wait_card("Kiosk Encoder 00 00", present=True)
        assert list(encoder_findings(Section()))[-1] == (
            "ok", "chip", "a card answers on Kiosk Encoder 00 00: UID 04A1B2C3D4E5F6")
    with card(pcsc, Chip(UID, fault="garbage")):
        assert wait_card("Kiosk Encoder 00 00", present=True)
        assert list(encoder_findings(Section()))[-1][:2] == ("fail", "chip")


def test_a_card_another_program_holds_for_a_moment_is_waited_for_not_spoiled(
        pcsc, encoder):  # noqa: F811
    """kiosk doctor looks at the reader (it holds the card exclusively for a moment): the
    station's read meanwhile waits for the card, as for one not seen yet."""
    other = PcscEncoder("Kiosk Encoder", card_wait_s=5)
    with card(pcsc, Chip(UID)):
        assert isinstance(other.read_card(), CardPresent)  # held by the other program
        released = threading.Timer(0.8, other.release)
        released.start()
        try:
            assert encoder.read_card() == CardPresent("Kiosk Encoder 00 00", "04A1B2C3D4E5F6")
        finally:
            released.join()
            other.close()
