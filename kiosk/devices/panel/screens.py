"""What the 20 × 4 LCD says: pure functions from a `PanelView` to four lines.

Owns the screen texts in Bahasa Indonesia ("id") and English ("en"), the order
of severity of the printer's reasons (which fault the fault screen explains
first), and the rule that every line is exactly 20 plain ASCII characters: the
HD44780 character ROM has no accented letters, so names are folded to ASCII.

Screens: "chip" (desk mode, only while the operator is asked to do something with a
card: `DESK_TEXTS`), "fault" (only while an alert is active), "uncertain" (only while a
card waits for a person's decision; a card held after its handover scan has its own
text), "status", "job", "made" (the last card printed, until it is declared damaged),
"network"; plus the refill-entry screen, the splash shown before
the first view, and one-line notices.
Buttons are named as on their caps: JEDA/PAUSE, OK, MENU, ULANG/EXTRA.
"""

from __future__ import annotations

import unicodedata
from functools import partial

from kiosk.station.core.events import PanelView

WIDTH = 20
HEIGHT = 4
LANGUAGES = ("id", "en")
Lines = tuple[str, str, str, str]

# Reasons in the order the fault screen explains them; unknown ones follow by suffix.
ERROR_ORDER = (
    "media-jam-error", "cover-open-error", "media-empty-error", "marker-supply-empty-error",
    "output-area-full-error", "other-error", "timed-out-error", "connecting-to-device",
)
WARNING_ORDER = (
    "door-open-warning", "offline-report", "ledger-mismatch-warning", "media-low-warning",
    "cleaner-life-almost-over-warning",
)

# Four lines per reason: what happened, then what to do. {n}: blank cards left.
FAULT_TEXTS: dict[str, dict[str, Lines]] = {
    "media-jam-error": {
        "id": ("KARTU MACET", "Buka tutup printer,", "keluarkan kartu,", "tutup, tekan OK"),
        "en": ("CARD JAM", "Open printer cover,", "remove the card,", "close, press OK")},
    "cover-open-error": {
        "id": ("PENUTUP TERBUKA", "Tutup penutup", "printer, lalu", "tekan OK"),
        "en": ("COVER OPEN", "Close the printer", "cover, then", "press OK")},
    "media-empty-error": {
        "id": ("KARTU BLANKO HABIS", "Isi kartu blanko,",
               "tahan ULANG 3 detik", "lalu isi jumlahnya"),
        "en": ("OUT OF BLANK CARDS", "Add blank cards,", "hold EXTRA 3 s and", "enter the count")},
    "marker-supply-empty-error": {
        "id": ("PITA HABIS", "Ganti pita (ribbon)", "printer, tutup, lalu", "tekan OK"),
        "en": ("RIBBON EMPTY", "Replace the ribbon,", "close the cover,", "then press OK")},
    "output-area-full-error": {
        "id": ("WADAH KELUAR PENUH", "Ambil kartu dari", "wadah keluaran,", "lalu tekan OK"),
        "en": ("OUTPUT HOPPER FULL", "Take the cards out", "of the hopper,", "then press OK")},
    "other-error": {
        "id": ("GANGGUAN PRINTER", "Matikan printer,", "nyalakan lagi, lalu", "tekan OK"),
        "en": ("PRINTER ERROR", "Switch the printer", "off and on again,", "then press OK")},
    "timed-out-error": {
        "id": ("PRINTER TAK MENJAWAB", "Periksa kabel dan", "daya printer, lalu", "tekan OK"),
        "en": ("NO PRINTER REPLY", "Check the cable and", "printer power, then", "press OK")},
    "connecting-to-device": {
        "id": ("MENGHUBUNGI PRINTER", "Nyalakan printer,", "periksa kabel USB,", "tunggu sebentar"),
        "en": ("CONNECTING PRINTER", "Switch printer on,",
               "check the USB cable", "and wait a moment")},
    "door-open-warning": {
        "id": ("PINTU BAKI TERBUKA", "Tutup pintu baki", "kartu blanko.", ""),
        "en": ("TRAY DOOR OPEN", "Close the blank", "card tray door.", "")},
    "offline-report": {
        "id": ("SENSOR BAKI MATI", "Cetak tetap jalan.", "Periksa kabel", "sensor baki kartu."),
        "en": ("TRAY SENSOR OFFLINE", "Printing goes on.", "Check the tray", "sensor cable.")},
    "ledger-mismatch-warning": {
        "id": ("JUMLAH KARTU BEDA", "Hitung kartu blanko", "di baki, lalu lapor", "ke atasan."),
        "en": ("CARD COUNT MISMATCH", "Count the blanks in",
               "the tray and tell", "your supervisor.")},
    "media-low-warning": {
        "id": ("KARTU BLANKO MENIPIS", "Sisa {n} kartu.", "Siapkan kartu baru", "untuk diisi."),
        "en": ("BLANK CARDS LOW", "{n} cards left.", "Get new blanks", "ready to refill.")},
    "chip-reader-missing-error": {
        "id": ("PEMBACA CHIP HILANG", "Colokkan pembaca", "chip di meja (USB),", "tunggu sebentar"),
        "en": ("CHIP READER MISSING", "Plug in the desk", "chip reader (USB),", "wait a moment")},
    "handover-mismatch-warning": {
        "id": ("CHIP KARTU TAK COCOK", "Kartu jadi ditahan:",
               "chip bukan untuk", "datanya. Lapor."),
        "en": ("CARD CHIP MISMATCH", "Printed card held:", "its chip is not", "its record's.")},
    "cleaner-life-almost-over-warning": {
        "id": ("PERLU PEMBERSIHAN", "Bersihkan printer",
               "dgn kartu pembersih", "setelah shift ini."),
        "en": ("CLEANING NEEDED", "Clean the printer",
               "with a cleaning card", "after this shift.")},
}

