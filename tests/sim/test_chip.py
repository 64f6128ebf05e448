"""The chip emulator and the private pcscd: real pcscd, Debian's vpcd, pyscard as the client.

A missing pcscd, vpcd driver or pyscard fails these tests with how to install them (never
a skip). The fixtures here (`pcsc`, `reader`) serve tests/devices/test_encoder.py too.
"""

from __future__ import annotations

import time

import pytest

from kiosk.sim.chip import ATR, Chip, VirtualCard, seeded_uids, uids_from_file
from kiosk.sim.pcscd import PcscdMissing, PcscServer, find_pcscd, list_readers

UID = bytes.fromhex("04A1B2C3D4E5F6")
WAIT = 10.0


@pytest.fixture(scope="session")
def pcsc_parts() -> None:
    try:
        find_pcscd()
        import smartcard.scard  # noqa: F401  (the `chip` extra)
    except (PcscdMissing, ImportError) as missing:
        pytest.fail(f"{missing} (and pip install -e '.[chip]', or scripts/setup)",
                    pytrace=False)


@pytest.fixture
def pcsc(tmp_path, pcsc_parts):
    """A private pcscd with two vpcd readers: "Kiosk Encoder" and "Kiosk Desk"."""
    server = PcscServer(tmp_path / "pcscd", ("Kiosk Encoder", "Kiosk Desk")).start()
    yield server
    server.stop()


def apdu(reader: str, *commands: bytes, wait: float = WAIT) -> list[bytes]:
    """Each command's response (data + SW) from the card in *reader*, through pcscd."""
    from smartcard import scard

    _, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    try:
        deadline = time.monotonic() + wait
        while True:
            result, handle, protocol = scard.SCardConnect(
                context, reader, scard.SCARD_SHARE_EXCLUSIVE,
                scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1)
            if result == scard.SCARD_S_SUCCESS:
                break
            assert time.monotonic() < deadline, scard.SCardGetErrorMessage(result)
            time.sleep(0.05)
        answers = []
        for command in commands:
            result, response = scard.SCardTransmit(handle, protocol, list(command))
            assert result == scard.SCARD_S_SUCCESS, scard.SCardGetErrorMessage(result)
            answers.append(bytes(response))
        scard.SCardDisconnect(handle, scard.SCARD_LEAVE_CARD)
        return answers
    finally:
        scard.SCardReleaseContext(context)


def card_state(reader: str) -> int:
    from smartcard import scard

    _, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    try:
        result, states = scard.SCardGetStatusChange(
            context, 0, [(reader, scard.SCARD_STATE_UNAWARE)])
        return states[0][1] if result == scard.SCARD_S_SUCCESS else 0
    finally:
        scard.SCardReleaseContext(context)


def wait_card(reader: str, present: bool, timeout: float = WAIT) -> bool:
    from smartcard import scard

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if bool(card_state(reader) & scard.SCARD_STATE_PRESENT) == present:
            return True
        time.sleep(0.05)
    return False


# -- the chip itself (no I/O) --------------------------------------------------------------


def test_get_data_answers_the_uid():
    assert Chip(UID).answer(bytes.fromhex("FFCA000000")) == UID + b"\x90\x00"
    assert Chip(UID, fault="bad-uid").answer(bytes.fromhex("FFCA000000"))[:-2] != UID


def test_a_transparent_file_is_created_written_and_read_back():
    chip = Chip(UID)
    assert chip.answer(bytes.fromhex("00A4000C02E104")) == b"\x6a\x82"
    assert chip.answer(bytes.fromhex("00E0000009 6207 8302E104 800120".replace(" ", ""))) \
        == b"\x90\x00"
    assert chip.answer(bytes.fromhex("00D6000003414243")) == b"\x90\x00"
    assert chip.answer(bytes.fromhex("00A4000C02E104")) == b"\x90\x00"
    assert chip.answer(bytes.fromhex("00B0000003")) == b"ABC\x90\x00"
    assert chip.answer(bytes.fromhex("00B0001E04")) == b"\0\0\x62\x82"  # past the end
    assert chip.content()[:3] == b"ABC"


def test_faults_on_demand():
    assert Chip(UID, fault="garbage").answer(bytes.fromhex("FFCA000000")) == b"\x3f"
    for fault, answer in (("write-fails", b"\x65\x81"), ("removed-mid-write", None)):
        chip = Chip(UID, fault=fault, files={0xE104: bytearray(8)}, selected=0xE104)
        assert chip.answer(bytes.fromhex("00D6000004") + b"ABCD") == answer
        assert chip.content() == b"AB" + bytes(6)  # half of it: a write that stopped
    with pytest.raises(ValueError, match="unknown chip fault"):
        Chip(UID, fault="melted")


