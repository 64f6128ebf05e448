"""The crash rule at the station loop: the printer hears "pick" only once the job's
``picking`` mark is committed (issue 23, point 10a).

At each allowed pick answer, another SQLite connection (what a restart would read)
must already see the job ``picking``: on the first card, whose pick is asked while it
renders, and on chained picks, asked with the previous card's end (`CardPrinted.then`).
"""

from __future__ import annotations

import sqlite3
import threading

from kiosk.station.core import events as ev
from tests.conftest import STATION, StationThread

CARDS = 3


def committed_phase(spool: str, record_id: str) -> str | None:
    """The job's phase as a fresh connection sees it: only what is committed."""
    with sqlite3.connect(f"file:{spool}?mode=ro", uri=True) as db:
        row = db.execute("SELECT phase FROM jobs WHERE record_id = ?", (record_id,)).fetchone()
    return row[0] if row else None


def test_every_pick_answer_follows_the_commit_of_its_picking_mark(
    station_settings, district, signed, printer_sim
):
    station_settings["printer"]["print_seconds"] = 30.0  # the sim waits for renders below
    records = [signed(i) for i in range(1, CARDS + 1)]
    rids = [r["record_id"] for r in records]
    rig = StationThread(station_settings, district)
    station = rig.station
    spool = station_settings["station"]["spool"]

    # Each card ends only once the next one is rendered, so that its pick is chained.
    rendered = {rid: threading.Event() for rid in rids}
    render = station.worker.render

    def render_and_tell(payload: bytes):
        document = render(payload)
        rendered[next(r for r in rids if r.encode() in payload)].set()
        return document

    station.worker.render = render_and_tell
    ends = iter(rids[1:])

    def on_command(command: str) -> None:
        if command == "Se":
            upcoming = next(ends, None)
            if upcoming is not None:
                rendered[upcoming].wait(20)  # the next card rendered: its pick is chained

    printer_sim.on_command = on_command

    # Which requests were chained, and what another connection saw at each answer.
    chained: set[int] = set()
    handle = station.core.handle

    def handle_and_note(event: object) -> list:
        if isinstance(event, ev.CardPrinted) and event.then is not None:
            chained.add(event.then.token)
        return handle(event)

    station.core.handle = handle_and_note
    seen: list[tuple[str, int, str | None]] = []
    answer = station.executors[ev.AnswerPick]

    def answer_and_look(action: ev.AnswerPick) -> None:
        if action.allow:
            seen.append((action.record_id, action.token, committed_phase(spool, action.record_id)))
        answer(action)

    station.executors[ev.AnswerPick] = answer_and_look

    with rig:
        # All records spooled before the first card, so that each next one is prefetched.
        assert district.command(STATION, "pause")["ok"]
        for record in records:
            district.publish_record(STATION, record)
        assert district.wait_for(lambda: all(district.job_states(rid) for rid in rids), 20)
        assert district.command(STATION, "resume")["ok"]
        assert district.wait_for(
            lambda: all(district.final_state(rid) == "completed" for rid in rids), 60)
    assert [rid for rid, _, _ in seen] == rids
    assert {token for _, token, _ in seen[1:]} == chained, "the later picks were not chained"
    assert [phase for _, _, phase in seen] == ["picking"] * CARDS
