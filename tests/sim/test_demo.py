"""`kiosk demo`, the README's first command, runs to its summary."""

from __future__ import annotations

import re
import subprocess
import sys


def test_demo_prints_every_card_and_ends_with_a_balanced_summary():
    result = subprocess.run(
        [sys.executable, "-m", "kiosk", "demo", "--cards", "3", "--card-seconds", "0.05"],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(r"cards printed\s*│\s*3\b", out), out
    assert re.search(r"ledger balanced\s*│\s*yes", out), out
    assert "publish → first printer byte" in out
    # Both documents (issue 28): the KIA on a station of its own, its ledger balanced too.
    assert re.search(r"KIA cards printed \(demo-kia\)\s*│\s*2\b", out), out
    assert re.search(r"KIA ledger balanced\s*│\s*yes", out), out


def test_demo_with_faults_recovers_by_itself():
    result = subprocess.run(
        [sys.executable, "-m", "kiosk", "demo", "--cards", "7", "--card-seconds", "0.05",
         "--faults"],
        capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"cards printed\s*│\s*7\b", result.stdout), result.stdout
    assert re.search(r"blank cards spoiled\s*│\s*1\b", result.stdout), result.stdout


def test_demo_through_a_private_cups_prints_every_card(cupsd_present):
    result = subprocess.run(
        [sys.executable, "-m", "kiosk", "demo", "--printer", "ipp", "--cards", "3",
         "--card-seconds", "0.05", "--faults"],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    assert "ipp://127.0.0.1:" in result.stdout
    assert re.search(r"cards printed\s*│\s*3\b", result.stdout), result.stdout
    assert re.search(r"ledger balanced\s*│\s*yes", result.stdout), result.stdout


def test_demo_runs_without_rich_as_on_a_stations_release():
    """A station's release carries no rich (kiosk[pi]); the release proof runs `kiosk demo`
    in it all the same: plain lines, the same summary."""
    probe = ("import sys; sys.modules['rich'] = None; from kiosk.cli import main; "
             "sys.exit(main(['demo', '--cards', '2', '--card-seconds', '0.05', '--kia', '1']))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(r"cards printed\s*│\s*2\b", out), out
    assert re.search(r"KIA cards printed \(demo-kia\)\s*│\s*1\b", out), out
    assert "kartu tercetak / cards printed: 3/3" in out, out
