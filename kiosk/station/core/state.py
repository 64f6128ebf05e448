"""The core's one state object, its vocabulary of states, and the job lifecycle table.

Everything that decides whether a job may move from one state to another lives in
this file, and nothing here knows of threads, devices or the broker. A job's state
is one of mqtt.md's IPP names (`JobState`); while a card of it may be in the printer
it also has a `Phase` (the crash rule: ``picking`` is committed before ``Ss``).
`TRANSITIONS` is the lifecycle as a table: the README's diagram is drawn from it
(`diagram`), and a move the table does not allow raises `IllegalTransition` (a bug
in the core, never a consequence of outside input, which is checked before).

`StationState` holds the core's mutable facts in one place; the core's parts
(commands, the front desk) read it and change it only through the core's methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class JobState(StrEnum):
    """A job's state, as mqtt.md names it (IPP job-state keywords)."""

    PENDING = "pending"
    PENDING_HELD = "pending-held"
    PROCESSING = "processing"
    PROCESSING_STOPPED = "processing-stopped"
    COMPLETED = "completed"
    CANCELED = "canceled"
    ABORTED = "aborted"


class Phase(StrEnum):
    """Where a job's card is while it may be in the printer (the crash rule)."""

    PICKING = "picking"  # committed before the pick is sent: a blank may be taken from now on
    PICKED = "picked"  # the printer confirmed the pick


class PrinterCondition(StrEnum):
    """What the core knows of its printer (the state document says idle/processing/stopped)."""

    CONNECTING = "connecting"  # no answer yet, or reconnecting
    IDLE = "idle"  # answered, no fault, no card of ours in it
    BUSY = "busy"  # a card of ours is in it
    FAULT = "fault"  # it cannot print now; the reasons say why


class Reason(StrEnum):
    """The reasons that are ours, not the printer's or the tray's."""

    UNCERTAIN = "uncertain"  # a card's fate is unknown: a person or the district decides
    CANCELED_BY_OPERATOR = "canceled-by-operator"
    RELEASED = "released"  # handed back to the district for another station
    PAUSED = "paused"
    CONNECTING = "connecting-to-device"
    SPOOL_FULL = "spool-area-full-error"
    RECORD_MISSING = "job-record-missing"  # held: its record was purged; the district resends it
    JOB_HELD = "job-held-warning"  # alert: jobs are held waiting for their record
    PURGE_INCOMPLETE = "purge-incomplete-warning"  # alert: purged data still in the WAL
    FOREIGN_BLANK = "foreign-blank-warning"  # alert: a blank in no manifest of the district


# The job lifecycle: for each state, the states a job may move to and why.
# None is "not yet a job" (a record arrives). canceled and aborted are final.
_S = JobState
TRANSITIONS: dict[JobState | None, dict[JobState, str]] = {
    None: {_S.PENDING: "a record is spooled"},
    _S.PENDING: {
        _S.PROCESSING: "the printer is free and it is next",
        _S.PENDING_HELD: "its record is missing: set aside until the district sends it again",
        _S.CANCELED: "cancel or release",
    },
    _S.PENDING_HELD: {
        _S.PENDING: "its record arrived again",
        _S.CANCELED: "cancel or release",
    },
    _S.PROCESSING: {
        _S.COMPLETED: "the printer says the card came out",
        _S.PROCESSING_STOPPED: "a printer fault, or the card's fate is unknown",
        _S.ABORTED: "the job is bad, or too many blanks spoiled",
        _S.PENDING: "ended before a blank was taken, or requeued after a restart",
        _S.CANCELED: "cancel of a job not in the printer",
    },
    _S.PROCESSING_STOPPED: {
        _S.PROCESSING_STOPPED: "the reasons changed",
        _S.PROCESSING: "the fault cleared (it goes first)",
        _S.PENDING_HELD: "its record is missing: set aside until the district sends it again",
        _S.COMPLETED: "confirm (the card did come out)",
        _S.PENDING: "reprint of an uncertain card, or requeued after a restart",
        _S.ABORTED: "too many blanks spoiled",
        _S.CANCELED: "cancel of a job not in the printer",
    },
    _S.COMPLETED: {_S.PENDING: "reprint"},
    _S.CANCELED: {},
    _S.ABORTED: {},
}

ACTIVE = (_S.PENDING, _S.PENDING_HELD, _S.PROCESSING, _S.PROCESSING_STOPPED)
FINAL = (_S.COMPLETED, _S.CANCELED, _S.ABORTED)


class IllegalTransition(RuntimeError):
    """The core tried a move the lifecycle table does not allow."""


def check_transition(record_id: str, current: str | None, new: str) -> JobState:
    """The new state, if the table allows moving *record_id* there from *current*."""
    source = JobState(current) if current is not None else None
    target = JobState(new)
    if target not in TRANSITIONS[source]:
        raise IllegalTransition(f"job {record_id}: {current} -> {new} is not a lifecycle move")
    return target


def diagram() -> str:
    """The lifecycle table as a Mermaid state diagram, for the README."""
    def node(state: JobState | None) -> str:
        return "[*]" if state is None else state.value.replace("-", "_")

    lines = ["stateDiagram-v2"]
    lines.extend(f'    state "{s.value}" as {node(s)}' for s in JobState if "-" in s.value)
    for source, targets in TRANSITIONS.items():
        for target, why in targets.items():
            lines.append(f"    {node(source)} --> {node(target)}: {why}")
    lines.extend(f"    {node(final)} --> [*]" for final in FINAL)
    return "\n".join(lines)


def is_uncertain(state: str, reasons: tuple[str, ...] | list[str]) -> bool:
    """A job whose card may or may not have come out, waiting for a decision."""
    return state == JobState.PROCESSING_STOPPED and Reason.UNCERTAIN in reasons


@dataclass
class StationState:
    """The core's mutable facts, in one place (the spool holds the durable ones)."""

    printer: PrinterCondition = PrinterCondition.CONNECTING
    printer_reasons: tuple[str, ...] = ()
    printer_detail: str = ""
    current: str | None = None  # the job the printer has, or gets first when it is back
    prefetched: str | None = None  # the job rendered ahead
    ahead: str | None = None  # the job a print server holds behind `current` (IPP)
    paused: bool = False
    accepting: bool = True
    spool_full: bool = False
    generation: int | None = None  # the broker connection that is up, if any
    purges_unclean: int = 0  # purges in a row that left copies in the WAL
    link_error: str | None = None  # why the last connection attempt failed, until one works
    supplies: tuple[dict, ...] = ()  # the printer's, as it last told them (SuppliesSeen)
    foreign: dict[str, str] = field(default_factory=dict)  # UID → the district's word
