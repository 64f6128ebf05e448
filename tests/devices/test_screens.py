"""The LCD texts: exact lines per state, in both languages, always 4 × 20 plain ASCII."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from kiosk.devices.panel import screens
from kiosk.station.core.events import PanelView

READY = PanelView("idle", ("none",), queue_pending=0, stock_remaining=250,
                  minutes_to_empty=None, broker_connected=True, tray_online=True)
PRINTING = replace(READY, printer_state="processing", queue_pending=12, minutes_to_empty=125,
                   current_record="3210-2024-000123", current_name_masked="B**** S*******",
                   printed=40, spoiled=1)
JAM = replace(READY, printer_state="stopped", reasons=("media-jam-error",))
EMPTY = replace(READY, printer_state="stopped", reasons=("media-empty-error",), stock_remaining=0)
UNCERTAIN = replace(READY, printer_state="stopped", reasons=("uncertain",),
                    uncertain=("3210-2024-000122",))
OFFLINE = replace(READY, broker_connected=False)
PRINTER_OFF = replace(READY, printer_state="stopped", reasons=("connecting-to-device",))
ALL_VIEWS = (READY, PRINTING, JAM, EMPTY, UNCERTAIN, OFFLINE, PRINTER_OFF)


def test_status_screen_in_indonesian() -> None:
    assert screens.render(PRINTING, "status", "id") == (
        "MENCETAK      ONLINE",
        "Antrian: 12 kartu   ",
        "Stok: 250 kartu     ",
        "Habis dalam: 2j 05m ",
    )


def test_status_screen_in_english() -> None:
    assert screens.render(PRINTING, "status", "en") == (
        "PRINTING      ONLINE",
        "Queue: 12 cards     ",
        "Stock: 250 cards    ",
        "Empty in: 2h 05m    ",
    )


@pytest.mark.parametrize(("view", "word"), [
    (READY, "SIAP"), (PRINTING, "MENCETAK"), (JAM, "GANGGUAN"), (EMPTY, "GANGGUAN"),
    (UNCERTAIN, "CEK KARTU"), (replace(READY, paused=True), "JEDA"),
    (PRINTER_OFF, "MENYAMBUNG"), (replace(READY, printer_state="stopped"), "BERHENTI"),
])
def test_state_word_follows_the_most_urgent_condition(view: PanelView, word: str) -> None:
    assert screens.state_word(view, "id") == word
    assert screens.render(view, "status", "id")[0].startswith(word + " ")


def test_offline_shows_on_the_status_and_network_screens() -> None:
    assert screens.render(OFFLINE, "status", "id")[0] == "SIAP         OFFLINE"
    assert screens.render(OFFLINE, "network", "id", ip="192.168.1.50") == (
        "JARINGAN            ",
        "IP: 192.168.1.50    ",
        "Server: TERPUTUS    ",
        "Sensor baki: OK     ",
    )
    assert screens.render(replace(OFFLINE, tray_online=False), "network", "en") == (
        "NETWORK             ",
        "IP: none            ",
        "Server: OFFLINE     ",
        "Tray sensor: OFF    ",
    )


def test_stock_not_yet_booked_and_unknown_time_to_empty() -> None:
    view = replace(READY, stock_remaining=None)
    assert screens.render(view, "status", "id")[2:] == ("Stok: belum dicatat ",
                                                        "Habis dalam: -      ")


def test_jam_screen_says_how_to_clear_it() -> None:
    assert screens.render(JAM, "fault", "id") == (
        "KARTU MACET         ",
        "Buka tutup printer, ",
        "keluarkan kartu,    ",
        "tutup, tekan OK     ",
    )
    assert screens.render(JAM, "fault", "en")[0] == "CARD JAM            "


def test_empty_tray_screen_says_how_to_refill() -> None:
    assert screens.render(EMPTY, "fault", "id") == (
        "KARTU BLANKO HABIS  ",
        "Isi kartu blanko,   ",
        "tahan ULANG 3 detik ",
        "lalu isi jumlahnya  ",
    )


def test_fault_screen_explains_the_most_urgent_and_counts_the_others() -> None:
    view = replace(READY, reasons=("media-low-warning", "cover-open-error", "media-jam-error"),
                   stock_remaining=7)
    assert screens.alerts(view.reasons) == ("media-jam-error", "cover-open-error",
                                            "media-low-warning")
    assert screens.render(view, "fault", "id")[0] == "KARTU MACET       +2"
    low = screens.render(replace(view, reasons=("media-low-warning",)), "fault", "id")
    assert low[:2] == ("KARTU BLANKO MENIPIS", "Sisa 7 kartu.       ")


def test_unknown_reason_is_named_with_a_generic_instruction() -> None:
    view = replace(READY, reasons=("interlock-open-error",))
    assert screens.render(view, "fault", "en") == (
        "FAULT               ",
        "interlock-open-error",
        "Check the printer,  ",
        "then press OK       ",
    )


def test_uncertain_screen_names_the_card_and_the_two_holds() -> None:
    assert screens.render(UNCERTAIN, "uncertain", "id") == (
        "KARTU TAK PASTI     ",
        "3210-2024-000122    ",
        "Kartu jadi: tahan OK",
        "Tidak: tahan ULANG  ",
    )
    two = replace(UNCERTAIN, uncertain=("a", "b"))
    assert screens.render(two, "uncertain", "en")[0] == "UNCERTAIN CARD   1/2"


def test_job_screen_shows_the_masked_name_and_counters() -> None:
    assert screens.render(PRINTING, "job", "id") == (
        "KARTU SEKARANG      ",
        "3210-2024-000123    ",
        "B**** S*******      ",
        "Jadi:40 Rusak:1     ",
    )
    assert screens.render(READY, "job", "en")[1] == "(none)              "


def test_long_record_id_keeps_its_end() -> None:
    view = replace(PRINTING, current_record="district-3210-batch-2024-record-000123")
    assert screens.render(view, "job", "en")[1] == "..2024-record-000123"


def test_screens_on_offer_depend_on_the_state() -> None:
    assert screens.available(READY) == ("status", "job", "network")
    assert screens.available(JAM) == ("fault", "status", "job", "network")
    assert screens.available(replace(JAM, uncertain=("x",)))[:2] == ("fault", "uncertain")
    assert screens.available(replace(READY, reasons=("paused",))) == ("status", "job", "network")


@pytest.mark.parametrize("language", screens.LANGUAGES)
@pytest.mark.parametrize("screen", ["status", "job", "network", "fault", "uncertain"])
@pytest.mark.parametrize("view", ALL_VIEWS)
def test_every_screen_is_four_lines_of_twenty_ascii(view, screen, language) -> None:
    lines = screens.render(view, screen, language, ip="10.0.0.1")
    assert len(lines) == 4
    assert all(len(line) == 20 and line.isascii() for line in lines)


def test_names_are_folded_to_plain_ascii() -> None:
    view = replace(PRINTING, current_name_masked="Ö*** Çağ~ \\ Nguyễn")
    line = screens.render(view, "job", "id")[2]
    assert line == "O*** Cag? ? Nguyen  "


def test_no_fixed_text_is_cut_off() -> None:
    for reason, texts in screens.FAULT_TEXTS.items():
        for language, lines in texts.items():
            for line in lines:
                assert len(line.format(n=9999)) <= 20, (reason, language, line)
    values = {"n": 9999, "t": "99j 59m", "h": 99, "m": 59, "p": 9999, "s": 999,
              "ip": "192.168.100.200"}
    for language, texts in screens.TEXT.items():
        for key, text in texts.items():
            assert len(text.format(**values)) <= 20, (language, key, text)


def test_every_fault_text_exists_in_both_languages() -> None:
    for reason, texts in screens.FAULT_TEXTS.items():
        assert set(texts) == set(screens.LANGUAGES), reason
    assert set(screens.TEXT["id"]) == set(screens.TEXT["en"])


@pytest.mark.parametrize(("minutes", "text"), [
    (None, "-"), (0.4, "0m"), (45, "45m"), (60, "1j 00m"), (125.4, "2j 05m"), (10_000, ">99j"),
])
def test_duration(minutes, text) -> None:
    assert screens.duration(minutes, "id") == text


def test_refill_screen_says_ok_cancels_at_zero() -> None:
    assert screens.refill_screen(0, "id")[3] == "ULANG +1  OK batal  "
    assert screens.refill_screen(110, "id") == (
        "ISI KARTU BLANKO    ",
        "Jumlah: 110         ",
        "JEDA -10  MENU +10  ",
        "ULANG +1  OK simpan ",
    )


def test_unknown_language_or_screen_is_refused() -> None:
    with pytest.raises(ValueError, match="language"):
        screens.render(READY, "status", "fr")
    with pytest.raises(ValueError, match="screen"):
        screens.render(READY, "settings", "id")


# The screens drawn in docs/operator-guide.md, exactly as the panel draws them.
GUIDE = Path(__file__).parents[2] / "docs" / "operator-guide.md"
GUIDE_VIEW = replace(READY, stock_remaining=250, minutes_to_empty=250)
GUIDE_SCREENS = {
    "ready": screens.render(GUIDE_VIEW, "status"),
    "paused": screens.render(replace(GUIDE_VIEW, paused=True, reasons=("paused",)), "status"),
    "printing": screens.render(replace(PRINTING, queue_pending=8, stock_remaining=249,
                                       minutes_to_empty=249), "status"),
    "offline": screens.render(replace(GUIDE_VIEW, broker_connected=False), "status"),
    "job": screens.render(PRINTING, "job"),
    "network": screens.render(GUIDE_VIEW, "network", ip="192.168.1.50"),
    "uncertain": screens.render(UNCERTAIN, "uncertain"),
    "refill-0": screens.refill_screen(0),
    "refill-100": screens.refill_screen(100),
    "refilled": screens.overlay(screens.render(replace(GUIDE_VIEW, stock_remaining=350,
                                                       minutes_to_empty=350), "status"),
                                screens.notice("refilled", count=100)),
    "report": screens.overlay(screens.render(GUIDE_VIEW, "status"), screens.notice("report")),
    "stock-low": screens.render(replace(GUIDE_VIEW, reasons=("media-low-warning",),
                                        stock_remaining=45), "fault"),
    **{reason: screens.render(replace(GUIDE_VIEW, reasons=(reason,)), "fault")
       for reason in screens.ERROR_ORDER + screens.WARNING_ORDER
       if reason != "media-low-warning"},
}


def boxed(lines: tuple[str, ...]) -> str:
    edge = "+" + "-" * 20 + "+"
    return "\n".join([edge, *(f"|{line}|" for line in lines), edge])


def guide_text() -> str:
    """The guide with each line's indent removed (boxes inside list items are indented)."""
    return "\n".join(line.strip() for line in GUIDE.read_text(encoding="utf-8").splitlines())


@pytest.mark.parametrize("name", GUIDE_SCREENS)
def test_the_operator_guide_draws_the_screens_as_they_are(name: str) -> None:
    assert boxed(GUIDE_SCREENS[name]) in guide_text(), name


def test_every_screen_drawn_in_the_guide_is_one_the_panel_shows() -> None:
    drawn = re.findall(r"^\+-{20}\+\n((?:\|.{20}\|\n){4})\+-{20}\+$", guide_text(),
                       re.MULTILINE)
    assert len(drawn) >= len(GUIDE_SCREENS)
    known = {boxed(lines) for lines in GUIDE_SCREENS.values()}
    for box in drawn:
        lines = tuple(row[1:-1] for row in box.splitlines())
        assert boxed(lines) in known, "\n" + boxed(lines)