# Desk mode (chip.md): what the operator is asked to do with the card, by prompt
# (kiosk/station/deskchip.py names them).
DESK_TEXTS: dict[str, dict[str, Lines]] = {
    "clear-reader": {
        "id": ("ANGKAT KARTU", "Angkat kartu dari", "pembaca chip dulu.", ""),
        "en": ("TAKE THE CARD OFF", "Take the card off", "the chip reader", "first.")},
    "lay-blank": {
        "id": ("LETAKKAN BLANKO", "Letakkan 1 kartu", "blanko di pembaca", "chip di meja."),
        "en": ("LAY A BLANK", "Lay one blank card", "on the desk chip", "reader.")},
    "second-card": {
        "id": ("ADA 2 KARTU", "Di pembaca ada 2", "kartu: angkat satu.", ""),
        "en": ("TWO CARDS", "Two cards on the", "reader: take one", "off.")},
    "encoding": {
        "id": ("MENULIS CHIP", "Jangan angkat kartu", "dari pembaca.", ""),
        "en": ("WRITING THE CHIP", "Do not lift the", "card off the reader.", "")},
    "not-blank": {
        "id": ("BUKAN BLANKO BARU", "Kartu ini sudah", "tercatat. Angkat,", "pakai blanko baru."),
        "en": ("NOT A NEW BLANK", "This card is known.", "Take it off, use", "a new blank.")},
    "encode-failed": {
        "id": ("GAGAL ENCODE", "Kartu ini tidak sah:", "angkat, sisihkan.", "Pakai blanko baru."),
        "en": ("ENCODE FAILED", "This card is void:", "take it off, set it", "aside. New blank.")},
    "to-printer": {
        "id": ("MASUKKAN KE PRINTER", "Chip sudah ditulis.",
               "Masukkan kartu ke", "slot manual printer"),
        "en": ("FEED THE PRINTER", "Chip written. Feed",
               "the card into the", "printer's hand slot")},
    "print-failed": {
        "id": ("GAGAL CETAK", "Kartu ini tidak sah:", "sisihkan.", "Tunggu kartu baru."),
        "en": ("PRINT FAILED", "This card is void:", "set it aside.", "Wait for the next.")},
    "handover": {
        "id": ("SCAN SERAH TERIMA", "Letakkan kartu jadi", "di pembaca chip", "untuk dicek."),
        "en": ("HANDOVER SCAN", "Lay the printed", "card on the chip", "reader to check it.")},
    "hand-over": {
        "id": ("KARTU COCOK", "Angkat kartu dan", "serahkan ke", "pemiliknya."),
        "en": ("CARD MATCHES", "Take the card off", "and hand it to its", "owner.")},
    "mismatch": {
        "id": ("KARTU TAK COCOK", "Jangan diserahkan!", "Angkat, sisihkan,", "lapor ke atasan."),
        "en": ("CARD DOES NOT MATCH", "Do not hand it out!",
               "Take it off, set it", "aside, report it.")},
}

