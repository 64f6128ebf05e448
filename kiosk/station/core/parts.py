"""What the core's parts (the commands, the front desk) may use of the core.

`CoreAccess` is the narrow interface `StationCore` offers them: jobs read and moved
through the lifecycle table, the card ledger's bookings, the operator's switches,
the station's voice (events and replies through the durable outbox) and the
requests carried out once. The parts import this module, never the machine: the
machine imports them, and nothing imports back. They never see the spool, the
outbound queue or the stock watch themselves.
"""

from __future__ import annotations

from typing import Protocol

from kiosk.station.config import Config
from kiosk.station.core.ledger import CardLedger
from kiosk.station.core.state import StationState
from kiosk.station.core.store import Job


class CoreAccess(Protocol):
    """The core as its parts see it."""

    config: Config
    ledger: CardLedger

    @property
    def state(self) -> StationState:
        """The core's facts, to read (changed only through the methods below)."""

    def now(self) -> float:
        """The wall clock (epoch seconds)."""

    def job(self, record_id: str) -> Job | None: ...

    def jobs(self, *states: str) -> list[Job]: ...

    def set_job(self, record_id: str, state: str, reasons: tuple[str, ...], detail: str,
                *, job: Job | None = None, **columns: object) -> None:
        """Move a job along the lifecycle table and tell the district."""

    def set_paused(self, paused: bool) -> None: ...

    def set_accepting(self, accepting: bool) -> None: ...

    def forget_current(self, record_id: str) -> None: ...

    def in_printer(self, record_id: str) -> bool: ...

    def state_document(self) -> dict: ...

    def rejected(self) -> int:
        """Records rejected, ever."""

    def tray_online(self) -> bool | None: ...

    def event(self, kind: str, **fields: object) -> None:
        """An event to the district, through the durable outbox."""

    def reply(self, topic: str, body: dict, correlation: bytes) -> None:
        """A command's reply to its ResponseTopic, through the durable outbox."""

    def rebirth(self) -> list:
        """Everything said again (the whole outbox, the state, availability)."""

    def request_reply(self, key: str) -> bytes | None:
        """The reply already given to request *key*, if it was carried out."""

    def remember_request(self, key: str, name: str, reply: bytes) -> None: ...

    def foreign_blank(self, uid: str, record_id: str | None, detail: str) -> bool:
        """The district says *uid* is foreign (chip.md): raise the warning; False if known."""

    def forget_foreign(self, uid: str | None) -> None:
        """*uid* was declared: its foreign-blank warning ends."""
