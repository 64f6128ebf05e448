"""The front desk: what the office staff see and do at the device.

`Desk` belongs to the core. It translates operator intents from the panel (pause,
resolve an uncertain card, book a refill, ask for the shift report) into the
district's own commands (`commands.local`), builds the `PanelView` the LCD and
lights show, and asks the receipt printer for handover slips. Receipt troubles
are alerts only: they never stop the card printer. It sees the core only through
`CoreAccess`.
"""

from __future__ import annotations

import json

from kiosk.station.core import commands
from kiosk.station.core import events as ev
from kiosk.station.core.events import Intent
from kiosk.station.core.parts import CoreAccess
from kiosk.station.core.state import JobState, is_uncertain

INTENT_COMMANDS = {
    Intent.DECLARE_DAMAGED: "invalidate",
    Intent.CONFIRM_UNCERTAIN: "confirm",
    Intent.REPRINT_UNCERTAIN: "reprint",
    Intent.REFILL: "refill",
    Intent.SHIFT_REPORT: "shift-report",
}


def mask_name(name: str) -> str:
    """First word whole, the others to their initial: 'SITI C*** A*****'."""
    words = name.split()
    return " ".join(words[:1] + [w[0] + "*" * (len(w) - 1) for w in words[1:]])


class Desk:
    """Operator intents, the panel view, slips and shift reports for one core."""

    def __init__(self, core: CoreAccess) -> None:
        self.core = core
        self.receipt_reasons: dict[str, str] = {}
        self._names: dict[str, str] = {}
        self._last_view: ev.PanelView | None = None
        self.chip_prompt: str | None = None  # desk mode: what the operator is asked now
        self.last_made: str | None = None  # the last card printed, for the panel's "made"

    # -- operator intents ----------------------------------------------------------------

    def on_intent(self, intent: ev.OperatorIntent) -> list:
        if intent.kind is Intent.RETRY:
            return [ev.FaultGone("operator")]
        if intent.kind is Intent.PAUSE_TOGGLE:
            name = "resume" if self.core.state.paused else "pause"
        else:
            name = INTENT_COMMANDS.get(intent.kind)
        if name is None:
            return []  # "silence" and the like belong to the panel itself
        return commands.local(self.core, name, self._arguments(intent))

    def _arguments(self, intent: ev.OperatorIntent) -> dict:
        uncertain = self.uncertain()
        record_id = intent.record_id or (uncertain[0] if uncertain else "")
        if intent.kind is Intent.CONFIRM_UNCERTAIN:
            return {"record_id": record_id}
        if intent.kind is Intent.REPRINT_UNCERTAIN:
            return {"record_id": record_id, "reason": "no card came out (checked at the device)"}
        if intent.kind is Intent.REFILL:
            return {"count": intent.count}
        if intent.kind is Intent.DECLARE_DAMAGED:
            if intent.record_id == self.last_made:
                self.last_made = None  # declared: the screen goes
            return {"record_id": intent.record_id, "category": "rusak",
                    "reason": "declared damaged at the station's panel"}
        return {}

    def uncertain(self) -> list[str]:
        jobs = self.core.jobs(JobState.PROCESSING_STOPPED)
        return [job.record_id for job in jobs if is_uncertain(job.state, job.reasons)]

    # -- desk mode (kiosk/station/deskchip.py) ---------------------------------------------

    def on_prompt(self, event: ev.DeskPrompt) -> list:
        """The printer thread's prompt for the operator; shown with the next view."""
        self.chip_prompt = event.prompt
        return []

    def held_handovers(self) -> list[str]:
        """Jobs held because their card's handover scan did not match (a person decides)."""
        if self.core.config.encoder.mode != "desk":
            return []
        jobs = self.core.jobs(JobState.PROCESSING_STOPPED)
        return [job.record_id for job in jobs if ev.HANDOVER_MISMATCH in job.reasons]

    def handover_alerts(self) -> dict[str, str]:
        """``handover-mismatch-warning`` while any card is held for it."""
        held = self.held_handovers()
        if not held:
            return {}
        detail = (f"{len(held)} printed cards held: their handover scan did not show the"
                  f" chip encoded for them ({', '.join(held[:5])}); confirm or reprint")
        return {ev.HANDOVER_MISMATCH: detail[:400]}

    # -- receipt printer -------------------------------------------------------------------

    def on_receipt_fault(self, event: ev.ReceiptFault) -> list:
        self.receipt_reasons = {reason: event.detail or reason for reason in event.reasons}
        return []

    def slip(self, record_id: str) -> list:
        """A handover slip for a printed card, when a receipt printer is configured."""
        self.last_made = record_id
        if not self.core.config.receipt.enabled:
            return []
        job = self.core.job(record_id)
        if job is None or job.payload is None:
            return []
        body = json.loads(job.payload)
        return [ev.PrintSlip(record_id=record_id, nik_last4=body["nik"][-4:],
                             name=body["fields"]["nama"], station=self.core.config.station.id,
                             printed_at=ev.rfc3339(self.core.now()))]

    # -- the panel view --------------------------------------------------------------------

    def view_changed(self, state: dict | None = None) -> ev.Show | None:
        view = self.view(state)
        if view == self._last_view:
            return None
        self._last_view = view
        return ev.Show(view)

    def view(self, state: dict | None = None) -> ev.PanelView:
        """What the panel shows, from *state* (the core's state document) if given."""
        core, facts = self.core, self.core.state
        state = state or core.state_document()
        stock = state["stock"]
        return ev.PanelView(
            printer_state=state["printer_state"],
            reasons=tuple(state["printer_state_reasons"]),
            paused=facts.paused,
            accepting=facts.accepting,
            queue_pending=state["queue"]["pending"],
            stock_remaining=stock["remaining"],
            minutes_to_empty=stock["minutes_to_empty"],
            current_record=facts.current,
            current_name_masked=self._masked_name(facts.current),
            uncertain=tuple(self.uncertain()),
            broker_connected=facts.generation is not None,
            broker_error=facts.link_error if facts.generation is None else None,
            tray_online=core.tray_online(),
            printed=state["counters"]["printed"],
            spoiled=state["counters"]["spoiled"],
            chip_prompt=self.chip_prompt,
            handover=tuple(self.held_handovers()),
            last_made=self.last_made,
        )

    def _masked_name(self, record_id: str | None) -> str | None:
        if record_id is None:
            return None
        if record_id not in self._names:
            job = self.core.job(record_id)
            if job is None or job.payload is None:
                return None
            self._names = {record_id: mask_name(json.loads(job.payload)["fields"]["nama"])}
        return self._names[record_id]

