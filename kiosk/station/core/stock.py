"""Blank-card stock: the ledger's count, the tray sensor's estimate, and their alerts.

The ledger (refills − picks, in the spool) is the accounting authority; the
tray board's stack height gives an independent estimate. `StockWatch` turns
both into state-reason keywords (each raised once and cleared once by the
core) and into the stock part of the retained state, including the recent
print rate and the minutes until the tray is empty.

Whether a card can be picked is never decided here: the printer's own feeder
sensor decides (tray-sensor.md), so these reasons warn and never stop a job.
"""

from __future__ import annotations

import time
from collections import deque

from kiosk.station.config import TraySection
from kiosk.station.core.events import TrayFrame, TrayOffline, TrayOnline
from kiosk.station.core.store import Ledger, Store

RATE_WINDOW = 20  # picks remembered for the print rate



def card_estimate(height_um: int, empty_height_um: int, card_um: int) -> int | None:
    """Cards in the tray by stack height, rounded to nearest; None on sensor fault (-1)."""
    if card_um <= 0:
        raise ValueError(f"card_um must be positive, got {card_um}")
    if height_um == -1:
        return None
    over = max(0, height_um - empty_height_um)
    return (2 * over + card_um) // (2 * card_um)  # half rounds up; integers stay exact


class StockWatch:
    """Stock figures and tray conditions, fed by the core."""

    def __init__(self, tray: TraySection, clock=time.monotonic) -> None:
        self.tray = tray
        self.clock = clock
        self.ledger: Ledger | None = None
        self.estimate: int | None = None
        self.tray_online: bool | None = None
        self.door_open = False
        self.sensor_low = False
        self.path_since: float | None = None
        self.path_jam = False
        self._picks: deque[float] = deque(maxlen=RATE_WINDOW)
        self.calibration = (tray.empty_height_um, tray.card_um)

    def load(self, store: Store) -> None:
        self.ledger = store.ledger()
        stored = store.get_meta("tray_calibration")
        if stored:
            empty, card = stored.split(",")
            self.calibration = (int(empty), int(card))

    def calibrated(self, store: Store, empty_height_um: int, card_um: int) -> None:
        """The board accepted a calibration: keep it (it outlives restarts)."""
        self.calibration = (empty_height_um, card_um)
        store.set_meta("tray_calibration", f"{empty_height_um},{card_um}")

    def picked(self, ledger: Ledger) -> None:
        """A blank was booked picked; *ledger*: the totals with it."""
        self._picks.append(self.clock())
        self.ledger = ledger

    def refilled(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def on_tray(self, event: object) -> None:
        if isinstance(event, TrayFrame):
            self.tray_online = True
            self.door_open = event.door_open
            self.sensor_low = event.low
            self.estimate = card_estimate(
                event.height_um, *self.calibration
            )
            if event.card_in_path:
                self.path_since = self.path_since or event.at
            else:
                self.path_since, self.path_jam = None, False
        elif isinstance(event, TrayOffline):
            self.tray_online = False
        elif isinstance(event, TrayOnline):
            self.tray_online = True

    def on_tick(self) -> None:
        """The card-path beam held past ``path_jam_s`` is a jam."""
        held = self.path_since is not None and self.clock() - self.path_since
        self.path_jam = bool(held and held > self.tray.path_jam_s)

    def reasons(self) -> dict[str, str]:
        """Active reason keywords with a human detail each."""
        active: dict[str, str] = {}
        remaining = self.ledger.remaining if self.ledger else None
        if remaining is not None and remaining <= 0:
            active["media-empty-error"] = "the stock ledger says the tray is empty"
        elif remaining is not None and remaining <= self.tray.low_threshold:
            active["media-low-warning"] = f"{remaining} blank cards left"
        elif self.sensor_low and self.tray_online:
            active["media-low-warning"] = "the tray's low-stock sensor sees no card"
        if self.tray.enabled and self.tray_online is False:
            active["offline-report"] = "the tray sensor board is not answering"
        if self.door_open:
            active["door-open-warning"] = "the blank-card tray door is open"
        if self.path_jam:
            active["media-jam-error"] = "a card stays in the card path beam"
        if remaining is not None and remaining < 0:
            active["ledger-mismatch-warning"] = (
                f"{-remaining} cards printed that no refill booked: book the refill"
            )
        elif self._mismatch():
            active["ledger-mismatch-warning"] = (
                f"ledger says {remaining} blank cards, the tray sensor sees {self.estimate}"
            )
        return active

    def _mismatch(self) -> bool:
        remaining = self.ledger.remaining if self.ledger else None
        if self.estimate is None or not self.tray_online:
            return False
        if remaining is None:
            return False
        return abs(remaining - self.estimate) > self.tray.mismatch_tolerance

    def rate_per_hour(self) -> float | None:
        if len(self._picks) < 2:
            return None
        span = self._picks[-1] - self._picks[0]
        return (len(self._picks) - 1) / span * 3600 if span > 0 else None

    def document(self, ledger: Ledger) -> dict:
        self.ledger = ledger
        rate = self.rate_per_hour()
        remaining = ledger.remaining
        minutes = None
        if rate and remaining is not None:
            minutes = round(max(remaining, 0) / rate * 60, 1)
        return {
            "remaining": remaining,
            "low_threshold": self.tray.low_threshold,
            "sensor_estimate": self.estimate,
            "rate_per_hour": round(rate, 1) if rate else None,
            "minutes_to_empty": minutes,
        }
