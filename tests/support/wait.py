"""The one wait of the tests: poll a condition until it holds, or fail at the deadline.

`wait_until` returns the condition's (truthy) value as soon as it holds, and raises
`WaitTimeout` (an AssertionError, so pytest shows it as a failed check) when the
deadline passes: a test never goes on as if a wait had succeeded, and never hangs. A
condition that raises while the thing it reads is not there yet (a KeyError before the
first state) counts as not holding; at the deadline that error is shown.

A negative check ("nothing happened") never sleeps and then looks: it waits for a
positive sign that the event had its chance (a later event processed, a counter
advanced), then asserts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 20.0


class WaitTimeout(AssertionError):
    """A condition did not hold by its deadline."""


def wait_until(condition: Callable[[], T], timeout: float = DEFAULT_TIMEOUT_S, *,
               what: str = "", interval: float = 0.02) -> T:
    """*condition*'s value once it is truthy; `WaitTimeout` after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    error: Exception | None = None
    while True:
        try:
            value = condition()
        except (KeyError, IndexError, LookupError, AttributeError) as exc:
            value, error = None, exc  # not there yet
        if value:
            return value
        if time.monotonic() >= deadline:
            name = what or getattr(condition, "__name__", "condition")
            raise WaitTimeout(f"{name} did not hold within {timeout} s"
                              + (f" (last: {error!r})" if error else "")) from error
        time.sleep(interval)
