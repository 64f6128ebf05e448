"""Acknowledgements in arrival order (MQTT 5, 4.6), shared by the station's link and the router.

A client with ``manual_ack`` may finish messages in any order; its PUBACKs must still
leave in the order the messages arrived. `InOrderAcks` is that rule as a plain object:
told what arrived and what is finished, it answers which message ids may be acknowledged
now. No paho, no lock: its owner calls it from one thread or under its own lock, and
starts a new one (`reset`) for each connection, since an ack belongs to the connection
that delivered the message.

    order = InOrderAcks()
    order.arrived(1); order.arrived(2)
    order.finished(2)   # -> []      (1 is not finished: 2 waits behind it)
    order.finished(1)   # -> [1, 2]
"""

from __future__ import annotations

from collections import deque


class InOrderAcks:
    """Message ids of one connection, acknowledged in the order they arrived."""

    def __init__(self) -> None:
        self._arrivals: deque[int] = deque()
        self._finished: set[int] = set()

    def arrived(self, mid: int) -> None:
        self._arrivals.append(mid)

    def finished(self, mid: int) -> list[int]:
        """*mid* is done: the ids that may be acknowledged now, oldest first."""
        self._finished.add(mid)
        due = []
        while self._arrivals and self._arrivals[0] in self._finished:
            first = self._arrivals.popleft()
            self._finished.discard(first)
            due.append(first)
        return due

    def reset(self) -> None:
        """A new connection: nothing of the old one is acknowledged any more."""
        self._arrivals.clear()
        self._finished.clear()

    def __len__(self) -> int:
        """Messages arrived and not yet acknowledged."""
        return len(self._arrivals)
