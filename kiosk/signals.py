"""Signals that stop a long-running command, handled without running anything in the handler.

A Python signal handler runs in the main thread between two bytecodes, possibly while
that thread holds a lock (the event queue's, the store's). A handler that takes such a
lock — ``queue.put``, ``Event.set`` — waits forever for itself. So the handler here does
nothing at all: the interpreter's C-level handler has already written the signal's number
to a wake-up socket (`signal.set_wakeup_fd`), and a thread of ours reads it and calls
``stop`` — from a thread that holds nothing, so ``stop`` may take any lock it likes.
"""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def stopped_by_signals(stop: Callable[[], None],
                       signals: Iterable[signal.Signals] = STOP_SIGNALS) -> Iterator[None]:
    """Inside, each of *signals* calls *stop* (on a thread of ours). Main thread only.

    On the way out the signals are ignored: what they ask is under way, and the
    interpreter would otherwise put back their default action (die) while it finishes.
    """
    wanted = {int(sig) for sig in signals}
    reader, writer = socket.socketpair()
    writer.setblocking(False)  # set_wakeup_fd's rule: the C handler must never block
    previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    for sig in wanted:
        signal.signal(sig, _ignore)
    threading.Thread(target=_watch, args=(reader, wanted, stop), name="signals",
                     daemon=True).start()
    try:
        yield
    finally:
        for sig in wanted:
            signal.signal(sig, signal.SIG_IGN)
        signal.set_wakeup_fd(previous_fd)
        writer.close()  # the watcher's recv ends


def _ignore(signum: int, frame: object) -> None:
    """The Python-level handler: deliberately empty (see the module docstring)."""


def _watch(reader: socket.socket, wanted: set[int], stop: Callable[[], None]) -> None:
    with reader:
        while chunk := reader.recv(64):  # each byte is a signal's number
            if wanted.intersection(chunk):
                stop()
