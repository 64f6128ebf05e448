"""Logging for journald: priority prefixes, no timestamps there, NIKs masked everywhere."""

from __future__ import annotations

import logging
import os
import re
import warnings

import pytest

from kiosk.ops.logsetup import mask_niks, setup_logging, stream_is_journal, syslog_priority

NIK = "3210014501900001"
MASKED = "************0001"
log = logging.getLogger("kiosk.test")


@pytest.fixture(autouse=True)
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)


@pytest.fixture
def journal(tmp_path):
    """A stream that JOURNAL_STREAM names, as systemd sets it up; .text() reads it back."""
    stream = open(tmp_path / "journal", "w")  # noqa: SIM115 - closed below
    status = os.fstat(stream.fileno())
    env = {"JOURNAL_STREAM": f"{status.st_dev}:{status.st_ino}"}
    stream.text = lambda: (stream.flush(), (tmp_path / "journal").read_text())[1]
    yield stream, env
    stream.close()


def test_journal_lines_have_a_priority_and_no_timestamp(journal):
    stream, env = journal
    setup_logging(verbose=True, stream=stream, environ=env)
    log.debug("details")
    log.info("card printed")
    log.warning("feeder low")
    log.error("printer gone")
    log.critical("spool lost")
    assert stream.text().splitlines() == [
        "<7>kiosk.test: details", "<6>kiosk.test: card printed", "<4>kiosk.test: feeder low",
        "<3>kiosk.test: printer gone", "<2>kiosk.test: spool lost"]


def test_every_traceback_line_keeps_the_priority(journal):
    stream, env = journal
    setup_logging(stream=stream, environ=env)
    try:
        raise RuntimeError("cover open")
    except RuntimeError:
        log.exception("print failed")
    lines = stream.text().splitlines()
    assert len(lines) > 3
    assert all(line.startswith("<3>") for line in lines)
    assert lines[-1] == "<3>RuntimeError: cover open"


def test_terminal_format_when_stderr_is_not_the_journal(journal, tmp_path):
    stream, _ = journal
    other = os.stat(tmp_path)  # JOURNAL_STREAM inherited, but stderr now goes elsewhere
    setup_logging(stream=stream, environ={"JOURNAL_STREAM": f"{other.st_dev}:{other.st_ino}"})
    log.info("card printed")
    line = stream.text().strip()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO kiosk.test: card printed",
                        line), line


def test_journal_stream_detection(journal):
    stream, env = journal
    assert stream_is_journal(stream, env)
    assert not stream_is_journal(stream, {})
    assert not stream_is_journal(stream, {"JOURNAL_STREAM": "garbage"})


def test_niks_masked_in_messages_arguments_and_tracebacks(journal):
    stream, env = journal
    setup_logging(stream=stream, environ=env)
    log.info(f"record for NIK {NIK} queued")
    log.info("nik=%s", NIK)
    log.info("record %r", {"nik": NIK, "n": int(NIK)})
    try:
        raise ValueError(f"nik {NIK} does not match the birth date")
    except ValueError:
        log.exception("rejected")
    log.info("bad %d format", NIK)  # the record's arguments must not leak either
    text = stream.text()
    assert NIK not in text
    assert text.count(MASKED) == 6


def test_only_sixteen_digit_runs_are_masked():
    assert mask_niks(f"a{NIK}b {NIK}") == f"a{MASKED}b {MASKED}"
    assert mask_niks("1" * 15) == "1" * 15
    assert mask_niks("1" * 17) == "1" * 17
    assert mask_niks("stock 1234 cards") == "stock 1234 cards"


def test_syslog_priorities():
    assert [syslog_priority(level) for level in (5, 10, 20, 25, 30, 40, 50, 60)] == [
        7, 7, 6, 6, 4, 3, 2, 2]


def test_set_up_twice_logs_once_and_warnings_are_logged(journal):
    stream, env = journal
    setup_logging(stream=stream, environ=env)
    setup_logging(stream=stream, environ=env)
    log.info("once")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("falling back from lgpio", UserWarning, stacklevel=1)
    lines = stream.text().splitlines()
    assert lines[0] == "<6>kiosk.test: once"
    assert lines[1].startswith("<4>py.warnings: ")
    assert "falling back from lgpio" in lines[1]
