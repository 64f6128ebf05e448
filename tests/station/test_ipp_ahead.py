"""One job ahead (card-printer.md, Pacing): while a card prints, the next one waits at
the print server behind it, at most one; a job ahead of a card that failed is taken
back before it starts; no card ever prints twice. Then kill -9 at chosen steps of the
IPP path (planned in the backend simulator, never sampled): after the restart every
card the station may have left at the server is reconciled, none twice, none lost."""

from __future__ import annotations

import re

import pytest

from kiosk.station.spool import Spool
from tests.conftest import STATION, StationProcess, StationThread, wait_until

CARD_S = 0.6  # long enough for the next card to go ahead (AHEAD_AFTER_S)


@pytest.fixture
def ipp_settings(station_settings, cups_server):
    cups_server.printer._control(card_seconds=CARD_S)
    station_settings["printer"] = {"driver": "ipp", "uri": cups_server.uri, "poll_s": 0.1,
                                   "job_timeout_s": 20.0}
    return station_settings


def most_jobs_at_the_server(server) -> int:
    """The most jobs queued and not yet ended at once, from the server's own log."""
    text = (server.root / "log" / "error_log").read_text()
    open_jobs, most = set(), 0
    for job, what in re.findall(r"\[Job (\d+)\] (Queued|Job completed|Canceled|Job stopped"
                                r"|Job aborted)", text):
        if what == "Queued":
            open_jobs.add(job)
        else:
            open_jobs.discard(job)
        most = max(most, len(open_jobs))
    return most


def printed_titles(server) -> list[str]:
    return [d.name.split("-", 1)[1] for d in server.printer.documents()]


def test_the_next_card_waits_at_the_server_and_none_prints_twice(ipp_settings, district,
                                                                   signed, cups_server):
    records = [signed(i) for i in range(1, 5)]
    ids = [r["record_id"] for r in records]
    with StationThread(ipp_settings, district) as station:
        for record in records:
            district.publish_record(STATION, record)
        assert district.wait_for(
            lambda: all(district.final_state(rid) == "completed" for rid in ids), 40)
        ledger = station.spool.ledger()
    assert printed_titles(cups_server) == ids
    assert most_jobs_at_the_server(cups_server) == 2  # the card printing and one ahead
    assert (ledger.picks, ledger.printed, ledger.spoiled) == (4, 4, 0)
    assert cups_server.jobs() == {} and cups_server.spooled_files() == []


def test_a_job_ahead_of_a_jammed_card_is_taken_back_and_printed_once_later(
        ipp_settings, district, signed, cups_server):
    cups_server.printer.stop_on_fault()
    cups_server.printer.jam_next_card()
    records = [signed(i) for i in range(1, 3)]
    first, second = (r["record_id"] for r in records)
    with StationThread(ipp_settings, district) as station:
        for record in records:
            district.publish_record(STATION, record)
        assert district.wait_for(
            lambda: (district.job_events(first) or [{}])[-1].get("reasons") == ["uncertain"], 20)
        assert district.wait_for(lambda: district.job_states(second)[-1:] == ["pending"]
                                 and "processing" in district.job_states(second), 10)
        assert cups_server.jobs() == {}  # taken back before it started
        cups_server.printer.clear()
        assert district.command(STATION, "resume", {})["ok"] is True
        assert district.wait_for(lambda: district.final_state(second) == "completed", 20)
        ledger = station.spool.ledger()
    assert printed_titles(cups_server) == [second]
    assert cups_server.printer.counters == {"taken": 2, "printed": 1}
    assert (ledger.picks, ledger.printed) == (1, 1)  # the jammed card waits for a person


MOMENTS = [(0, "start"), (0, "taken"), (0, "end"), (1, "start"), (1, "end"), (2, "taken")]


@pytest.mark.parametrize(("card", "moment"), MOMENTS)
def test_kill_9_at_a_chosen_step_loses_no_card_and_prints_none_twice(
        ipp_settings, district, signed, cups_server, tmp_path, card, moment):
    records = [signed(i) for i in range(1, 4)]
    ids = [r["record_id"] for r in records]
    station = StationProcess(ipp_settings, tmp_path).start()
    try:
        assert district.wait_for(lambda: district.availability.get(STATION) == "online", 20)
        cups_server.printer.kill_at(ids[card], moment, station.process.pid)
        for record in records:
            district.publish_record(STATION, record)
        assert wait_until(cups_server.printer.kill_done, 30), "the planned step never came"
        station.process.wait(timeout=10)
        station.start()
        assert district.wait_for(
            lambda: all(district.final_state(rid) == "completed" for rid in ids), 60), (
            {rid: district.job_states(rid) for rid in ids})
        # The killed card was at the server: uncertain at the restart, then decided there.
        events = district.job_events(ids[card])
        assert any("uncertain" in e["reasons"] for e in events), events
        assert "print server" in events[-1]["detail"], events[-1]
    finally:
        assert station.terminate() == 0
    assert sorted(printed_titles(cups_server)) == sorted(ids)  # each once, none lost
    reader = Spool(ipp_settings["station"]["spool"])
    try:
        ledger = reader.ledger()
    finally:
        reader.close()
    assert (ledger.picks, ledger.printed, ledger.spoiled) == (3, 3, 0) and ledger.balanced
    assert cups_server.printer.counters == {"taken": 3, "printed": 3}
    assert cups_server.jobs() == {}


def test_kill_9_with_a_job_waiting_ahead_cancels_it_and_sends_it_again(
        ipp_settings, district, signed, cups_server, tmp_path):
    """The step: card 1 prints, card 2 waits at the server (seen there, pending); the
    restart comes while card 1 still prints, so card 2 is still pending: it is canceled,
    purged and sent again, never printed twice."""
    import cups

    cups_server.printer._control(card_seconds=4.0)
    records = [signed(i) for i in range(1, 3)]
    ids = [r["record_id"] for r in records]
    station = StationProcess(ipp_settings, tmp_path).start()
    try:
        assert district.wait_for(lambda: district.availability.get(STATION) == "online", 20)
        for record in records:
            district.publish_record(STATION, record)

        server = cups.Connection(host="127.0.0.1", port=cups_server.port)

        def waiting_ahead() -> bool:
            jobs = server.getJobs(which_jobs="not-completed")
            states = sorted(server.getJobAttributes(job)["job-state"] for job in jobs)
            return states == [cups.IPP_JOB_PENDING, cups.IPP_JOB_PROCESSING]

        assert wait_until(waiting_ahead, 20)
        station.kill()
        station.start()
        assert district.wait_for(
            lambda: all(district.final_state(rid) == "completed" for rid in ids), 60), (
            {rid: district.job_states(rid) for rid in ids})
        assert cups_server.printer.counters["taken"] == 2
        details = [e["detail"] for e in district.job_events(ids[1])]
        assert any("had not started" in d for d in details), details  # taken back, sent again
    finally:
        assert station.terminate() == 0
    assert printed_titles(cups_server) == ids
    assert cups_server.printer.counters == {"taken": 2, "printed": 2}
    assert cups_server.jobs() == {}