def test_uids_seeded_or_from_a_file(tmp_path):
    assert seeded_uids(7, 3) == seeded_uids(7, 3)
    assert len(set(seeded_uids(7, 50))) == 50
    assert {len(uid) for uid in seeded_uids(1, 5, length=4)} == {4}
    listing = tmp_path / "uids.txt"
    listing.write_text("# shipment 12\n04A1B2C3D4E5F6\n\n08:11:22:33\n")
    assert uids_from_file(listing) == [UID, bytes.fromhex("08112233")]
    listing.write_text("04A1B2C3D4\n")
    with pytest.raises(ValueError, match="4, 7 or 10 bytes"):
        uids_from_file(listing)


# -- through a real pcscd --------------------------------------------------------------------


def test_pcscd_lists_each_reader_with_two_slots(pcsc):
    assert {"Kiosk Encoder 00 00", "Kiosk Encoder 00 01", "Kiosk Desk 00 00",
            "Kiosk Desk 00 01"} <= set(list_readers())


def test_the_uid_of_the_card_in_the_reader_is_read_through_pcscd(pcsc):
    encoder = pcsc.reader("Kiosk Encoder")
    with VirtualCard(Chip(UID), encoder.port):
        assert apdu(encoder.slot(0), bytes.fromhex("FFCA000000")) == [UID + b"\x90\x00"]


def test_readers_do_not_share_slots(pcsc):
    """One .so copy per reader: a card in the desk reader is not in the encoder."""
    desk = pcsc.reader("Kiosk Desk")
    with VirtualCard(Chip(UID), desk.port):
        assert wait_card(desk.slot(0), present=True)
        from smartcard import scard

        assert not card_state(pcsc.reader("Kiosk Encoder").slot(0)) & scard.SCARD_STATE_PRESENT


def test_removing_the_card_empties_the_slot_and_a_next_card_is_seen(pcsc):
    encoder = pcsc.reader("Kiosk Encoder")
    for uid in seeded_uids(3, 2):
        with VirtualCard(Chip(uid), encoder.port):
            assert apdu(encoder.slot(0), bytes.fromhex("FFCA000000")) == [uid + b"\x90\x00"]
        assert wait_card(encoder.slot(0), present=False)  # pcscd polls: wait for the empty slot


def test_a_reader_unplugged_and_plugged_back_finds_its_card_again(pcsc):
    encoder = pcsc.reader("Kiosk Encoder")
    with VirtualCard(Chip(UID), encoder.port):
        assert wait_card(encoder.slot(0), present=True)
        pcsc.unplug("Kiosk Encoder")
        assert encoder.slot(0) not in list_readers()
        pcsc.plug("Kiosk Encoder")
        assert apdu(encoder.slot(0), bytes.fromhex("FFCA000000")) == [UID + b"\x90\x00"]


def test_the_atr_is_the_emulators(pcsc):
    from smartcard import scard

    encoder = pcsc.reader("Kiosk Encoder")
    with VirtualCard(Chip(UID), encoder.port):
        assert wait_card(encoder.slot(0), present=True)
        _, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        _, states = scard.SCardGetStatusChange(
            context, 0, [(encoder.slot(0), scard.SCARD_STATE_UNAWARE)])
        scard.SCardReleaseContext(context)
        assert bytes(states[0][2]) == ATR


def test_pcscd_is_stopped_with_its_socket(tmp_path, pcsc_parts):
    server = PcscServer(tmp_path / "p").start()
    pid = server.process.pid
    server.stop()
    import os

    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not os.path.exists(server.socket_path)


def test_a_missing_pcscd_or_driver_says_how_to_install_it(monkeypatch, tmp_path):
    import kiosk.sim.pcscd as rig

    monkeypatch.setattr(rig, "VPCD_DRIVER", tmp_path / "libifdvpcd.so")
    with pytest.raises(PcscdMissing, match="apt-get install pcscd vsmartcard-vpcd libpcsclite-dev"):
        find_pcscd()


def test_pcscd_does_not_outlive_a_killed_test_process(tmp_path, pcsc_parts):
    import os
    import signal
    import subprocess
    import sys

    script = ("import sys; from kiosk.sim.pcscd import PcscServer;"
              f" s = PcscServer({str(tmp_path / 'p')!r}).start();"
              " print(s.process.pid, flush=True); sys.stdin.read()")
    env = {**os.environ, "PCSCLITE_CSOCK_NAME": str(tmp_path / "other.comm")}
    parent = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)
    pcscd = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pcscd, 0)
        except ProcessLookupError:
            return
        if _zombie(pcscd):
            return
        time.sleep(0.05)
    os.kill(pcscd, signal.SIGKILL)
    pytest.fail("pcscd outlived the process that started it")


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False
