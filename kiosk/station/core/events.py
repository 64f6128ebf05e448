"""What the station core hears (events) and what it asks for (actions).

Adapters turn the outside world into events (a message arrived, the printer
answered, a button was held) and carry out actions (acknowledge, publish,
start a card). Both are plain frozen dataclasses so the core is tested by
feeding events and reading the actions back, with no thread or device.
Tray events come from `kiosk.devices.tray.driver` and are consumed as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from kiosk.contract.timestamps import rfc3339

__all__ = ["rfc3339"]  # the station's stamps (ts, printed_at), from the contract



# -- events: the broker link -------------------------------------------------


@dataclass(frozen=True)
class MessageArrived:
    """A QoS 1 message on jobs or cmd/…; ``generation`` names its connection."""

    topic: str
    payload: bytes
    mid: int
    generation: int
    response_topic: str | None = None
    correlation: bytes | None = None


@dataclass(frozen=True)
class LinkUp:
    generation: int
    session_present: bool


@dataclass(frozen=True)
class LinkDown:
    generation: int
    reason: str


@dataclass(frozen=True)
class LinkFailed:
    """A connection attempt failed; ``cause`` says why (TLS, refused, DNS, not authorized)."""

    cause: str


@dataclass(frozen=True)
class Delivered:
    """The broker confirmed (PUBACK) an outbox item."""

    item_id: int


# -- events: the card printer --------------------------------------------------

# What became of the blank of a failed card: facts a driver reports
# (kiosk/devices/printer/base.py); the core decides what they mean for the ledger.
BLANK_UNTOUCHED = "untouched"  # no blank was taken
BLANK_MAYBE_TAKEN = "maybe-taken"  # the pick was asked for and never confirmed
BLANK_GONE = "gone"  # a blank was taken and will not come out printed
BLANK_UNKNOWN = "unknown"  # the card may have come out printed; nobody here can tell
# A blank was taken and lies untouched in the printer (its chip could not be reached):
# the next card takes it (Evolis ``Sic`` with a card inside picks nothing).
BLANK_INSIDE = "inside"


@dataclass(frozen=True)
class PrinterReady:
    """The printer answered and has no fault: it can take a card."""

    info: str = ""


@dataclass(frozen=True)
class PrinterCounters:
    """The printer's own counts (e.g. Evolis ``Rco;c`` taken, ``Rco;p`` printed), read
    when it connects: the core compares them with those kept at a card's pick."""

    counts: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PrinterFault:
    """The printer cannot print now; ``reasons`` are IPP keywords."""

    reasons: tuple[str, ...]
    detail: str = ""


@dataclass(frozen=True)
class CardFate:
    """What the printer (or its print server) says became of a card found in it at a
    restart: ``verdict`` printed | spoiled | not-picked, or None when it cannot tell."""

    record_id: str
    verdict: str | None
    how: str = ""


@dataclass(frozen=True)
class PickRequested:
    """The driver is about to take a blank for this job and waits for a yes or no.

    ``counts``: the printer's counters just before (kept with the picking mark).
    ``token`` names this one request: the answer carries it back, so a late answer to
    an earlier request (a retry of the same job) is never taken for this one.
    """

    record_id: str
    counts: dict | None = None
    token: int = 0


@dataclass(frozen=True)
class PickAheadRequested:
    """A print server may hold the next card while this one prints (IPP, card-printer.md
    Pacing: one job ahead), and starts it by itself the moment the printer is free: the
    next card's pick is asked now, before its document goes. Answered by `AnswerPick`."""

    record_id: str
    token: int = 0


@dataclass(frozen=True)
class CardPicked:
    """A blank may be in the printer now; ``marks``: what the printer can later be asked
    about this card (an IPP job-id), kept with it."""

    record_id: str
    marks: dict | None = None


@dataclass(frozen=True)
class CardPrinted:
    """The card came out; ``detail`` says how that is known when not the plain way.

    ``then``: the printer thread asks, in the same event, to pick the card it was told
    is next (`Prefetch`), so one commit books this card printed and marks that one
    picking; the core refuses it if that is not the job it would start.
    """

    record_id: str
    detail: str = ""
    then: PickRequested | None = None


@dataclass(frozen=True)
class CardFailed:
    """The card sequence ended without a card known to be printed.

    ``blank``: what became of its blank, one of the BLANK_* facts above. ``job_error``: the
    job itself is bad (cannot be rendered) and must not be retried.
    """

    record_id: str
    reasons: tuple[str, ...]
    detail: str
    blank: str = BLANK_UNTOUCHED
    job_error: bool = False
    chip: str = ""  # why the chip step failed (the blank is invalid gagal-encode), if it did
    uid: str | None = None  # the chip of the failed card, when it was read


