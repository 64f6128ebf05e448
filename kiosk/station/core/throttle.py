"""How much of a flood of bad input the core writes to the journal.

Every rejection is still an event and counted; only the log lines are bounded.
"""

from __future__ import annotations

import logging


class LogThrottle:
    """At most *per_minute* log lines; then one line saying how many were held back.

    A flood of bad input (every rejection is still an event and counted) must not
    fill the journal of a station that runs for years.
    """

    def __init__(self, per_minute: int, what: str = "rejections") -> None:
        self.per_minute = per_minute
        self.what = what
        self.window = -60.0
        self.count = 0

    def allow(self, now: float) -> bool:
        if now - self.window >= 60.0:
            if self.count > self.per_minute:
                logging.getLogger("kiosk").warning(
                    "%d more %s in the last minute were not logged",
                    self.count - self.per_minute, self.what)
            self.window, self.count = now, 0
        self.count += 1
        return self.count <= self.per_minute
