"""Tray driver against the tray simulator over a real pty (hardware in the loop)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import serial

from kiosk.devices.tray import nmea
from kiosk.devices.tray.driver import TrayLink, seq_gap
from kiosk.sim.tray import TraySimulator
from kiosk.station.core.events import TrayBooted, TrayFrame, TrayOffline, TrayOnline
from kiosk.station.core.stock import card_estimate


class Events:
    """Collects what TrayLink emits (from its reader thread) and waits on it."""

    def __init__(self) -> None:
        self.items: list[object] = []
        self._changed = threading.Condition()

    def __call__(self, event: object) -> None:
        with self._changed:
            self.items.append(event)
            self._changed.notify_all()

    def of(self, kind: type) -> list:
        with self._changed:
            return [e for e in self.items if isinstance(e, kind)]

    def frames(self) -> list[TrayFrame]:
        return self.of(TrayFrame)

    def wait(self, predicate: Callable[[], bool], timeout: float = 3.0) -> None:
        with self._changed:
            assert self._changed.wait_for(predicate, timeout), "condition not met in time"

    def wait_frame(
        self, predicate: Callable[[TrayFrame], bool], since: int = 0, timeout: float = 3.0
    ) -> TrayFrame:
        """The first frame from index *since* on that satisfies *predicate*."""
        self.wait(lambda: any(predicate(f) for f in self.frames()[since:]), timeout)
        return next(f for f in self.frames()[since:] if predicate(f))

    def index(self, frame: TrayFrame) -> int:
        return self.frames().index(frame)


def settle(sim: TraySimulator, events: Events) -> None:
    """Wait until the link has received the last frame the simulator sent."""
    events.wait(lambda: bool(events.frames()) and events.frames()[-1].seq == (sim.seq - 1) % 65536)


def wait_until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[TraySimulator]:
    with TraySimulator(str(tmp_path / "kiosk-tray")) as simulator:
        yield simulator


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def link(sim: TraySimulator, events: Events) -> Iterator[TrayLink]:
    tray = TrayLink(sim.path, events, reopen_every=0.1)
    tray.start()
    wait_until(lambda: tray.connected)
    tray.request_status()  # the first frame without waiting for the next 5 Hz tick
    wait_until(lambda: sim.received == ["STATUS"])
    settle(sim, events)
    sim.received.clear()
    yield tray
    tray.stop()


def test_frames_arrive_at_5_hz_with_the_tray_values(link: TrayLink, events: Events) -> None:
    seen = len(events.frames())  # from here on, only the periodic frames
    events.wait(lambda: len(events.frames()) >= seen + 7)
    frames = events.frames()[seen : seen + 7]
    mean_interval = (frames[-1].at - frames[0].at) / 6
    assert 0.15 < mean_interval < 0.3
    assert [f.seq for f in frames] == list(range(frames[0].seq, frames[0].seq + 7))
    first = frames[0]
    assert (first.height_um, first.low, first.door_open, first.card_in_path) == (
        150 * 760, False, False, False)
    assert first.temp_c == pytest.approx(31.2)
    assert events.of(TrayOnline) == [TrayOnline()] and events.of(TrayOffline) == []
    assert link.stats.frames >= 7 and link.stats.bad_frames == 0


def test_low_stock_shows_at_the_threshold(sim: TraySimulator, link: TrayLink, events: Events):
    sim.cards = 20
    frame = events.wait_frame(lambda f: f.low)
    assert frame.height_um == 20 * 760


def test_corrupted_frames_are_counted_and_dropped_and_the_link_stays_up(
    sim: TraySimulator, link: TrayLink, events: Events
) -> None:
    sim.corrupt_next(3)
    wait_until(lambda: link.stats.bad_frames == 3)
    seen = len(events.frames())
    events.wait(lambda: len(events.frames()) >= seen + 2)
    stats = link.stats
    assert stats.bad_frames == 3
    assert stats.lost_frames == 3  # the dropped frames also leave a sequence gap
    assert "checksum mismatch" in (stats.last_error or "")
    assert events.of(TrayOffline) == [] and link.connected


@pytest.mark.parametrize(
    "junk",
    [
        b"hello\r\n",
        b"$GPGGA,1*" + nmea.checksum("GPGGA,1").encode() + b"\r\n",
        nmea.build("PKSKT", 1, 114000, 3, 0, 0, 312),  # low is not 0/1
        nmea.build("PKSKT", 1, 114000, 0, 0, 0),  # a field missing
        nmea.build("PKSKT", 70000, 114000, 0, 0, 0, 312),  # seq out of range
        nmea.build("PKSKT", 1, "1_000", 0, 0, 0, 312),  # not a plain integer
        nmea.build("PKSKA", "FOO"),
        b"x" * 300,  # no line end in sight
    ],
)
def test_malformed_sentences_are_bad_frames(
    sim: TraySimulator, link: TrayLink, events: Events, junk: bytes
) -> None:
    sim.send_raw(junk)
    wait_until(lambda: link.stats.bad_frames == 1)
    seen = len(events.frames())
    link.request_status()
    events.wait(lambda: len(events.frames()) >= seen + 1)
    assert events.of(TrayOffline) == [] and link.stats.bad_frames == 1


def test_noise_before_a_sentence_costs_only_the_noise(
    sim: TraySimulator, link: TrayLink, events: Events
) -> None:
    noise = b"\x00\xfe line noise "
    sim.send_raw(noise)  # no line end: the next sentence follows on the same line
    link.request_status()
    wait_until(lambda: link.stats.bad_frames == 1)
    settle(sim, events)
    stats = link.stats
    assert stats.last_error == f"{len(noise)} bytes of noise before a sentence"
    assert stats.lost_frames == 0 and stats.bad_frames == 1


def test_sequence_gaps_are_counted(sim: TraySimulator, link: TrayLink, events: Events) -> None:
    sim.skip_seq(5)
    wait_until(lambda: link.stats.lost_frames == 5)
    assert link.stats.bad_frames == 0


def test_sequence_wraps_from_65535_to_0_without_loss(
    sim: TraySimulator, link: TrayLink, events: Events
) -> None:
    seen = len(events.frames())
    sim.seq = 65534  # a backward jump of more than half the range reads as a restart
    events.wait_frame(lambda f: f.seq == 1, since=seen)
    seqs = [f.seq for f in events.frames()]
    assert seqs[seqs.index(65534) :][:4] == [65534, 65535, 0, 1]
    assert link.stats.lost_frames == 0


def test_a_gap_across_the_wrap_is_counted(
    sim: TraySimulator, link: TrayLink, events: Events
) -> None:
    sim.seq = 65534
    before = events.wait_frame(lambda f: f.seq == 65534)
    sim.skip_seq(3)
    after = events.wait_frame(lambda f: f.seq < 65534, since=events.index(before))
    assert after.seq < 10
    wait_until(lambda: link.stats.lost_frames == 3)


def test_silence_over_2_s_goes_offline_once_then_online_once(
    sim: TraySimulator, link: TrayLink, events: Events
) -> None:
    sim.mute(2.6)
    events.wait(lambda: len(events.of(TrayOffline)) == 1, timeout=4)
    events.wait(lambda: len(events.of(TrayOnline)) == 2, timeout=3)
    time.sleep(0.3)  # no repeat of either event once frames flow again
    links = [e for e in events.items if isinstance(e, TrayOnline | TrayOffline)]
    assert links == [TrayOnline(), TrayOffline("no valid frame for 2 s"), TrayOnline()]
    assert link.stats.lost_frames == 0 and link.stats.bad_frames == 0


def test_vanish_and_reappear_on_the_same_path(
    sim: TraySimulator, link: TrayLink, events: Events
) -> None:
    path = sim.path
    sim.vanish()
    events.wait(lambda: len(events.of(TrayOffline)) == 1)
    assert events.of(TrayOffline)[0].reason.startswith("tray port lost")
    time.sleep(0.35)  # several failed reopen attempts: still a single TrayOffline
    assert not link.connected and len(events.of(TrayOffline)) == 1
    sim.reappear()
    assert sim.path == path
    events.wait(lambda: len(events.of(TrayOnline)) == 2)
    seen = len(events.frames())
    events.wait(lambda: len(events.frames()) >= seen + 2)
    assert len(events.of(TrayOffline)) == 1 and link.connected


@pytest.fixture
def slow_sim(tmp_path: Path) -> Iterator[TraySimulator]:
    # one periodic frame at start, the next after 10 s: any frame in a test comes from a change
    with TraySimulator(str(tmp_path / "slow-tray"), rate_hz=0.1) as simulator:
        yield simulator


@pytest.fixture
def slow_link(slow_sim: TraySimulator, events: Events) -> Iterator[TrayLink]:
    tray = TrayLink(slow_sim.path, events, offline_after=5.0)
    tray.start()
    wait_until(lambda: tray.connected)
    tray.request_status()
    wait_until(lambda: slow_sim.received == ["STATUS"])
    settle(slow_sim, events)
    slow_sim.received.clear()
    yield tray
    tray.stop()


def test_door_and_path_changes_are_sent_at_once(
    slow_sim: TraySimulator, slow_link: TrayLink, events: Events
) -> None:
    started = time.monotonic()
    slow_sim.set_door(True)
    assert events.wait_frame(lambda f: f.door_open).at - started < 1.0
    started = time.monotonic()
    slow_sim.set_path(True)
    assert events.wait_frame(lambda f: f.card_in_path).at - started < 1.0
    seen = len(events.frames())
    slow_sim.set_path(False)
    assert events.wait_frame(lambda f: not f.card_in_path, since=seen).at - started < 1.0


def test_a_picked_card_pulses_the_path_and_lowers_the_stack(
    slow_sim: TraySimulator, slow_link: TrayLink, events: Events
) -> None:
    assert slow_sim.take_card()
    picked = events.wait_frame(lambda f: f.card_in_path)
    after = events.index(picked) + 1
    cleared = events.wait_frame(lambda f: not f.card_in_path, since=after)
    assert picked.height_um == cleared.height_um == 149 * 760
    assert 0.1 < cleared.at - picked.at < 1.0  # the pulse is 0.15 s


def test_status_request_answers_one_frame_at_once(
    slow_sim: TraySimulator, slow_link: TrayLink, events: Events
) -> None:
    seen = len(events.frames())
    started = time.monotonic()
    assert slow_link.request_status()
    events.wait(lambda: len(events.frames()) >= seen + 1)
    assert events.frames()[-1].at - started < 1.0
    settle(slow_sim, events)
    assert len(events.frames()) == seen + 1
    assert slow_sim.received == ["STATUS"]


def test_sensor_fault_reports_height_minus_1(
    sim: TraySimulator, link: TrayLink, events: Events
) -> None:
    sim.set_sensor_fault(True)
    frame = events.wait_frame(lambda f: f.height_um == -1)
    assert card_estimate(frame.height_um, 0, 760) is None


def test_calibrate_acknowledged(sim: TraySimulator, link: TrayLink) -> None:
    assert link.calibrate(1200, 760) == (True, None)
    assert sim.calibration == (1200, 760)
    assert sim.received[-1] == "CAL,1200,760"


@pytest.mark.parametrize(
    ("empty_height_um", "card_um", "reason"),
    [(0, 0, "CARD_RANGE"), (0, 5000, "CARD_RANGE"), (-5, 760, "EMPTY_RANGE")],
)
def test_calibrate_rejected_with_the_boards_reason(
    sim: TraySimulator, link: TrayLink, empty_height_um: int, card_um: int, reason: str
) -> None:
    assert link.calibrate(empty_height_um, card_um) == (False, reason)
    assert sim.calibration is None


def test_calibrate_without_answer_times_out(sim: TraySimulator, link: TrayLink) -> None:
    sim.mute(1.0)
    started = time.monotonic()
    ok, reason = link.calibrate(0, 760, timeout=0.3)
    assert not ok and reason == "no answer to CAL within 0.3 s"
    assert 0.25 < time.monotonic() - started < 1.0


def test_ping(sim: TraySimulator, link: TrayLink) -> None:
    assert link.ping()
    assert sim.received == ["PING"]
    sim.mute(1.0)
    assert not link.ping(timeout=0.3)


def test_commands_fail_fast_while_the_port_is_gone(
    sim: TraySimulator, link: TrayLink, events: Events
) -> None:
    sim.vanish()
    events.wait(lambda: len(events.of(TrayOffline)) == 1)
    assert link.calibrate(0, 760, timeout=1) == (False, "tray port not open")
    assert not link.ping(timeout=1) and not link.request_status()


def test_commands_from_many_threads_get_their_own_answers(link: TrayLink) -> None:
    results: list[object] = []
    jobs = [lambda: results.append(link.ping(timeout=5)) for _ in range(4)]
    jobs += [lambda: results.append(link.calibrate(0, 760, timeout=5)) for _ in range(4)]
    threads = [threading.Thread(target=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(map(str, results)) == ["(True, None)"] * 4 + ["True"] * 4


def test_controls_never_block_even_when_nobody_reads(tmp_path: Path) -> None:
    sim = TraySimulator(str(tmp_path / "unread")).start()
    sim.send_raw(b"x" * 100_000)  # far more than a pty holds: the board's thread is stuck
    started = time.monotonic()
    for _ in range(20):
        assert sim.take_card()
        sim.set_door(True)
        sim.set_door(False)
    assert time.monotonic() - started < 0.5 and sim.cards == 130
    sim.stop()
    assert time.monotonic() - started < 2.0


def test_boot_sentence_becomes_tray_booted(tmp_path: Path, events: Events) -> None:
    simulator = TraySimulator(str(tmp_path / "tray"), fw_version="1.2.3")
    tray = TrayLink(simulator.path, events)
    tray.start()
    try:
        wait_until(lambda: tray.connected)
        with simulator:
            events.wait(lambda: len(events.frames()) >= 2)
    finally:
        tray.stop()
    assert events.items[0] == TrayBooted(fw_version="1.2.3", reset_cause="PWRON")
    assert events.items[1] == TrayOnline()


def test_a_missing_port_is_offline_and_found_when_it_appears(
    tmp_path: Path, events: Events
) -> None:
    path = str(tmp_path / "later")
    tray = TrayLink(path, events, reopen_every=0.05)
    tray.start()
    try:
        events.wait(lambda: len(events.of(TrayOffline)) == 1)
        assert events.of(TrayOffline)[0].reason.startswith(f"cannot open {path}")
        with TraySimulator(path):
            events.wait(lambda: len(events.of(TrayOnline)) == 1)
    finally:
        tray.stop()


def test_a_failing_event_handler_does_not_stop_the_link(sim: TraySimulator) -> None:
    seen: list[object] = []

    def handler(event: object) -> None:
        seen.append(event)
        if len(seen) == 1:
            raise RuntimeError("consumer bug")

    tray = TrayLink(sim.path, handler)
    tray.start()
    try:
        wait_until(lambda: tray.connected)
        tray.request_status()
        wait_until(lambda: len(seen) >= 2)
    finally:
        tray.stop()
    assert isinstance(seen[0], TrayOnline) and isinstance(seen[1], TrayFrame)


def test_stop_ends_the_reader_thread_quickly(sim: TraySimulator, events: Events) -> None:
    tray = TrayLink(sim.path, events)
    tray.start()
    wait_until(lambda: tray.connected)
    started = time.monotonic()
    tray.stop()
    assert time.monotonic() - started < 1.0 and not tray.connected


@pytest.mark.parametrize(
    ("height_um", "empty_um", "card_um", "cards"),
    [
        (114000, 0, 760, 150),
        (115200, 1200, 760, 150),
        (379, 0, 760, 0),  # just under half a card
        (380, 0, 760, 1),  # half a card rounds up
        (1139, 0, 760, 1),
        (1141, 0, 760, 2),
        (500, 1200, 760, 0),  # below the empty height: never negative
        (-1, 0, 760, None),  # sensor fault
    ],
)
def test_card_estimate(height_um: int, empty_um: int, card_um: int, cards: int | None) -> None:
    assert card_estimate(height_um, empty_um, card_um) == cards


def test_card_estimate_refuses_a_zero_thickness() -> None:
    with pytest.raises(ValueError, match="card_um"):
        card_estimate(1000, 0, 0)


@pytest.mark.parametrize(
    ("previous", "current", "lost"),
    [
        (1, 2, 0), (1, 4, 2), (65535, 0, 0), (65534, 2, 3), (7, 7, 0),
        (1000, 3, 0),  # backward: the board restarted unseen, not 62538 frames lost
        (40000, 3, 25538),
    ],
)
def test_seq_gap(previous: int, current: int, lost: int) -> None:
    assert seq_gap(previous, current) == lost


def test_cli_prints_the_path_first_and_stops_on_sigterm(tmp_path: Path) -> None:
    code = (
        "import argparse, sys; from kiosk.sim import tray; p = argparse.ArgumentParser();"
        "tray.add_arguments(p); sys.exit(tray.run(p.parse_args(sys.argv[1:])))"
    )
    link = str(tmp_path / "cli-tray")
    args = [sys.executable, "-c", code, "--link", link, "--cards", "42", "--rate", "20"]
    with subprocess.Popen(args, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == link
            with serial.serial_for_url(link, 115200, timeout=2) as port:
                lines = [port.readline() for _ in range(3)]
            frames = [nmea.parse(line)[1] for line in lines if line.startswith(b"$PKSKT")]
            assert frames and frames[-1][1] == str(42 * 760)
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=5) == 0
        finally:
            process.kill()