# -- events: the chip encoder (chip.md) ---------------------------------------------


@dataclass(frozen=True)
class ChipSeen:
    """The blank at the encoder answered with ``uid``: before anything is written to the
    chip, the core commits it to the job (``chip_uid``) and answers with `AnswerPick`
    carrying ``token`` (False: the station will not have it; nothing is written)."""

    record_id: str
    uid: str
    token: int = 0


@dataclass(frozen=True)
class ChipFound:
    """After a restart a card was found inside the printer, carried to the encoder and
    read (chip.md, "A crash"): ``uid`` (None: no chip answered), ``untouched`` (None: it
    cannot be told). An untouched card stays at the encoder for the next job; any other
    was ejected to the reject box (``Ser``) before this was reported."""

    uid: str | None
    untouched: bool | None
    detail: str = ""


# -- events: desk mode (chip.md, ``[encoder] mode = "desk"``) -------------------------

# The desk reader is not listed by pcscd (unplugged): no card can be encoded, none starts.
READER_MISSING = "chip-reader-missing-error"
# A printed card's handover scan did not show the chip encoded for its record: the job
# is held (processing-stopped, with ``uncertain``) until a person confirms or reprints.
HANDOVER_MISMATCH = "handover-mismatch-warning"


@dataclass(frozen=True)
class DeskPrompt:
    """What the LCD asks of the operator now in desk mode (a key of the panel's desk
    texts, kiosk/devices/panel/screens.py), for *record_id*; None: nothing is asked."""

    record_id: str | None
    prompt: str | None


@dataclass(frozen=True)
class HandoverMismatch:
    """The card of *record_id* came out printed, but the chip laid on the desk reader for
    its handover scan is *seen* (None: no chip answered), not *expected*, the chip encoded
    for it: the card is held until a person decides."""

    record_id: str
    seen: str | None
    expected: str | None
    detail: str = ""


# -- events: the blank-card tray's sensor board (the tray driver makes these) ----------


@dataclass(frozen=True)
class TrayFrame:
    """One ``$PKSKT`` tray frame; ``at`` is ``time.monotonic()`` when it was received."""

    seq: int
    height_um: int
    low: bool
    door_open: bool
    card_in_path: bool
    temp_c: float
    at: float


@dataclass(frozen=True)
class TrayBooted:
    """``$PKSKB``: the board (re)started."""

    fw_version: str
    reset_cause: str


@dataclass(frozen=True)
class TrayOnline:
    """Valid frames arrive (first frame after start, or after being offline)."""


@dataclass(frozen=True)
class TrayOffline:
    """No valid frame for ``offline_after`` seconds, or the port is gone."""

    reason: str



# -- events: time and people -----------------------------------------------------


@dataclass(frozen=True)
class Tick:
    now: float


@dataclass(frozen=True)
class UpdateOutcomes:
    """What became of updates, as the updater left it for the station to tell the district
    (kiosk/ops/update: ``update-events.jsonl`` beside the spool): dicts with ``version``,
    ``outcome`` and ``detail``."""

    events: tuple[dict, ...]


# -- actions ---------------------------------------------------------------------


@dataclass(frozen=True)
class Ack:
    mid: int
    generation: int


@dataclass(frozen=True)
class Publish:
    """A direct publish (retained state, availability): not through the outbox."""

    topic: str
    payload: bytes
    retain: bool = True


@dataclass(frozen=True)
class SendOutbox:
    """Hand these outbox items to the broker link (it reports `Delivered`)."""

    items: tuple = field(default_factory=tuple)
    again: bool = False  # resend even if already handed over (rebirth)


@dataclass(frozen=True)
class StartCard:
    record_id: str
    payload: bytes


@dataclass(frozen=True)
class Prefetch:
    """Render this job now so it is ready when the printer frees up."""

    record_id: str
    payload: bytes


@dataclass(frozen=True)
class AnswerPick:
    """The core's yes or no to the `PickRequested` with this ``token``, after its commit."""

    record_id: str
    allow: bool
    token: int = 0


@dataclass(frozen=True)
class PurgePersonalData:
    """Remove the records of jobs that ended before *before* (epoch s), outside the batch."""

    before: float


