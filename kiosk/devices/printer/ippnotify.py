"""IPP notifications for the IPP driver: learn job and printer changes as they happen.

card-printer.md, Pacing: Create-Job-Subscriptions with ``notify-pull-method`` ippget,
then Get-Notifications with ``notify-wait``. pycups creates and cancels the
subscription (createSubscription, cancelSubscription), but its getNotifications
cannot send ``notify-wait``, so Get-Notifications is a raw IPP request through
libcups (the library pycups wraps), reached with ctypes on a connection of its own
(a waiting request holds its connection).

A server that honours ``notify-wait`` (IPP Everywhere printers, PAPPL) holds the
request until an event: the driver learns at once. CUPS 2.4 answers at once with
its ``notify-get-interval`` (its scheduler never waits), so against CUPS the
notifier asks again every `PULL_S` while it is waited on: one small request that
carries every change, instead of reading the job and the printer at each poll.
`Notifier.mode` says which, for `kiosk doctor`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import time
from typing import Any

log = logging.getLogger(__name__)

PULL_S = 0.02  # between two Get-Notifications when the server does not wait
HELD_S = 0.5  # an answer without events this late means the server held the request
LEASE_S = 3600  # a station killed leaves its subscription behind this long at most
EVENTS = ["job-state-changed", "job-completed", "printer-state-changed", "printer-stopped"]
GET_NOTIFICATIONS = 0x001C
TAG_OPERATION, TAG_EVENT, TAG_INTEGER, TAG_URI, TAG_NAME = 0x01, 0x07, 0x21, 0x45, 0x42
ENCRYPT_IF_REQUESTED, ENCRYPT_REQUIRED = 0, 3

_V = ctypes.c_void_p


@functools.cache
def _libcups() -> ctypes.CDLL:
    lib = ctypes.CDLL(ctypes.util.find_library("cups") or "libcups.so.2")
    signatures: dict[str, tuple[Any, list]] = {
        "httpConnect2": (_V, [ctypes.c_char_p, ctypes.c_int, _V, ctypes.c_int, ctypes.c_int,
                              ctypes.c_int, ctypes.c_int, _V]),
        "httpClose": (None, [_V]),
        "ippNewRequest": (_V, [ctypes.c_int]),
        "ippAddString": (_V, [_V, ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p,
                              ctypes.c_char_p]),
        "ippAddInteger": (_V, [_V, ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]),
        "ippAddBoolean": (_V, [_V, ctypes.c_int, ctypes.c_char_p, ctypes.c_char]),
        "cupsDoRequest": (_V, [_V, _V, ctypes.c_char_p]),
        "ippGetStatusCode": (ctypes.c_int, [_V]),
        "ippFirstAttribute": (_V, [_V]),
        "ippNextAttribute": (_V, [_V]),
        "ippGetName": (ctypes.c_char_p, [_V]),
        "ippGetGroupTag": (ctypes.c_int, [_V]),
        "ippGetInteger": (ctypes.c_int, [_V, ctypes.c_int]),
        "ippDelete": (None, [_V]),
        "cupsLastErrorString": (ctypes.c_char_p, []),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes
    return lib


class NotificationsUnavailable(Exception):
    """The server offers no subscriptions (or refused ours): poll instead."""


class Notifier:
    """One ippget subscription to a printer's job and printer events."""

    def __init__(self, conn: Any, printer_uri: str, host: str, port: int, *,
                 encrypted: bool = False, user: str = "kiosk", timeout_s: float = 5.0) -> None:
        import cups  # the `ipp` extra, as for the driver that builds this

        self.conn, self.uri, self.user = conn, printer_uri, user
        try:
            self.subscription = conn.createSubscription(printer_uri, events=EVENTS,
                                                        lease_duration=LEASE_S)
        except (cups.IPPError, RuntimeError) as error:
            raise NotificationsUnavailable(f"Create-Job-Subscriptions refused: {error}") from error
        self.sequence = 1  # the first event not seen yet
        self.holds: bool | None = None  # whether the server holds a notify-wait request
        lib = _libcups()
        self._http = lib.httpConnect2(host.encode(), port, None, 0,
                                      ENCRYPT_REQUIRED if encrypted else ENCRYPT_IF_REQUESTED,
                                      1, int(timeout_s * 1000), None)
        if not self._http:
            self.close()
            raise NotificationsUnavailable(f"cannot open a connection to {host}:{port}")

    @property
    def mode(self) -> str:
        if self.holds is None:
            return "notifications (Get-Notifications, notify-wait)"
        if self.holds:
            return "notifications (Get-Notifications, held by the server: notify-wait)"
        return (f"notifications (Get-Notifications; the server answers notify-wait at once,"
                f" asked again every {PULL_S * 1000:g} ms while a job is out)")

    def wait(self, timeout: float) -> bool:
        """Until an event arrives (True) or *timeout* passes (False)."""
        deadline = time.monotonic() + timeout
        while True:
            asked = time.monotonic()
            if self._pull():
                return True
            took = time.monotonic() - asked
            if self.holds is None or took >= HELD_S:
                self.holds = took >= HELD_S
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if not self.holds:
                time.sleep(min(PULL_S, left))

    def _pull(self) -> bool:
        """One Get-Notifications; whether it carried an event not seen before."""
        lib = _libcups()
        request = lib.ippNewRequest(GET_NOTIFICATIONS)
        lib.ippAddString(request, TAG_OPERATION, TAG_URI, b"printer-uri", None, self.uri.encode())
        lib.ippAddString(request, TAG_OPERATION, TAG_NAME, b"requesting-user-name", None,
                         self.user.encode())
        lib.ippAddInteger(request, TAG_OPERATION, TAG_INTEGER, b"notify-subscription-ids",
                          self.subscription)
        lib.ippAddInteger(request, TAG_OPERATION, TAG_INTEGER, b"notify-sequence-numbers",
                          self.sequence)
        lib.ippAddBoolean(request, TAG_OPERATION, b"notify-wait", b"\x01")
        response = lib.cupsDoRequest(self._http, request, b"/")  # frees the request
        if not response:
            raise NotificationsUnavailable(
                f"Get-Notifications: {(lib.cupsLastErrorString() or b'no answer').decode()}")
        try:
            status = lib.ippGetStatusCode(response)
            if status >= 0x0400:
                raise NotificationsUnavailable(f"Get-Notifications refused (status {status:#x})")
            newest = 0
            attribute = lib.ippFirstAttribute(response)
            while attribute:
                if (lib.ippGetGroupTag(attribute) == TAG_EVENT
                        and lib.ippGetName(attribute) == b"notify-sequence-number"):
                    newest = max(newest, lib.ippGetInteger(attribute, 0))
                attribute = lib.ippNextAttribute(response)
        finally:
            lib.ippDelete(response)
        if newest >= self.sequence:
            self.sequence = newest + 1
            return True
        return False

    def close(self) -> None:
        http, self._http = getattr(self, "_http", None), None
        if http:
            _libcups().httpClose(http)
        try:
            self.conn.cancelSubscription(self.subscription)
        except Exception as error:  # gone with the server: nothing to leave behind
            log.debug("Cancel-Subscription: %s", error)
