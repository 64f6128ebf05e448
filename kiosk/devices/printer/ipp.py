"""The IPP card-printer driver: a CUPS queue or an IPP Everywhere printer behind CUPS.

It follows card-printer.md, "Printer drivers": the rendered card goes as one
300-dpi page in the first format the printer takes, named by its record_id;
the job is followed to its end and its states become the station's facts
(`processing`: a blank may be taken; `completed`: printed; aborted or canceled
after `processing`: printed if ``job-impressions-completed`` says so, else
nobody knows). The queue's error policy is set to ``abort-job`` (the station,
not the server, decides reprints), a stopped queue is resumed once its errors
are gone, and every job's files are purged from the server when it ends.

A stopped queue is never left stopped (card-printer.md, "A stopped queue is never
left stopped"): CUPS keeps a stopped queue's last reasons until a job runs again,
so they are history, not the printer now. The queue is resumed on evidence that
the fault is gone (`fault_gone`: a refill, the tray seeing cards again, a person),
or, for reasons that cannot harm a blank (`HARMLESS`), after ``poll_s × 10`` by
itself; a jam or a reason not known here waits for a person or the district.

The card's document is streamed from memory (Create-Job, then Send-Document), never
written to a file. The client is pycups (libcups): Create-Job, Send-Document,
Get-Job-Attributes, Get-Printer-Attributes, CUPS-Add-Modify-Printer, Resume-Printer,
CUPS-Accept-Jobs and Cancel-Job with purge-job, all synchronous. libcups keeps the
server, port and user per thread: set again before each job.

Manual feed (chip.md, desk mode): after `use_manual_feed` every job asks for
``media-source`` = ``manual`` (the queue must list it in ``media-source-supported``, which
``kiosk doctor`` checks), so the printer takes the card the operator feeds by hand.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from kiosk.card.render import CardImages
from kiosk.devices.printer import pwgraster
from kiosk.devices.printer.base import CardError, CardHooks, PrinterError
from kiosk.devices.printer.ippjobs import JobStore
from kiosk.devices.printer.ippnotify import NotificationsUnavailable, Notifier
from kiosk.station.core.events import BLANK_UNKNOWN, BLANK_UNTOUCHED

try:
    import cups
except ImportError:  # pragma: no cover - the `ipp` extra is not installed
    cups = None

log = logging.getLogger(__name__)

FORMATS = ("image/pwg-raster", "image/png", "application/pdf")  # the order of preference
WRITABLE = FORMATS  # what prepare() writes
DPI = 300
if cups is not None:
    PENDING, HELD, PROCESSING = cups.IPP_JOB_PENDING, cups.IPP_JOB_HELD, cups.IPP_JOB_PROCESSING
    STOPPED, CANCELED, ABORTED = cups.IPP_JOB_STOPPED, cups.IPP_JOB_CANCELED, cups.IPP_JOB_ABORTED
    COMPLETED, PRINTER_STOPPED = cups.IPP_JOB_COMPLETED, cups.IPP_PRINTER_STOPPED
    PRINTER_PROCESSING = cups.IPP_PRINTER_PROCESSING
    _STATE_NAMES = {PENDING: "pending", HELD: "pending-held", PROCESSING: "processing",
                    STOPPED: "processing-stopped", CANCELED: "canceled", ABORTED: "aborted",
                    COMPLETED: "completed"}
ERROR_POLICY = "abort-job"
HTTP_CONTINUE = 100  # libcups' HTTP_STATUS_CONTINUE: the request is ready for the document
# Reasons that cannot harm a blank: a stopped queue is retried after poll_s × 10 by itself.
HARMLESS = frozenset({"media-empty-error", "offline-report", "connecting-to-device",
                      "cover-open-error"})
RETRY_POLLS = 10
# The next card goes to the server this long after this one started: not while the
# server starts this card's backend (both would compete for the CPU, and the gap between
# two cards is the server's start of the next backend), long before any card ends.
AHEAD_AFTER_S = 0.25
# A job its backend put back (exit 4) with only these reasons never reached a blank: the
# printer could not pick one (no card, not there). It is purged and sent again.
NO_BLANK_TAKEN = frozenset({"media-empty-error", "offline-report", "connecting-to-device"})
# What counts as evidence that a stopped queue's fault is gone (fault_gone's *kind*), and
# which reasons each may clear: a refill or cards seen in the tray fix an empty feeder; a
# person (the OK button, the district's resume) anything.
EVIDENCE = {"refill": frozenset({"media-empty-error", "media-needed-error"}),
            "tray": frozenset({"media-empty-error", "media-needed-error"}),
            "operator": None, "resume": None}
PRINTER_ATTRIBUTES = ["printer-state", "printer-state-reasons", "printer-is-accepting-jobs",
                      "document-format-supported", "media-supported", "printer-error-policy",
                      "marker-names", "marker-levels", "marker-types", "marker-low-levels",
                      "printer-make-and-model"]
JOB_ATTRIBUTES = ["job-state", "job-state-reasons", "job-impressions-completed",
                  "time-at-processing"]
INSTALL_HINT = "pycups is missing: pip install 'kiosk[ipp]' (needs libcups2-dev to build)"


def error_reasons(reasons: list[str] | str | None) -> tuple[str, ...]:
    """The reasons that stop printing: ``*-error`` and ``offline-report``."""
    if isinstance(reasons, str):
        reasons = [reasons]
    return tuple(r for r in reasons or () if r.endswith("-error") or r == "offline-report")


class JobView(NamedTuple):
    """A job as the server shows it, with its printer's error reasons."""

    state: int
    impressions: int
    reasons: tuple[str, ...]
    stopped: bool  # the printer (queue) is stopped
    began: bool  # the job has been processing (a blank may have been taken)