@dataclass(frozen=True)
class PurgeDone:
    """What the purge did; ``clean`` False: copies are still in the WAL (a reader held it)."""

    removed: int
    clean: bool


@dataclass(frozen=True)
class CalibrateTray:
    """Send the calibration to the tray board (it answers within 2 s, off the loop)."""

    empty_height_um: int
    card_um: int


@dataclass(frozen=True)
class TrayCalibrated:
    """The tray board's answer to `CalibrateTray`."""

    ok: bool
    empty_height_um: int
    card_um: int
    reason: str | None = None


@dataclass(frozen=True)
class ResolveCards:
    """Ask the printer, once it answers, what became of these cards (found in it at start):
    (record_id, the marks kept at its pick) pairs."""

    cards: tuple[tuple[str, dict | None], ...]


@dataclass(frozen=True)
class ProbePrinter:
    """Look at the printer now instead of at the next poll (the OK button)."""


@dataclass(frozen=True)
class SuppliesSeen:
    """The printer's supplies as it tells them (mqtt.md state ``supplies``: dicts of
    name, type, level 0-100 or -1, low_level); reported when they change."""

    supplies: tuple[dict, ...]


@dataclass(frozen=True)
class FaultGone:
    """Evidence that the printer's fault is gone: *kind* is ``refill`` (booked by command
    or at the panel), ``tray`` (the tray sensor sees cards again), ``operator`` (the OK
    button) or ``resume`` (the district). A driver whose queue stays stopped until
    someone acts (IPP) resumes it on the evidence that may clear its reasons; then the
    printer is looked at at once (card-printer.md, "A stopped queue is never left stopped")."""

    kind: str


@dataclass(frozen=True)
class Show:
    """What the device panel (LCD, LEDs, buzzer) should show."""

    view: object


# -- the device panel and the receipt printer ---------------------------------------


@dataclass(frozen=True)
class PanelView:
    """Everything the LCD, LEDs and buzzer show; no personal data beyond a masked name."""

    printer_state: str  # idle | processing | stopped
    reasons: tuple[str, ...]  # IPP keywords; ("none",) when all is well
    paused: bool = False
    accepting: bool = True
    queue_pending: int = 0
    stock_remaining: int | None = None
    minutes_to_empty: float | None = None
    current_record: str | None = None
    current_name_masked: str | None = None
    uncertain: tuple[str, ...] = ()  # record ids waiting for a person's decision
    broker_connected: bool = False
    broker_error: str | None = None  # why the last connection attempt failed, while offline
    tray_online: bool | None = None
    printed: int = 0
    spoiled: int = 0
    chip_prompt: str | None = None  # desk mode: what the operator is asked to do now
    handover: tuple[str, ...] = ()  # record ids held after a handover scan that did not match
    last_made: str | None = None  # the last card printed here, until it is declared damaged


class Intent(StrEnum):
    """What a person can ask for at the device (the panel turns buttons into these)."""

    PAUSE_TOGGLE = "pause-toggle"
    RETRY = "retry"
    SILENCE = "silence"
    CONFIRM_UNCERTAIN = "confirm-uncertain"
    REPRINT_UNCERTAIN = "reprint-uncertain"
    REFILL = "refill"
    SHIFT_REPORT = "shift-report"
    DECLARE_DAMAGED = "declare-damaged"  # the last card made is rusak (chip.md, Custody)


@dataclass(frozen=True)
class OperatorIntent:
    """What a person asked for at the device; ``count`` goes with `Intent.REFILL`."""

    kind: Intent
    record_id: str | None = None
    count: int | None = None


@dataclass(frozen=True)
class ReceiptFault:
    """The receipt printer's condition changed; () when it is fine again."""

    reasons: tuple[str, ...]
    detail: str = ""


@dataclass(frozen=True)
class PrintSlip:
    """A handover slip for a printed card (last 4 NIK digits only)."""

    record_id: str
    nik_last4: str
    name: str
    station: str
    printed_at: str  # RFC 3339 UTC


@dataclass(frozen=True)
class PrintShiftReport:
    station: str
    generated_at: str
    refills: int
    picked: int
    printed: int
    spoiled: int
    remaining: int | None
    rejected: int


@dataclass(frozen=True)
class StartUpdate:
    """Start the updater outside the station's unit (the district's ``update`` command,
    its arguments checked: kiosk.contract.update)."""

    args: dict


@dataclass(frozen=True)
class UpdateOutcomesTold:
    """The outcomes are in the outbox, committed: the updater's file may let them go."""
