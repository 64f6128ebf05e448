"""A CUPS backend for the simulated card printer (installed by kiosk/sim/cups.py).

CUPS runs it as ``kiosksim JOB USER TITLE COPIES OPTIONS FILE`` with
``DEVICE_URI=kiosksim:/DIR``; DIR holds the printer's state and is shared with
`kiosk.sim.cups.CardPrinterSim`, which stands for the physical printer:

* ``control.json`` (written by the simulator): ``card_seconds``, ``faults``
  standing (IPP reason keywords), ``jam_next`` (jam the next card mid-print),
  ``ribbon_level`` (percent), ``stop_on_fault`` (vendor-like: exit 4, below);
* ``state.json`` (written here): ``taken`` and ``printed`` counters, which
  survive anything but the printer's own end;
* ``documents/``: every printed document, named ``<n>-<job title>``;
* ``kill.json`` (tests): ``{"title": T, "moment": M, "pid": P}``: SIGKILL process P
  once, when the job titled T reaches moment M (``start``: the backend runs, no blank
  taken; ``taken``: the blank is in the printer; ``end``: the card is out, CUPS not
  told yet), for crash tests that kill at chosen steps, never at sampled ones;
* ``times.jsonl``: per job, CLOCK_MONOTONIC (system-wide) when the backend started,
  took the blank and ended, for benches.

It reports the way vendor backends do, on standard error: ``ATTR:`` for marker
levels, ``STATE: +reason`` while a fault stands (waiting, no blank taken, as a
real backend waits for its printer), ``STATE: -reason`` once cleared, and a jam
during a card as ``STATE: +media-jam-error`` and exit 1 (CUPS_BACKEND_FAILED). With
``stop_on_fault`` it behaves as most vendor backends do instead: a fault standing
when a job starts is ``STATE: +reason`` and exit 4 (CUPS_BACKEND_STOP: CUPS stops the
queue, puts the job back and keeps the reason), and a jam exits 4 as well; an
offline printer is still waited for.
It uses only the standard library: CUPS runs it with its own environment.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

BACKEND_OK, BACKEND_FAILED, BACKEND_STOP = 0, 1, 4
FAULTS = ("media-empty-error", "marker-supply-empty-error", "door-open-error",
          "cover-open-error", "offline-report", "media-jam-error")
POLL_S = 0.05


def report(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def read_json(path: Path, default: dict) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return dict(default)


def write_json(path: Path, value: dict) -> None:
    """Atomically, and on disk before it counts (a printer's counters survive a crash)."""
    temporary = path.with_suffix(".tmp")
    with open(temporary, "w") as handle:
        json.dump(value, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def standing_faults(home: Path) -> list[str]:
    return [f for f in read_json(home / "control.json", {}).get("faults", []) if f in FAULTS]


def wait_while_faulted(home: Path) -> None:
    """Report each standing fault and wait for it to clear (no blank is taken)."""
    shown: set[str] = set()
    while faults := standing_faults(home):
        for fault in set(faults) - shown:
            report(f"STATE: +{fault}")
        for fault in shown - set(faults):
            report(f"STATE: -{fault}")
        shown = set(faults)
        time.sleep(POLL_S)
    if shown:
        report("STATE: -" + ",".join(sorted(shown)))


def kill_if_planned(home: Path, title: str, moment: str) -> None:
    """The crash a test planned for this job at this moment (kill.json), once."""
    path = home / "kill.json"
    plan = read_json(path, {})
    if plan.get("title") == title and plan.get("moment") == moment:
        path.unlink()
        try:
            os.kill(int(plan["pid"]), signal.SIGKILL)
            report(f"INFO: killed {plan['pid']} at {moment} of {title}, as planned")
        except (OSError, ValueError, KeyError) as error:
            report(f"INFO: planned kill failed: {error}")


def stamp(home: Path, job: str, **moments: float) -> None:
    with open(home / "times.jsonl", "a") as handle:
        handle.write(json.dumps({"job": job, **moments}) + "\n")


def print_card(home: Path, job: str, title: str, document: str | None,
               options: str = "") -> int:
    """One card; *document* is the job's file, or None: the filters' output on stdin.
    *options*: the job's options as cupsd hands them over (kept beside the card, for
    tests: e.g. the manual slot a desk-mode card asked for)."""
    started = time.monotonic()
    kill_if_planned(home, title, "start")
    control = read_json(home / "control.json", {})
    report(f"ATTR: marker-names=ribbon marker-types=ribbon-wax-transfer "
           f"marker-colors=#000000 marker-levels={int(control.get('ribbon_level', 80))} "
           "marker-low-levels=10 marker-high-levels=100")
    report("STATE: -" + ",".join(FAULTS))  # what the last job left behind is past
    stop = bool(control.get("stop_on_fault"))
    # A printer that is not there is waited for, as CUPS's own backends do (CUPS drops
    # offline-report from a stopped queue, so stopping would lose the reason).
    if stop and (faults := [f for f in standing_faults(home) if f != "offline-report"]):
        for fault in faults:
            report(f"STATE: +{fault}")
        report(f"ERROR: the printer reports {', '.join(faults)}")
        return BACKEND_STOP
    wait_while_faulted(home)
    state_path = home / "state.json"
    state = read_json(state_path, {"taken": 0, "printed": 0})
    state["taken"] += 1
    write_json(state_path, state)
    picked = time.monotonic()
    kill_if_planned(home, title, "taken")
    report(f"INFO: printing card for job {job}")
    time.sleep(float(control.get("card_seconds", 0.2)))
    control = read_json(home / "control.json", {})
    if control.get("jam_next"):
        control["jam_next"] = False
        control["faults"] = sorted(set(control.get("faults", [])) | {"media-jam-error"})
        write_json(home / "control.json", control)
        report("STATE: +media-jam-error")
        report("ERROR: card jammed in the printer")
        return BACKEND_STOP if stop else BACKEND_FAILED
    documents = home / "documents"
    documents.mkdir(exist_ok=True)
    name = title.replace("/", "_") or "untitled"
    target = documents / f"{state['printed'] + 1:05d}-{name}"
    if document is None:
        with open(target, "wb") as out:
            shutil.copyfileobj(sys.stdin.buffer, out)
    else:
        shutil.copyfile(document, target)
    kept = home / "options"
    kept.mkdir(exist_ok=True)
    (kept / target.name).write_text(options)
    state["printed"] += 1
    write_json(state_path, state)
    stamp(home, job, start=started, picked=picked, end=time.monotonic())
    kill_if_planned(home, title, "end")
    report("PAGE: 1 1")
    return BACKEND_OK


def main(argv: list[str]) -> int:
    if len(argv) == 1:  # device discovery
        print('direct kiosksim "Kiosk card printer" "Kiosk simulated card printer"')
        return BACKEND_OK
    if len(argv) < 6:
        report("ERROR: usage: kiosksim job user title copies options [file]")
        return BACKEND_FAILED
    home = Path(os.environ.get("DEVICE_URI", "").partition(":")[2])
    return print_card(home, argv[1], argv[3], argv[6] if len(argv) > 6 else None, argv[5])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