UNKNOWN_FAULT = {
    "id": ("GANGGUAN", "{reason}", "Periksa printer,", "lalu tekan OK"),
    "en": ("FAULT", "{reason}", "Check the printer,", "then press OK"),
}

TEXT: dict[str, dict[str, str]] = {
    "id": {
        "fault": "GANGGUAN", "connecting": "MENYAMBUNG", "check": "CEK KARTU", "paused": "JEDA",
        "printing": "MENCETAK", "ready": "SIAP", "stopped": "BERHENTI",
        "queue": "Antrian: {n} kartu", "stock": "Stok: {n} kartu",
        "no-stock": "Stok: belum dicatat",
        "empty-in": "Habis dalam: {t}", "hours": "{h}j {m:02d}m", "minutes": "{m}m",
        "over-99h": ">99j",
        "job": "KARTU SEKARANG", "no-job": "(tidak ada)", "counts": "Jadi:{p} Rusak:{s}",
        "network": "JARINGAN", "ip": "IP: {ip}", "no-ip": "IP: tidak ada",
        "server-up": "Server: TERHUBUNG", "server-down": "Server: TERPUTUS",
        "tray": "Sensor baki: {s}", "tray-ok": "OK", "tray-off": "MATI",
        "uncertain": "KARTU TAK PASTI", "came-out": "Kartu jadi: tahan OK",
        "not-out": "Tidak: tahan ULANG",
        "held": "CHIP TAK COCOK", "card-right": "Kartu benar:tahan OK",
        "card-wrong": "Ulang: tahan ULANG",
        "refill": "ISI KARTU BLANKO", "count": "Jumlah: {n}", "tens": "JEDA -10  MENU +10",
        "save": "ULANG +1  OK simpan", "cancel": "ULANG +1  OK batal",
        "splash": "KIOS CETAK E-KTP", "starting": "Memulai...",
        "hold-hint": "Tahan tombol 3 detik", "confirmed": "Dicatat: kartu jadi",
        "reprint": "Cetak ulang diminta", "refilled": "Dicatat +{n} kartu",
        "refill-cancelled": "Isi dibatalkan", "report": "Mencetak laporan...",
        "made": "KARTU TERAKHIR", "damaged": "Rusak? tahan ULANG",
        "declared": "Dicatat: kartu rusak",
    },
    "en": {
        "fault": "FAULT", "connecting": "CONNECTING", "check": "CHECK CARD", "paused": "PAUSED",
        "printing": "PRINTING", "ready": "READY", "stopped": "STOPPED",
        "queue": "Queue: {n} cards", "stock": "Stock: {n} cards", "no-stock": "Stock: not booked",
        "empty-in": "Empty in: {t}", "hours": "{h}h {m:02d}m", "minutes": "{m}m",
        "over-99h": ">99h",
        "job": "CURRENT CARD", "no-job": "(none)", "counts": "Done:{p} Spoilt:{s}",
        "network": "NETWORK", "ip": "IP: {ip}", "no-ip": "IP: none",
        "server-up": "Server: CONNECTED", "server-down": "Server: OFFLINE",
        "tray": "Tray sensor: {s}", "tray-ok": "OK", "tray-off": "OFF",
        "uncertain": "UNCERTAIN CARD", "came-out": "Came out: hold OK",
        "not-out": "Did not: hold EXTRA",
        "held": "CHIP MISMATCH", "card-right": "Card right: hold OK",
        "card-wrong": "Reprint: hold EXTRA",
        "refill": "REFILL BLANK CARDS", "count": "Count: {n}", "tens": "PAUSE -10 MENU +10",
        "save": "EXTRA +1  OK save", "cancel": "EXTRA +1  OK cancel",
        "splash": "E-KTP PRINT STATION", "starting": "Starting...",
        "hold-hint": "Hold button for 3 s", "confirmed": "Marked as printed",
        "reprint": "Reprint requested", "refilled": "Booked +{n} cards",
        "refill-cancelled": "Refill cancelled", "report": "Printing report...",
        "made": "LAST CARD MADE", "damaged": "Damaged? hold EXTRA",
        "declared": "Marked damaged",
    },
}


