"""District commands (mqtt.md, Commands): argument checks, effects, replies.

Each command is answered on its MQTT 5 ResponseTopic with the request's
CorrelationData, through the durable outbox, and audited as a ``command``
event. Unknown or malformed requests get ``ok: false`` with a precise error.
Besides mqtt.md's table the station knows ``confirm`` (an ``uncertain`` card
did come out: book it printed), ``accept`` (undo ``drain``), ``shift-report``
(print the blank-card ledger on the receipt printer) and ``calibrate`` (the tray
board's empty height and card thickness; the board's answer follows as a second
``command`` event). The same commands run for the operator at the device through
`local`. Commands are functions over the core's narrow interface (`CoreAccess`); each
returns a `Reply`: the reply's fields and the actions the command needs (sending the
calibration to the tray board, printing a report). The core's facts change only
through that interface, and every card booking goes through its ledger.

Once per request (mqtt.md): a command that changes anything is identified by its
ResponseTopic and CorrelationData, or by a ``request_id`` member of its payload. The
spool remembers each one carried out with its reply (by its ``request_id`` when it has
one, which outlives a resend with new CorrelationData); the same request again (the
broker redelivering after a lost PUBACK, a district tool resending after a timeout) is
answered with that reply, audited as a repeat, and changes nothing. Without an
identifier such a command is refused with ``no-request-id``. Commands at the device
need none: a button press arrives once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kiosk.contract.custody import DECLARED, is_uid
from kiosk.contract.update import ARGUMENTS as UPDATE_ARGUMENTS
from kiosk.contract.update import problem as update_problem
from kiosk.station.core import events as ev
from kiosk.station.core.ledger import Blank
from kiosk.station.core.parts import CoreAccess
from kiosk.station.core.state import ACTIVE, FINAL, JobState, Reason, is_uncertain
from kiosk.station.core.store import Job

MAX_REFILL = 10_000
READ_ONLY = frozenset({"status", "rebirth"})  # safe to repeat: no identifier needed
MAX_REQUEST_ID = 128
MAX_REASON = 300


class CommandError(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Reply:
    """What a command answers (beside ``ok``) and the actions it needs."""

    fields: dict[str, Any] = field(default_factory=dict)
    actions: tuple = ()


def run(core: CoreAccess, name: str, payload: bytes, response_topic: str | None,
        correlation: bytes | None) -> list:
    """A command from the district; the reply goes to its ResponseTopic."""
    actions: tuple = ()
    try:
        args = _arguments(name, payload)
        key = _request_key(name, args.pop("request_id", None), response_topic, correlation)
    except CommandError as error:
        reply = {"ok": False, "error": error.code, "detail": error.detail}
        _audit(core, name, {}, "district", reply)
    else:
        done = core.request_reply(key) if key else None
        if done is not None:
            reply = json.loads(done)
            _audit(core, name, args, "district", reply, repeat=True)
        else:
            reply, actions = _execute(core, name, args, "district")
            if key:
                core.remember_request(key, name, json.dumps(reply).encode())
    if response_topic:
        core.reply(response_topic, reply, correlation or b"")
    return list(actions)


def local(core: CoreAccess, name: str, args: dict[str, Any]) -> list:
    """The same command asked for at the device; returns the actions it needs."""
    _, actions = _execute(core, name, args, "device")
    return list(actions)


def _request_key(name: str, request_id: object, response_topic: str | None,
                 correlation: bytes | None) -> str | None:
    """What identifies this request (None: a read-only command, safe to repeat)."""
    if name in READ_ONLY:
        return None
    # A request_id names the request itself: a tool that resends after a timeout may do
    # so with new CorrelationData, and it must still take effect once.
    if isinstance(request_id, str) and 0 < len(request_id) <= MAX_REQUEST_ID:
        return f"r:{name}:{request_id}"
    if request_id is not None:
        raise CommandError("bad-arguments",
                           f"request_id must be a string of 1..{MAX_REQUEST_ID} characters")
    if correlation:
        return f"c:{name}:{response_topic or ''}:{correlation.hex()}"
    raise CommandError("no-request-id", f"{name} changes the station: send it with"
                       " CorrelationData or a request_id, so that it takes effect once")


def _execute(core: CoreAccess, name: str, args: dict[str, Any],
             source: str) -> tuple[dict, tuple]:
    actions: tuple = ()
    try:
        outcome: Reply = COMMANDS[name][0](core, **args)
        reply, actions = {"ok": True, **outcome.fields}, outcome.actions
    except CommandError as error:
        reply = {"ok": False, "error": error.code, "detail": error.detail}
    _audit(core, name, args, source, reply)
    return reply, actions


def _audit(core: CoreAccess, name: str, args: dict[str, Any], source: str, reply: dict, *,
           repeat: bool = False) -> None:
    detail = reply.get("detail", "")
    if repeat:
        detail = "request already carried out: the same reply again, nothing changed"
    core.event("command", name=name, args=_safe(args), source=source, ok=reply["ok"],
               error=reply.get("error"), detail=detail, repeat=repeat)


def _arguments(name: str, payload: bytes) -> dict[str, Any]:
    if name not in COMMANDS:
        raise CommandError("unknown-command", f"no command named {name!r}")
    try:
        body = json.loads(payload.decode("utf-8")) if payload.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CommandError("bad-request", f"request is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise CommandError("bad-request", "request must be a JSON object")
    wanted = COMMANDS[name][1]
    extra = sorted(set(body) - set(wanted) - set(OPTIONAL.get(name, ())) - {"request_id"})
    if extra:
        raise CommandError("bad-arguments", f"{name} takes no argument {extra[0]!r}")
    missing = [key for key in wanted if key not in body]
    if missing:
        raise CommandError("bad-arguments", f"{name} needs {missing[0]!r}")
    return body


# -- the commands -------------------------------------------------------------------


def status(core: CoreAccess) -> Reply:
    queue = [
        {"record_id": job.record_id, "job_state": job.state, "reasons": list(job.reasons),
         "priority": job.priority}
        for job in core.jobs(*ACTIVE)
    ]
    return Reply({"state": {"schema": "ektp.state/1", **core.state_document()}, "jobs": queue})


def pause(core: CoreAccess) -> Reply:
    core.set_paused(True)
    return Reply({"detail": "no new card will be taken; the card in the printer finishes"})


def resume(core: CoreAccess) -> Reply:
    core.set_paused(False)
    return Reply(actions=(ev.FaultGone("resume"),))


def drain(core: CoreAccess) -> Reply:
    core.set_accepting(False)
    return Reply({"detail": "new records are refused; the queue finishes"})


def accept(core: CoreAccess) -> Reply:
    core.set_accepting(True)
    return Reply()


def cancel(core: CoreAccess, record_id: str) -> Reply:
    job = _job(core, record_id)
    if job.state in FINAL:
        raise CommandError("job-finished", f"{record_id} is already {job.state}")
    if core.in_printer(record_id):
        raise CommandError("job-printing", f"{record_id} is in the printer")
    core.forget_current(record_id)
    core.set_job(record_id, JobState.CANCELED, (Reason.CANCELED_BY_OPERATOR,),
                 "canceled by command", job=job)
    return Reply()


def confirm(core: CoreAccess, record_id: str) -> Reply:
    job = _uncertain(core, record_id)
    columns = core.ledger.printed(Blank(record_id, "confirmed after an uncertain end"), job)
    core.set_job(record_id, JobState.COMPLETED, (), "confirmed: the card came out",
                 job=job, **columns)
    return Reply()


def reprint(core: CoreAccess, record_id: str, reason: str) -> Reply:
    if not isinstance(reason, str) or not reason:
        raise CommandError("bad-arguments", "reason must be a non-empty string")
    job = _job(core, record_id)
    if job.payload is None:
        raise CommandError("personal-data-purged",
                           f"{record_id}: personal data was removed; send the record again")
    if job.state == JobState.COMPLETED:
        columns = core.ledger.unprinted(Blank(record_id, f"reprint: {reason}"))
    elif is_uncertain(job.state, job.reasons):
        # As with no reply to Ss: a blank the printer may have taken is counted taken.
        columns = core.ledger.spoiled(Blank(record_id, f"uncertain card: {reason}"), job)
    else:
        raise CommandError("not-reprintable",
                           f"{record_id} is {job.state}; only completed or uncertain jobs")
    core.set_job(record_id, JobState.PENDING, (), f"reprint requested: {reason}",
                 job=job, **{**columns, "attempts": 0})
    return Reply()


def refill(core: CoreAccess, count: int) -> Reply:
    if not isinstance(count, int) or isinstance(count, bool) or not 0 < count <= MAX_REFILL:
        raise CommandError("bad-arguments", f"count must be an integer 1..{MAX_REFILL}")
    totals = core.ledger.refilled(count, "refill by command")
    return Reply({"remaining": totals.remaining}, (ev.FaultGone("refill"),))


def release(core: CoreAccess) -> Reply:
    released = []
    for job in core.jobs(JobState.PENDING, JobState.PENDING_HELD):
        core.set_job(job.record_id, JobState.CANCELED, (Reason.RELEASED,),
                     "released to the district for another station", job=job)
        released.append(job.record_id)
    return Reply({"released": released})


def calibrate(core: CoreAccess, empty_height_um: int, card_um: int) -> Reply:
    for name, value in (("empty_height_um", empty_height_um), ("card_um", card_um)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise CommandError("bad-arguments", f"{name} must be a whole number of µm")
    return Reply({"detail": "sent to the tray board; its answer follows as a command event"},
                 (ev.CalibrateTray(empty_height_um, card_um),))


def shift_report(core: CoreAccess) -> Reply:
    """The blank-card ledger on the receipt printer."""
    totals = core.ledger.totals()
    report = ev.PrintShiftReport(
        station=core.config.station.id, generated_at=ev.rfc3339(core.now()),
        refills=totals.refills, picked=totals.picks, printed=totals.printed,
        spoiled=totals.spoiled, remaining=totals.remaining, rejected=core.rejected(),
    )
    return Reply({"detail": "shift report sent to the receipt printer"}, (report,))


def rebirth(core: CoreAccess) -> Reply:
    return Reply({}, tuple(core.rebirth()))


def update(core: CoreAccess, **args: object) -> Reply:
    """Start the updater on a release the district announced (station.md, Releases): the
    reply says it started; the outcome follows as an ``update`` event. The updater itself
    waits for a card in the printer to finish before it switches."""
    why = update_problem(args)
    if why:
        raise CommandError("bad-arguments", why)
    return Reply({"detail": f"updating to {args['version']}: the outcome follows as an"
                            " update event"}, (ev.StartUpdate(dict(args)),))


def invalidate(core: CoreAccess, category: str, reason: str, uid: object = None,
               record_id: object = None) -> Reply:
    """A blank declared invalid by a person (chip.md, Custody): a card made whose data
    changed, or a damaged blank. By ``uid`` (its chip) or ``record_id`` (the card made for
    it); a UID the register does not know is a blank never taken (found damaged in the
    tray): it leaves the stock. The printed and spoiled counters stay as they are."""
    if category not in DECLARED:
        raise CommandError("bad-arguments", f"category must be one of {', '.join(DECLARED)}"
                           " (gagal-encode and gagal-cetak are decided by the station)")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
        raise CommandError("bad-arguments", f"reason must be text of 1..{MAX_REASON} characters")
    if (uid is None) == (record_id is None):
        raise CommandError("bad-arguments", "give the blank's uid or its record_id, not both")
    if uid is not None and not is_uid(uid):
        raise CommandError("bad-arguments", "uid must be upper-case hex of 4, 7 or 10 bytes")
    if record_id is not None and not isinstance(record_id, str):
        raise CommandError("bad-arguments", "record_id must be a string")
    row = core.ledger.find(uid=uid, record_id=record_id)  # type: ignore[arg-type]
    if row is None and uid is None:
        raise CommandError("unknown-blank", f"no blank of {record_id!r} in this station's"
                           " register")
    if row is None:
        row = core.ledger.declared(uid, category, reason)  # type: ignore[arg-type]
    elif row.outcome == "invalid":
        raise CommandError("already-invalid", f"blank {row.uid or row.record_id} is already"
                           f" invalid ({row.category})")
    else:
        row = core.ledger.invalidate(row, category, reason)
    core.forget_foreign(row.uid)
    return Reply({"uid": row.uid, "record_id": row.record_id, "category": category})


def foreign_blank(core: CoreAccess, uid: object, record_id: object = None,
                  detail: object = "") -> Reply:
    """The district's word that a blank used here is in none of its shipment manifests
    (chip.md): the station raises ``foreign-blank-warning`` until it is declared."""
    if not is_uid(uid):
        raise CommandError("bad-arguments", "uid must be upper-case hex of 4, 7 or 10 bytes")
    if record_id is not None and not isinstance(record_id, str):
        raise CommandError("bad-arguments", "record_id must be a string")
    text = detail if isinstance(detail, str) else ""
    new = core.foreign_blank(uid, record_id, text[:MAX_REASON])
    return Reply({"detail": "foreign-blank-warning raised" if new else
                  "nothing raised: told before, or the blank is declared invalid already"})


# name → (the command, the arguments it takes)
COMMANDS: dict[str, tuple[Callable[..., Reply], tuple[str, ...]]] = {
    "status": (status, ()), "pause": (pause, ()), "resume": (resume, ()),
    "drain": (drain, ()), "accept": (accept, ()), "release": (release, ()),
    "rebirth": (rebirth, ()), "cancel": (cancel, ("record_id",)),
    "confirm": (confirm, ("record_id",)), "reprint": (reprint, ("record_id", "reason")),
    "refill": (refill, ("count",)), "shift-report": (shift_report, ()),
    "calibrate": (calibrate, ("empty_height_um", "card_um")),
    "update": (update, UPDATE_ARGUMENTS),
    "invalidate": (invalidate, ("category", "reason")),
    "foreign-blank": (foreign_blank, ("uid",)),
}
# name → the arguments it may also take
OPTIONAL: dict[str, tuple[str, ...]] = {
    "invalidate": ("uid", "record_id"),
    "foreign-blank": ("record_id", "detail"),
}


# -- helpers ------------------------------------------------------------------------


def _job(core: CoreAccess, record_id: object) -> Job:
    if not isinstance(record_id, str):
        raise CommandError("bad-arguments", "record_id must be a string")
    job = core.job(record_id)
    if job is None:
        raise CommandError("unknown-record", f"no job {record_id!r} on this station")
    return job


def _uncertain(core: CoreAccess, record_id: object) -> Job:
    job = _job(core, record_id)
    if not is_uncertain(job.state, job.reasons):
        raise CommandError("not-uncertain", f"{record_id} is {job.state}, not uncertain")
    return job


def _safe(args: dict) -> dict:
    """Arguments safe to publish: short scalars only."""
    return {key: value for key, value in args.items() if isinstance(value, int | str)
            and len(str(value)) <= 64}

