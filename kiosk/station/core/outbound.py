"""What the station says to the district: events, command replies, alerts, the state.

`Outbound` stamps every message of this boot (``boot_id``, ``seq``, ``ts``),
writes events and replies to the spool's outbox inside the caller's
transaction (so they survive a crash and are re-sent until the broker's
PUBACK), raises each alert once and clears it once, and decides when the
retained state goes out: on every change, and at least every 30 s.

The broker link gets outbox items in order, at most ``OUTBOX_WINDOW`` unconfirmed at a
time; the rest wait in the spool, not in memory (a burst of records or a long outage
can leave tens of thousands of events to send).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from kiosk.station.core import events as ev
from kiosk.station.core.store import OutboxItem, Store

HEARTBEAT_S = 30.0
OUTBOX_WINDOW = 500  # outbox items handed to the broker link and not yet confirmed
REFILL = 50  # read the spool for more once this many are confirmed (not one by one)


def is_alert(reason: str) -> bool:
    return reason.endswith(("-report", "-warning", "-error"))


class Outbound:
    """The station's voice on ``{root}/{d}/{s}/…`` for one boot."""

    def __init__(self, store: Store, base: str, boot_id: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.base = base
        self.boot_id = boot_id
        self.clock = clock
        self.seq = 0
        self._cursor = 0  # the last outbox id handed to the link
        self._in_flight: set[int] = set()
        self._more = True  # the outbox may hold items past the cursor, not in _fresh
        self._fresh: list[OutboxItem] = []  # written since the last flush, right after it
        self._again = False
        self._alerts: dict[str, str] = json.loads(store.get_meta("alerts", "{}"))
        self._last_state: dict | None = None
        self._last_state_at = 0.0

    def topic(self, leaf: str) -> str:
        return f"{self.base}/{leaf}"

    def _stamp(self, body: dict) -> dict:
        self.seq += 1
        ts = ev.rfc3339(self.clock())
        return {"boot_id": self.boot_id, "seq": self.seq, "ts": ts, **body}

    # -- through the outbox --------------------------------------------------------------

    def event(self, kind: str, **fields: object) -> None:
        """Queue an event in the outbox (sent after the commit)."""
        body = self._stamp({"schema": "ektp.event/1", "type": kind, **fields})
        self.outbox(self.topic("events"), body)

    def outbox(self, topic: str, body: dict, correlation: bytes | None = None) -> None:
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        item = self.store.enqueue(topic, payload, correlation)
        # Usually the link is keeping up: hand this one over without reading it back.
        if not self._more and len(self._in_flight) + len(self._fresh) < OUTBOX_WINDOW:
            self._fresh.append(item)
        else:
            self._more = True

    def job_event(self, record_id: str, state: str, reasons: tuple[str, ...], detail: str,
                  *, chip_uid: str | None = None) -> None:
        """mqtt.md's job event; ``chip_uid`` when the card's chip is known (chip.md)."""
        chip = {"chip_uid": chip_uid} if chip_uid else {}
        self.event("job", record_id=record_id, job_state=state, reasons=list(reasons),
                   detail=detail, **chip)

    def alert(self, reason: str, detail: str, *, cleared: bool = False) -> None:
        body: dict[str, object] = {"reason": reason, "detail": detail}
        if cleared:
            body["cleared"] = True
        self.event("alert", **body)

    def sync_alerts(self, active: dict[str, str]) -> None:
        """Raise each alert once when it appears and clear it once when it goes.

        What was raised is remembered in the spool, so a restart neither repeats
        nor forgets an alert.
        """
        active = {reason: detail for reason, detail in active.items() if is_alert(reason)}
        for reason in sorted(active.keys() - self._alerts.keys()):
            self.alert(reason, active[reason])
        for reason in sorted(self._alerts.keys() - active.keys()):
            self.alert(reason, "cleared", cleared=True)
        if active != self._alerts:
            self.store.set_meta("alerts", json.dumps(active))
        self._alerts = active

    def flush(self) -> list:
        """The next outbox items for the broker link, as far as the window has room."""
        room = OUTBOX_WINDOW - len(self._in_flight)
        if self._fresh:
            items, self._fresh = self._fresh, []
        elif self._more and room >= REFILL:
            items = self.store.outbox(after=self._cursor, limit=room)
            self._more = len(items) == room
        else:
            return []
        if not items:
            return []
        self._cursor = items[-1].id
        self._in_flight.update(item.id for item in items)
        again, self._again = self._again, False
        return [ev.SendOutbox(tuple(items), again=again)]

    def delivered(self, item_id: int) -> None:
        """The broker confirmed *item_id*: room for the next one."""
        self._in_flight.discard(item_id)

    def resend_all(self) -> None:
        """Send the whole outbox again, from its first item (rebirth)."""
        self._cursor = 0
        self._in_flight.clear()
        self._fresh.clear()
        self._more = self._again = True

    # -- the retained state ----------------------------------------------------------------

    def state(self, document: dict, *, force: bool = False) -> ev.Publish | None:
        """The state publish, if it changed (or *force*); None otherwise."""
        if not force and document == self._last_state:
            return None
        self._last_state = document
        self._last_state_at = self.clock()
        stamped = self._stamp({"schema": "ektp.state/1", **document})
        payload = json.dumps(stamped, separators=(",", ":")).encode()
        return ev.Publish(self.topic("state"), payload, retain=True)

    @property
    def last_state(self) -> dict | None:
        """The state document last published."""
        return self._last_state

    def heartbeat_due(self) -> bool:
        return self.clock() - self._last_state_at >= HEARTBEAT_S

    def forget_state(self) -> None:
        """The next `state` call publishes even if nothing changed (rebirth)."""
        self._last_state = None