def fit(text: str) -> str:
    """*text* as exactly 20 printable ASCII characters (folded, cut, padded)."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    # The HD44780 ROM draws "\" as a yen sign and "~" as an arrow.
    cleaned = "".join(c if " " <= c < "~" and c != "\\" else "?" for c in folded)
    return cleaned[:WIDTH].ljust(WIDTH)


def corner(left: str, right: str) -> str:
    """*left* at the start of the line, *right* at its end (left is cut if need be)."""
    return fit(left[:WIDTH - len(right)].ljust(WIDTH - len(right)) + right)


def tail(text: str) -> str:
    """*text* cut from the front, so the distinctive end of a record id stays visible."""
    return text if len(text) <= WIDTH else ".." + text[2 - WIDTH:]


def is_error(reason: str) -> bool:
    """A reason that stops printing until a person acts."""
    return reason.endswith("-error") or reason == "connecting-to-device"


def is_warning(reason: str) -> bool:
    return reason.endswith(("-warning", "-report"))


def alerts(reasons: tuple[str, ...]) -> tuple[str, ...]:
    """The alert reasons of *reasons*, errors first, most urgent first."""
    known = ERROR_ORDER + WARNING_ORDER

    def rank(reason: str) -> tuple[int, int, str]:
        group = 0 if is_error(reason) else 1
        return group, known.index(reason) if reason in known else len(known), reason

    return tuple(sorted((r for r in set(reasons) if is_error(r) or is_warning(r)), key=rank))


def available(view: PanelView) -> tuple[str, ...]:
    """The screens MENU steps through for *view*, in order."""
    screens = ["chip"] if view.chip_prompt in DESK_TEXTS else []
    if alerts(view.reasons):
        screens.append("fault")
    if view.uncertain:
        screens.append("uncertain")
    made = ("made",) if view.last_made else ()
    return (*screens, "status", "job", *made, "network")


def render(view: PanelView, screen: str, language: str = "id", *, ip: str | None = None) -> Lines:
    """The four lines of *screen* for *view* (*ip*: for the network screen)."""
    makers = {"status": _status, "job": _job, "fault": _fault, "uncertain": _uncertain,
              "chip": _chip, "made": _made, "network": partial(_network, ip=ip)}
    if screen not in makers:
        raise ValueError(f"unknown screen {screen!r}")
    return makers[screen](view, language)


def state_word(view: PanelView, language: str = "id") -> str:
    text = _text(language)
    errors = [r for r in view.reasons if is_error(r)]
    if errors:
        return text["connecting"] if set(errors) == {"connecting-to-device"} else text["fault"]
    if view.uncertain:
        return text["check"]
    if view.paused:
        return text["paused"]
    return text.get({"processing": "printing", "idle": "ready"}.get(view.printer_state, ""),
                    text["stopped"])


def duration(minutes: float | None, language: str = "id") -> str:
    """Minutes as "1j 05m" / "1h 05m"; "-" when unknown."""
    if minutes is None:
        return "-"
    text = _text(language)
    hours, rest = divmod(max(round(minutes), 0), 60)
    if hours > 99:
        return text["over-99h"]
    return text["hours"].format(h=hours, m=rest) if hours else text["minutes"].format(m=rest)


def refill_screen(count: int, language: str = "id") -> Lines:
    text = _text(language)
    last = text["save"] if count > 0 else text["cancel"]
    return _lines(text["refill"], text["count"].format(n=count), text["tens"], last)


def splash(language: str = "id") -> Lines:
    """Shown from start-up until the station core sends its first view."""
    return _lines(_text(language)["splash"], _text(language)["starting"], "", "")


def notice(key: str, language: str = "id", count: int | None = None) -> str:
    """One line acknowledging what a person just did (see TEXT for the keys)."""
    return fit(_text(language)[key].format(n=count))


def overlay(lines: Lines, line: str) -> Lines:
    """*lines* with the bottom line replaced by a notice."""
    return _lines(lines[0], lines[1], lines[2], line)


# -- the screens ------------------------------------------------------------------


def _status(view: PanelView, language: str) -> Lines:
    text = _text(language)
    online = "ONLINE" if view.broker_connected else "OFFLINE"
    stock = (text["no-stock"] if view.stock_remaining is None
             else text["stock"].format(n=view.stock_remaining))
    return _lines(corner(state_word(view, language), online),
                  text["queue"].format(n=view.queue_pending), stock,
                  text["empty-in"].format(t=duration(view.minutes_to_empty, language)))


def _job(view: PanelView, language: str) -> Lines:
    text = _text(language)
    counts = text["counts"].format(p=view.printed, s=view.spoiled)
    if view.current_record is None:
        return _lines(text["job"], text["no-job"], "", counts)
    return _lines(text["job"], tail(view.current_record), view.current_name_masked or "", counts)


def _fault(view: PanelView, language: str) -> Lines:
    active = alerts(view.reasons)
    if not active:
        return _status(view, language)
    reason = active[0]
    texts = FAULT_TEXTS.get(reason, UNKNOWN_FAULT)[_language(language)]
    n = "?" if view.stock_remaining is None else view.stock_remaining
    title, *rest = (line.format(n=n, reason=reason) for line in texts)
    more = f"+{len(active) - 1}" if len(active) > 1 else ""
    return _lines(corner(title, more), *rest)


def _uncertain(view: PanelView, language: str) -> Lines:
    if not view.uncertain:
        return _status(view, language)
    text, count = _text(language), len(view.uncertain)
    first = view.uncertain[0]
    if first in view.handover:  # printed, but its handover scan showed another chip
        title = corner(text["held"], f"1/{count}" if count > 1 else "")
        return _lines(title, tail(first), text["card-right"], text["card-wrong"])
    title = corner(text["uncertain"], f"1/{count}" if count > 1 else "")
    return _lines(title, tail(first), text["came-out"], text["not-out"])


def _made(view: PanelView, language: str) -> Lines:
    """The last card made here: holding ULANG/EXTRA declares it damaged (rusak)."""
    if not view.last_made:
        return _status(view, language)
    text = _text(language)
    return _lines(text["made"], tail(view.last_made), "", text["damaged"])


def _chip(view: PanelView, language: str) -> Lines:
    texts = DESK_TEXTS.get(view.chip_prompt or "")
    if texts is None:
        return _status(view, language)
    return _lines(*texts[_language(language)])


def _network(view: PanelView, language: str, ip: str | None) -> Lines:
    text = _text(language)
    tray = {True: text["tray-ok"], False: text["tray-off"], None: "-"}[view.tray_online]
    return _lines(
        text["network"],
        text["ip"].format(ip=ip) if ip else text["no-ip"],
        text["server-up"] if view.broker_connected else text["server-down"],
        fit(short_error(view.broker_error)) if view.broker_error
        else text["tray"].format(s=tray),
    )


# What a failed connection attempt says, in the technician's words (TLS, DNS are universal).
_CAUSES = (("certificate", "TLS: certificate"), ("ssl", "TLS error"),
           ("refused by the broker", "Broker: login refused"), ("refused", "Broker refused"),
           ("name or service", "DNS error"), ("gaierror", "DNS error"),
           ("timed out", "Broker: timed out"), ("unreachable", "Network unreachable"))


def short_error(cause: str) -> str:
    """A connection failure's cause in at most 20 characters."""
    lowered = cause.lower()
    return next((short for key, short in _CAUSES if key in lowered), "Broker: no connect")


def _language(language: str) -> str:
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}, not {language!r}")
    return language


def _text(language: str) -> dict[str, str]:
    return TEXT[_language(language)]


def _lines(*lines: str) -> Lines:
    first, second, third, fourth = map(fit, lines)
    return first, second, third, fourth
