"""The one logging set-up of every ``kiosk`` command: journald-friendly, NIK-safe.

Under systemd, stderr is a stream into journald (``JOURNAL_STREAM`` names it):
journald stamps each line itself and reads a leading ``<N>`` as its syslog
priority, so lines there are ``<N>logger: message`` with no timestamp. On a
terminal they are ``time LEVEL logger: message``. Either way a filter on the
handler masks every 16-digit NIK to its last four digits before anything is
written, whatever module logged it.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Mapping
from typing import TextIO

HUMAN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JOURNAL_FORMAT = "%(name)s: %(message)s"

_NIK = re.compile(r"(?<![0-9])[0-9]{12}([0-9]{4})(?![0-9])")


def mask_niks(text: str) -> str:
    """Every run of exactly 16 digits becomes ``************1234``."""
    return _NIK.sub(lambda match: "*" * 12 + match.group(1), text)


def syslog_priority(levelno: int) -> int:
    """The syslog priority (0 emerg … 7 debug) of a logging level."""
    for threshold, priority in ((logging.CRITICAL, 2), (logging.ERROR, 3),
                                (logging.WARNING, 4), (logging.INFO, 6)):
        if levelno >= threshold:
            return priority
    return 7


class NikFilter(logging.Filter):
    """Masks NIKs in a record's message, its arguments and its traceback.

    Attach it to a handler (``handler.addFilter(NikFilter())``): handler filters
    see the records of every logger, logger filters only their own. The message
    is formatted once here, so arguments of any type are covered.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a bad format string must not leak its arguments
            message = f"{record.msg} (unformattable arguments: {record.args!r})"
        record.msg, record.args = mask_niks(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_niks(record.exc_text)
        return True


class JournalFormatter(logging.Formatter):
    """``<N>logger: message``, with the ``<N>`` on every line (tracebacks included).

    journald splits a stream on newlines; a continuation line without its own
    prefix would be logged at the default priority.
    """

    def __init__(self) -> None:
        super().__init__(JOURNAL_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


def stream_is_journal(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """True if *stream* is the journald stream systemd announced in ``JOURNAL_STREAM``.

    The variable is inherited by children whose stderr may go elsewhere, so the
    stream's device and inode must match it (systemd.exec(5)).
    """
    env = os.environ if environ is None else environ
    device, _, inode = env.get("JOURNAL_STREAM", "").partition(":")
    try:
        status = os.fstat(stream.fileno())
        return (status.st_dev, status.st_ino) == (int(device), int(inode))
    except (ValueError, OSError, AttributeError):
        return False


def setup_logging(verbose: bool = False, *, stream: TextIO | None = None,
                  environ: Mapping[str, str] | None = None) -> logging.Handler:
    """Log to *stream* (stderr) at INFO, or DEBUG when *verbose*; replaces earlier set-ups."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    journal = stream_is_journal(stream, environ)
    handler.setFormatter(JournalFormatter() if journal else logging.Formatter(HUMAN_FORMAT))
    handler.addFilter(NikFilter())
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        handlers=[handler], force=True)
    logging.captureWarnings(True)  # gpiozero's pin-factory fallbacks, for one
    return handler