class IppPrinter:
    """The card printer at *uri* (``ipp://HOST:PORT/printers/QUEUE``)."""

    def __init__(self, uri: str, *, media: str = "iso_id-1_53.98x85.6mm",
                 username: str = "kiosk", poll_s: float = 1.0,
                 job_timeout_s: float = 120.0) -> None:
        if cups is None:
            raise PrinterError(("other-error",), INSTALL_HINT)
        parts = urlsplit(uri)
        if parts.scheme not in ("ipp", "ipps") or not parts.hostname:
            raise ValueError(f"not an ipp:// or ipps:// URI: {uri}")
        self.uri = uri
        self.host = parts.hostname
        self.port = parts.port or 631
        self.queue = parts.path.rstrip("/").rsplit("/", 1)[-1]
        self.encrypted = parts.scheme == "ipps"
        self.media = media
        self.username = username
        self.poll_s = poll_s
        self.job_timeout_s = job_timeout_s
        self.format = "image/png"
        self.markers: dict[str, int] = {}
        self.supplies: list[dict[str, Any]] = []  # the state's `supplies` (mqtt.md)
        self._conn: Any = None
        self._notifier: Notifier | None = None
        self._last_job: int | None = None
        self._stopped_since: float | None = None  # when the queue was first seen stopped
        self._evidence: set[str] = set()  # kinds of evidence the fault is gone, not yet used
        self._put_back: tuple[str, ...] = ()  # the reasons a backend stopped the queue with
        self.jobs = JobStore(None)  # the station hands a durable one (`keep_jobs`)
        # One job ahead (Pacing): the next card's record_id and job-id, sent to the server
        # while the card before it printed (job-id None: allowed, but not sent).
        self._ahead: tuple[str, int | None] | None = None
        self._previous_failed = False
        self.media_source: str | None = None  # "manual" in desk mode

    def use_manual_feed(self, wait_s: float) -> None:
        """Every job takes its card from the manual slot (``media-source`` = ``manual``);
        how long the printer waits for it is the printer's, within ``job_timeout_s``."""
        self.media_source = "manual"

    def job_options(self) -> dict[str, str]:
        """The job template attributes each Create-Job carries."""
        options = {"media": self.media}
        if self.media_source is not None:
            options["media-source"] = self.media_source
        return options

    def keep_jobs(self, path: str) -> None:
        """Keep the job-ids of the jobs sent to the server durably in *path* (a crash
        leaves none the station does not know of)."""
        self.jobs = JobStore(path)

    @classmethod
    def from_settings(cls, settings: Any) -> IppPrinter:
        return cls(settings.uri, media=settings.media, username=settings.username,
                   poll_s=settings.poll_s, job_timeout_s=settings.job_timeout_s)

    # -- the link ---------------------------------------------------------------------

    def connect(self) -> str:
        """Reach the server, choose the document format, demand ``abort-job``."""
        self.close()
        self._use_server()
        try:
            self._conn = cups.Connection(host=self.host, port=self.port)
        except RuntimeError as exc:
            raise PrinterError(("connecting-to-device",), f"cannot reach {self.uri}: {exc}",
                               link_lost=True) from exc
        attributes = self._printer_attributes()
        supported = attributes.get("document-format-supported", [])
        usable = [f for f in FORMATS if f in supported]
        if not usable:
            raise PrinterError(("document-format-error",),
                               f"{self.uri} takes none of {', '.join(FORMATS)}")
        self.format = usable[0]
        self._demand_abort_job(attributes.get("printer-error-policy"))
        self._take_back_waiting()
        self._subscribe()
        return (f"{attributes.get('printer-make-and-model', 'IPP printer')} at {self.uri};"
                f" changes learned by {self.events}")

    def _take_back_waiting(self) -> None:
        """Cancel and purge every job this station left at the server that has not
        started (a crash, a lost link): first, so none starts while another is followed.
        Its card is sent again (`card_fate` says not-picked)."""
        self._ahead = None
        self._take_back_unknown()
        for record_id, entry in self.jobs.items():
            job = entry.get("job")
            if entry.get("end") or not isinstance(job, int):
                continue
            view = self._job_state_or_gone(job)
            if view.state in (PENDING, HELD) and not view.began:
                self._purge(job)
                if not self._job_state_or_gone(job).began:
                    self.jobs.ended(record_id, "taken-back", 0)
                    log.info("%s: job %d of %s had not started: canceled and purged",
                             self.uri, job, record_id)

    def _take_back_unknown(self) -> None:
        """Jobs of this station's user at this queue that its store does not know (killed
        after Create-Job, before the job-id was kept): no document went with them; they
        are canceled and purged rather than left to time out at the server."""
        known = {entry.get("job") for _, entry in self.jobs.items()}
        try:
            jobs = self._call("Get-Jobs", "getJobs", which_jobs="not-completed", my_jobs=True,
                              requested_attributes=["job-id", "job-printer-uri"])
        except PrinterError as error:
            log.info("%s: cannot list the station's jobs: %s", self.uri, error.detail)
            return
        for job, attributes in jobs.items():
            if job in known or not str(attributes.get("job-printer-uri", "")).endswith(
                    f"/printers/{self.queue}"):
                continue
            view = self._job_state_or_gone(job)
            if view.state in (PENDING, HELD) and not view.began:
                log.info("%s: job %d of this station had no job-id kept: canceled and purged",
                         self.uri, job)
                self._purge(job)

    def _subscribe(self) -> None:
        try:
            self._notifier = Notifier(self._conn, self.uri, self.host, self.port,
                                      encrypted=self.encrypted, user=self.username)
        except NotificationsUnavailable as why:
            log.warning("%s: %s; polling every %g s instead", self.uri, why, self.poll_s)
            self._notifier = None

    @property
    def events(self) -> str:
        """How job and printer changes are learned: notifications, or polling."""
        if self._notifier is not None:
            return self._notifier.mode
        return f"polling every {self.poll_s:g} s (the server offers no subscriptions)"

    def _wait_for_change(self, timeout: float) -> None:
        """Until the server says something changed (notifications), or poll_s (polling)."""
        if self._notifier is None:
            time.sleep(self.poll_s)
            return
        try:
            self._notifier.wait(timeout)
        except NotificationsUnavailable as why:
            log.warning("%s: %s; polling every %g s instead", self.uri, why, self.poll_s)
            self._notifier.close()
            self._notifier = None

    def close(self) -> None:
        if self._notifier is not None:
            self._notifier.close()
            self._notifier = None
        self._conn = None

    def _use_server(self) -> None:
        """libcups keeps server, port and user per thread; Print-Job goes by them."""
        cups.setServer(self.host)
        cups.setPort(self.port)
        cups.setUser(self.username)
        if self.encrypted:
            cups.setEncryption(cups.HTTP_ENCRYPT_REQUIRED)

    def _call(self, what: str, method: str, *args: Any, **kwargs: Any) -> Any:
        if self._conn is None:
            raise PrinterError(("connecting-to-device",), "not connected", link_lost=True)
        try:
            return getattr(self._conn, method)(*args, **kwargs)
        except cups.IPPError as exc:
            status, message = exc.args if len(exc.args) == 2 else (0, str(exc))
            if status in (cups.HTTP_ERROR, cups.IPP_SERVICE_UNAVAILABLE) or status < 0x400:
                self.close()
                raise PrinterError(("timed-out-error",), f"{what}: no answer ({message})",
                                   link_lost=True) from exc
            raise PrinterError(("other-error",), f"{what}: {message}") from exc
        except RuntimeError as exc:
            self.close()
            raise PrinterError(("connecting-to-device",), f"{what}: {exc}",
                               link_lost=True) from exc

    def _printer_attributes(self) -> dict[str, Any]:
        attributes = self._call("Get-Printer-Attributes", "getPrinterAttributes", self.queue,
                                requested_attributes=PRINTER_ATTRIBUTES)
        supplies = supplies_of(attributes)
        markers = {supply["name"]: supply["level"] for supply in supplies}
        if markers != self.markers:
            log.info("%s: marker levels %s", self.uri,
                     ", ".join(f"{name} {level}%" for name, level in markers.items()) or "none")
        self.markers, self.supplies = markers, supplies
        return attributes

    def _demand_abort_job(self, policy: str | None) -> None:
        if policy == ERROR_POLICY:
            return
        try:
            self._call("CUPS-Add-Modify-Printer", "setPrinterErrorPolicy", self.queue,
                       ERROR_POLICY)
            log.info("%s: error policy %s set to %s", self.uri, policy, ERROR_POLICY)
        except PrinterError as error:
            if error.link_lost:
                raise
            log.error("%s: error policy is %s and cannot be set to %s (%s): the server may"
                      " reprint failed cards by itself", self.uri, policy, ERROR_POLICY,
                      error.detail)

    # -- the printer's state ------------------------------------------------------------

    def check(self) -> tuple[str, ...]:
        """Reasons the printer cannot take a card now; () when it can.

        An idle queue's error reasons are what the last job's backend left behind (CUPS
        keeps them until the next job): they say nothing of the printer now, and the
        next job's backend reports what still stands. A stopped queue is resumed when
        its reasons are gone, on evidence that they are (`fault_gone`), or after
        ``poll_s × 10`` when they cannot harm a blank; else its reasons stand.
        """
        attributes = self._printer_attributes()
        errors = error_reasons(attributes.get("printer-state-reasons"))
        if attributes.get("printer-state") != PRINTER_STOPPED:
            self._stopped_since = None
            self._evidence.clear()
            self._put_back = ()
            if not attributes.get("printer-is-accepting-jobs", True):
                self._call("CUPS-Accept-Jobs", "acceptJobs", self.queue)
            return errors if attributes.get("printer-state") == PRINTER_PROCESSING else ()
        errors = errors or self._put_back  # CUPS drops some (offline-report) at the stop
        return () if self._resume_if_allowed(errors) else errors

    def _resume_if_allowed(self, errors: tuple[str, ...]) -> bool:
        """Resume the stopped queue if the rule allows it now; whether it did."""
        now = time.monotonic()
        if self._stopped_since is None:
            self._stopped_since = now
        why = self._resume_because(errors, now - self._stopped_since)
        if why is not None:
            self._resume(why)
        return why is not None

    def _resume_because(self, errors: tuple[str, ...], stopped_s: float) -> str | None:
        """Why the stopped queue may be resumed now, or None (its reasons stand)."""
        if not errors:
            return "no error reasons left"
        for kind in sorted(self._evidence):
            clears = EVIDENCE[kind]
            if clears is None or set(errors) <= clears:
                return f"evidence the fault is gone: {kind}"
        if set(errors) <= HARMLESS and stopped_s >= self.poll_s * RETRY_POLLS:
            return (f"{', '.join(errors)} cannot harm a blank: retried after"
                    f" {self.poll_s * RETRY_POLLS:g} s")
        return None

    def fault_gone(self, kind: str) -> None:
        """Evidence that the printer's fault is gone (*kind*: a key of EVIDENCE): the next
        `check` resumes a stopped queue whose reasons this evidence may clear."""
        if kind not in EVIDENCE:
            raise ValueError(f"unknown evidence {kind!r}; known: {', '.join(EVIDENCE)}")
        self._evidence.add(kind)

    def _resume(self, why: str = "no error reasons left") -> None:
        log.info("%s: resuming the stopped queue (%s)", self.uri, why)
        self._call("Resume-Printer", "enablePrinter", self.queue)
        self._call("CUPS-Accept-Jobs", "acceptJobs", self.queue)
        self._stopped_since = None
        self._evidence.clear()
        self._put_back = ()

    def counters(self) -> dict[str, int] | None:
        """None: an IPP printer tells a card's fate through its job (`card_fate`)."""
        return None

    def card_fate(self, record_id: str, marks: dict) -> tuple[str | None, str]:
        """What became of the card of *record_id* found in the printer at a restart, from
        its job (the job-id kept at its pick): printed, not-picked, or None (a person).

        A job still pending is canceled before it starts (the station sends the card
        again); one still printing is followed to its end. The job is purged.
        """
        kept = self.jobs.get(record_id) or {}
        job = marks.get("job-id", kept.get("job"))
        if not isinstance(job, int) and self.jobs.never_sent(record_id):
            return "not-picked", ("no document of it went to the print server (no job-id was"
                                  " kept, and one is kept before any document goes)")
        if not isinstance(job, int):
            return None, f"no print job of {record_id} was known when the station stopped"
        if kept.get("job") == job and kept.get("end") == "taken-back":
            return "not-picked", (f"decided by the print server: job {job} had not started;"
                                  " canceled and purged at the restart")
        if kept.get("job") == job and kept.get("end") == "completed":
            self._purge(job)
            return "printed", (f"card printed: decided by the print server (job {job} "
                               "completed, kept by the station before it stopped)")
        state, impressions, _, _, _ = self._job_state_or_gone(job)
        if (state, impressions) == (CANCELED, 0):
            return None, f"job {job} is gone from the print server"
        if state in (PENDING, HELD):
            self._purge(job)
            state, impressions, _, _, _ = self._job_state_or_gone(job)
            if state in (CANCELED, ABORTED) and impressions == 0:
                return "not-picked", f"decided by the print server: job {job} never started"
        deadline = time.monotonic() + self.job_timeout_s
        while state in (PROCESSING, STOPPED) and time.monotonic() < deadline:
            time.sleep(self.poll_s)
            state, impressions, _, _, _ = self._job_state(job)
        self._purge(job)
        if state == COMPLETED or (state in (ABORTED, CANCELED) and impressions >= 1):
            return "printed", (f"card printed: decided by the print server (job {job} "
                               f"{_STATE_NAMES.get(state, state)}, job-impressions-completed "
                               f"{impressions})")
        return None, f"job {job} {_STATE_NAMES.get(state, state)}, nothing printed it says"

    def _job_state_or_gone(self, job: int) -> JobView:
        try:
            return self._job_state(job)
        except PrinterError as error:
            if error.link_lost:
                raise
            return JobView(CANCELED, 0, (), False, False)  # purged: it no longer exists

    # -- one card ---------------------------------------------------------------------

    def prepare(self, card: CardImages) -> tuple[str, bytes]:
        """The card as one 300-dpi landscape page in this printer's format."""
        picture = card.preview()
        out = io.BytesIO()
        if self.format == "image/pwg-raster":
            return self.format, pwgraster.encode(picture, self.media, DPI)
        if self.format == "application/pdf":
            picture.save(out, "PDF", resolution=DPI)
        else:
            picture.save(out, "PNG", dpi=(DPI, DPI))
        return self.format, out.getvalue()

    def print_card(self, hooks: CardHooks) -> str | None:
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == hooks.record_id and ahead[1] is not None:
            job = ahead[1]  # sent while the card before it printed
            if self._previous_failed:
                self._withdraw(job)
        else:
            if ahead is not None and ahead[1] is not None:
                self._withdraw(ahead[1], quiet=True)  # never the case: the worker runs it
            fmt, data = hooks.document()
            if not hooks.may_pick():
                raise CardError(PrinterError((), "pick withdrawn by the station"))
            job = self._submit(hooks.record_id, fmt, data)
        self._last_job = job
        try:
            outcome = self._follow(job, hooks)
        except CardError:
            self._previous_failed = True
            self._purge(job)
            raise
        self._previous_failed = False
        return outcome

    def _withdraw(self, job: int, *, quiet: bool = False) -> None:
        """Take back a job sent ahead whose card before it failed, if it has not started
        (CardError, no blank taken); one that started is followed as any card."""
        try:
            view = self._job_state_or_gone(job)
            if view.began or view.state not in (PENDING, HELD):
                return
            self._purge(job)
            if self._job_state_or_gone(job).began or quiet:
                return
        except PrinterError as error:  # the server cannot say: the card may yet print
            raise CardError(PrinterError(error.reasons, f"job {job} sent ahead: {error.detail}",
                                         link_lost=error.link_lost),
                            blank=BLANK_UNKNOWN) from error
        raise CardError(PrinterError((), f"job {job} taken back from the print server before"
                                         " it started, as the card before it failed"),
                        blank=BLANK_UNTOUCHED)

    def _send_ahead(self, hooks: CardHooks, asked: set[str]) -> None:
        """While this card prints, send the next one to wait at the server behind it, so
        the server starts it the moment the printer is free (at most one job ahead)."""
        offer = getattr(hooks, "ahead", None)
        upcoming = offer() if offer is not None and self._ahead is None else None
        if upcoming is None or upcoming.record_id in asked:
            return
        asked.add(upcoming.record_id)
        try:
            fmt, data = upcoming.document()
        except Exception as error:  # its own turn reports it
            log.info("%s not sent ahead: %s", upcoming.record_id, error)
            return
        if not upcoming.may_pick():
            return
        try:
            self._ahead = (upcoming.record_id, self._submit(upcoming.record_id, fmt, data))
        except CardError as error:
            log.warning("%s not sent ahead (%s): sent in its turn", upcoming.record_id,
                        error.detail)
            self._ahead = (upcoming.record_id, None)

    def _submit(self, record_id: str, fmt: str, data: bytes) -> int:
        """Create-Job, its job-id kept durably, then Send-Document from memory."""
        try:
            self._use_server()
            job = self._call("Create-Job", "createJob", self.queue, record_id,
                             self.job_options())
            try:
                self.jobs.put(record_id, job)  # durable before the document goes
                self._send_document(job, fmt, data)
            except OSError as error:
                self._purge(job)
                raise PrinterError(("other-error",),
                                   f"cannot keep job {job}'s id ({error}): not sent") from error
            except PrinterError:
                self._purge(job)
                raise
            return job
        except PrinterError as error:
            raise CardError(error) from error

    def _send_document(self, job: int, fmt: str, data: bytes) -> None:
        status = self._call("Send-Document", "startDocument", self.queue, job, "card", fmt, 1)
        if status == HTTP_CONTINUE:
            status = self._call("Send-Document", "writeRequestData", data, len(data))
        if status == HTTP_CONTINUE:
            self._call("Send-Document", "finishDocument", self.queue)
        else:
            raise PrinterError(("other-error",), f"Send-Document of job {job}: HTTP {status}")

    def _follow(self, job: int, hooks: CardHooks) -> str | None:
        """Read the job until it ends; the facts it gives, or CardError.

        The pick is reported once the server says a blank was used (the job completed, or
        counted an impression): until then the core keeps the card ``picking``, which a
        crash leaves uncertain as it must, and a job put back by a printer that could not
        reach a blank is no pick at all (`_put_back`).
        """
        deadline = time.monotonic() + self.job_timeout_s
        started = False  # seen `processing`: a blank may have been taken
        shown: tuple[str, ...] = ()
        asked: set[str] = set()  # cards offered to go ahead of this one's end
        ahead_at: float | None = None  # when the next card may go ahead (AHEAD_AFTER_S)
        while True:
            try:
                state, impressions, reasons, stopped, began = self._job_state(job)
            except PrinterError as error:
                if time.monotonic() > deadline or not started:
                    raise CardError(error, blank=BLANK_UNKNOWN) from error
                time.sleep(self.poll_s)
                continue
            started = started or began
            if started and state in (PROCESSING, STOPPED):
                ahead_at = ahead_at or time.monotonic() + AHEAD_AFTER_S
                if time.monotonic() >= ahead_at:
                    self._send_ahead(hooks, asked)
            if state == COMPLETED or (state in (ABORTED, CANCELED) and impressions >= 1):
                self.jobs.ended(hooks.record_id, _STATE_NAMES[state], impressions)
                hooks.picked({"job-id": job})
                return (None if state == COMPLETED else
                        f"card printed: job {job} {_STATE_NAMES[state]} with "
                        f"job-impressions-completed {impressions}")
            if state in (ABORTED, CANCELED):
                self._ended_badly(job, state, started, reasons)
            if started and state in (PENDING, HELD):
                raise self._put_back_card(job, reasons)
            if time.monotonic() > deadline:
                raise CardError(PrinterError(("timed-out-error",),
                                             f"job {job} not ended within "
                                             f"{self.job_timeout_s:g} s", link_lost=True),
                                blank=BLANK_UNKNOWN if started else BLANK_UNTOUCHED)
            if started and reasons != shown:
                shown = reasons
                hooks.trouble(reasons)
            if stopped and not started:
                self._resume_if_allowed(reasons)
            elif stopped and not reasons:
                self._resume()
            # A stopped queue is looked at every poll (its retry is timed); else the next
            # event, with a read every ten polls in case one is lost.
            wait = self.poll_s if stopped else self.poll_s * RETRY_POLLS
            if ahead_at is not None and not asked:
                wait = max(0.0, min(wait, ahead_at - time.monotonic()))
            self._wait_for_change(wait)

    def _put_back_card(self, job: int, reasons: tuple[str, ...]) -> CardError:
        """The server put a started job back (its backend stopped the queue, exit 4): it
        would print it again by itself, so it is purged and the station decides. A
        printer that could not reach a blank (`NO_BLANK_TAKEN`) took none; any other
        reason after `processing` leaves the card uncertain."""
        self._put_back = reasons
        detail = (f"job {job} was put back by the printer "
                  f"({', '.join(reasons) or 'no reason given'})")
        if reasons and set(reasons) <= NO_BLANK_TAKEN:
            return CardError(PrinterError(reasons, detail + ": no blank was taken"),
                             blank=BLANK_UNTOUCHED)
        return CardError(PrinterError(reasons or ("other-error",),
                                      detail + ", job-impressions-completed 0: did the card"
                                      " come out?"), blank=BLANK_UNKNOWN)

    def _ended_badly(self, job: int, state: int, started: bool,
                     reasons: tuple[str, ...]) -> None:
        detail = f"job {job} {_STATE_NAMES[state]}" + (f" ({', '.join(reasons)})" if reasons
                                                       else "")
        blank = BLANK_UNKNOWN if started else BLANK_UNTOUCHED
        if started:
            detail += " after processing, job-impressions-completed 0: did the card come out?"
        raise CardError(PrinterError(reasons, detail), blank=blank)

    def _job_state(self, job: int) -> JobView:
        attributes = self._call("Get-Job-Attributes", "getJobAttributes", job,
                                requested_attributes=JOB_ATTRIBUTES)
        printer = self._printer_attributes()
        reasons = error_reasons(printer.get("printer-state-reasons"))
        state = attributes.get("job-state", PENDING)
        # time-at-processing is set once a job starts: a start between two reads counts.
        began = state in (PROCESSING, STOPPED) or isinstance(
            attributes.get("time-at-processing"), int)
        return JobView(state, attributes.get("job-impressions-completed", 0), reasons,
                       printer.get("printer-state") == PRINTER_STOPPED, began)

    def finish(self) -> None:
        """Remove the finished job's document (a photo and a name) from the server."""
        if self._last_job is not None:
            self._purge(self._last_job)

    def _purge(self, job: int) -> None:
        self._last_job = None
        with contextlib.suppress(PrinterError):
            self._call("Cancel-Job (purge-job)", "cancelJob", job, purge_job=True)


def supplies_of(attributes: dict[str, Any]) -> list[dict[str, Any]]:
    """``marker-*`` printer attributes as the state's `supplies` (mqtt.md)."""
    names = _as_list(attributes.get("marker-names"))
    types = _as_list(attributes.get("marker-types"))
    levels = _as_list(attributes.get("marker-levels"))
    lows = _as_list(attributes.get("marker-low-levels"))
    return [{"name": str(name), "type": str(_at(types, i, "unknown")),
             "level": int(_at(levels, i, -1)), "low_level": int(_at(lows, i, 0))}
            for i, name in enumerate(names)]


def _at(values: list, index: int, default: Any) -> Any:
    return values[index] if index < len(values) else default


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]
