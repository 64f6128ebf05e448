"""What `kiosk doctor` finds out about an IPP printer (card-printer.md, Printer drivers).

Reachable; a card (ID-1) size among ``media-supported``; a document format the
station writes; accepting jobs and not stopped; ``printer-error-policy`` is
``abort-job`` (any other lets the server print a failed card again by itself);
the server keeps no job files (CUPS ``PreserveJobFiles No``); how changes are
learned (notifications, or polling where the server offers no subscriptions). Whether the
station's IPP user may resume the queue is not checked (it would have to try).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from urllib.parse import urlsplit

Finding = tuple[str, str, str]  # ("ok" | "warn" | "fail", check name, detail)
ID1_MM = (53.98, 85.6)
TOLERANCE_MM = 0.6
# Card drivers that print edge to edge name the card with its bleed: gutenprint's
# Magicard queues say custom_56.9x86.02mm (2.92 and 0.42 mm over ID-1).
BLEED_MM = 3.0
SIZE = re.compile(r"_(\d+(?:\.\d+)?)x(\d+(?:\.\d+)?)(mm|in)$")


def card_size(media: str) -> tuple[float, float] | None:
    """The size in mm (short side first) of a PWG self-describing media name."""
    match = SIZE.search(media)
    if not match:
        return None
    scale = 25.4 if match.group(3) == "in" else 1.0
    short, long = sorted((float(match.group(1)) * scale, float(match.group(2)) * scale))
    return short, long


def is_id1(media: str) -> bool:
    """A PWG self-describing media name of ID-1 size (either way round)."""
    size = card_size(media)
    return size is not None and all(
        abs(a - b) <= TOLERANCE_MM for a, b in zip(size, ID1_MM, strict=True))


def id1_bleed(media: str) -> tuple[float, float] | None:
    """How much larger than ID-1 an ID-1 size with bleed is (mm), else None."""
    size = card_size(media)
    if size is None:
        return None
    over = tuple(round(a - b, 2) for a, b in zip(size, ID1_MM, strict=True))
    return (over[0], over[1]) if all(-TOLERANCE_MM <= o <= BLEED_MM for o in over) else None


def ipp_findings(uri: str, media: str, timeout: float = 5.0, *,
                 manual_feed: bool = False) -> Iterator[Finding]:
    """What the doctor says of the queue at *uri*; *manual_feed*: the station feeds every
    card by hand (``[encoder] mode = "desk"``), so the queue must offer the manual slot."""
    try:
        import cups
    except ImportError:
        yield "fail", "ipp", "pycups is missing: pip install 'kiosk[ipp]'"
        return
    from kiosk.devices.printer.ipp import ERROR_POLICY, WRITABLE

    parts = urlsplit(uri)
    queue = parts.path.rstrip("/").rsplit("/", 1)[-1]
    host, port = parts.hostname or "localhost", parts.port or 631
    cups.setServer(host)
    cups.setPort(port)
    try:
        conn = cups.Connection(host=host, port=port)
        attributes = conn.getPrinterAttributes(queue)
    except (RuntimeError, cups.IPPError) as error:
        yield "fail", "ipp", f"{uri} not reachable: {error}"
        return
    yield "ok", "ipp", f"{uri}: {attributes.get('printer-make-and-model', '?')}"
    yield from _media(attributes, media)
    formats = [f for f in attributes.get("document-format-supported", []) if f in WRITABLE]
    yield (("ok", "ipp_formats", ", ".join(formats)) if formats else
           ("fail", "ipp_formats", f"none of {', '.join(WRITABLE)} supported"))
    yield _accepting(attributes)
    if manual_feed:
        yield _manual(attributes, queue)
    policy = attributes.get("printer-error-policy")
    if policy is None:
        yield "warn", "ipp_policy", "not reported (not CUPS?): check it never retries"
    elif policy == ERROR_POLICY:
        yield "ok", "ipp_policy", policy
    else:
        yield ("fail", "ipp_policy",
               f"{policy}: the server would print a failed card again by itself; set "
               f"'lpadmin -p {queue} -o printer-error-policy={ERROR_POLICY}'")
    yield _job_files(conn)
    yield _events(conn, uri, host, port, parts.scheme == "ipps")


def _events(conn, uri: str, host: str, port: int, encrypted: bool) -> Finding:
    """How the station learns job and printer changes from this server."""
    from kiosk.devices.printer.ippnotify import NotificationsUnavailable, Notifier

    try:
        notifier = Notifier(conn, uri, host, port, encrypted=encrypted)
    except NotificationsUnavailable as why:
        return ("warn", "ipp_events", f"polling every poll_s: {why} (a card's end is learned"
                " up to poll_s late; the next card waits that long)")
    try:
        notifier.wait(0)
        return "ok", "ipp_events", notifier.mode
    except NotificationsUnavailable as why:
        return "warn", "ipp_events", f"polling every poll_s: {why}"
    finally:
        notifier.close()


def _media(attributes: dict, media: str) -> Iterator[Finding]:
    supported = attributes.get("media-supported", [])
    supported = [supported] if isinstance(supported, str) else supported
    cards = [m for m in supported if m == media or is_id1(m)]
    bled = [(m, over) for m in supported if (over := id1_bleed(m)) is not None]
    if cards:
        yield "ok", "ipp_media", f"card size {cards[0]} (jobs ask for {media})"
    elif bled:
        name, (short, long) = bled[0]
        yield ("ok", "ipp_media", f"card size {name}: the ID-1 card with the driver's bleed"
               f" ({short:g} × {long:g} mm over {ID1_MM[0]:g} × {ID1_MM[1]:g} mm, printed edge"
               f" to edge; jobs ask for {media}, which the server fits to it)")
    else:
        sizes = ", ".join(f"{m} ({s[0]:g} × {s[1]:g} mm)" if (s := card_size(m)) else m
                          for m in supported) or "none"
        yield ("fail", "ipp_media", f"no ID-1 card size among {sizes}: ID-1 is"
               f" {ID1_MM[0]:g} × {ID1_MM[1]:g} mm (±{TOLERANCE_MM:g} mm, or up to"
               f" {BLEED_MM:g} mm larger with a driver's bleed)")


def _manual(attributes: dict, queue: str) -> Finding:
    sources = attributes.get("media-source-supported", [])
    sources = [sources] if isinstance(sources, str) else list(sources)
    if "manual" in sources:
        return "ok", "ipp_manual", "media-source manual (desk mode feeds each card by hand)"
    return ("fail", "ipp_manual", f"the queue offers no manual feed (media-source-supported:"
            f" {', '.join(sources) or 'none'}); desk mode prints every card from the manual"
            f" slot: install the printer's own driver for {queue}, which names its manual slot")


def _accepting(attributes: dict) -> Finding:
    import cups  # present: ipp_findings got this far

    stopped = attributes.get("printer-state") == cups.IPP_PRINTER_STOPPED
    accepting = attributes.get("printer-is-accepting-jobs", True)
    if accepting and not stopped:
        return "ok", "ipp_queue", "accepting jobs"
    return ("warn", "ipp_queue", f"{'stopped' if stopped else 'running'}, "
            f"{'accepting' if accepting else 'not accepting'} jobs: the station resumes it"
            " once its errors are gone (Resume-Printer, CUPS-Accept-Jobs)")


def _job_files(conn) -> Finding:
    """CUPS keeps job files PreserveJobFiles long (its default: a day)."""
    handle, path = tempfile.mkstemp(prefix="kiosk-cupsd-")
    os.close(handle)
    try:
        conn.getFile("/admin/conf/cupsd.conf", path)
        with open(path) as handle:
            text = handle.read()
    except Exception as error:  # not CUPS, or not allowed: say so, never guess
        return ("warn", "ipp_job_files", f"cannot read the server's settings ({error}); the"
                " station purges each job itself, check PreserveJobFiles No on the server")
    finally:
        os.unlink(path)
    values = re.findall(r"^\s*PreserveJobFiles\s+(\S+)", text, re.IGNORECASE | re.MULTILINE)
    value = values[-1] if values else "86400 (the CUPS default)"
    if value.lower() in ("no", "off", "false", "0"):
        return "ok", "ipp_job_files", "PreserveJobFiles No"
    return ("fail", "ipp_job_files", f"PreserveJobFiles {value}: the server keeps each card's"
            " photo and name; set 'PreserveJobFiles No' in cupsd.conf")
