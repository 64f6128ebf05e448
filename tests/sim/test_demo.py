"""`kiosk demo`, the README's first command, runs to its summary."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from kiosk.sim.chip import seeded_uids
from tests.sim.test_chip import pcsc_parts  # noqa: F401  (fixture)


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


# -- the chip (issue 26): --encoder inline on a private pcscd with the vpcd reader ------------

INLINE = ["demo", "--cards", "3", "--card-seconds", "0.05", "--kia", "1", "--encoder", "inline"]


def run_main(prelude: str, argv: list[str], env: dict | None = None,
             timeout: float = 120) -> subprocess.CompletedProcess:
    """`kiosk` in a child after *prelude* (a process of its own: libpcsclite reads
    PCSCLITE_CSOCK_NAME once per process)."""
    probe = f"{prelude}from kiosk.cli import main; sys.exit(main({argv!r}))"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, env=env)


@pytest.mark.usefixtures("pcsc_parts")  # pcscd, vpcd and pyscard here, or how to install them
def test_demo_with_the_inline_encoder_shows_each_blanks_uid_and_the_register(tmp_path):
    """Plain lines (no rich, as on a station's release). The printer simulator's chips come
    from seed 1: the first blank's chip fails its write, so the first record goes on the
    second blank. An inherited PCSCLITE_CSOCK_NAME is not the demo's socket."""
    elsewhere = tmp_path / "elsewhere.comm"
    env = {**os.environ, "PCSCLITE_CSOCK_NAME": str(elsewhere)}
    result = run_main("import sys; sys.modules['rich'] = None; ", INLINE, env)
    assert result.returncode == 0, result.stderr + result.stdout
    out, lines = result.stdout, result.stdout.splitlines()
    uids = [uid.hex().upper() for uid in seeded_uids(1, 4)]
    blanks = [line for line in lines if line.startswith("blank ")]
    assert blanks[0].startswith(f"blank {uids[0]}: invalid gagal-encode (demo-3210-000001: "), out
    assert "UPDATE BINARY at 0 answered SW 6581" in blanks[0]
    assert blanks[1:] == [f"blank {uids[1]}: printed demo-3210-000001",
                          f"blank {uids[2]}: printed demo-3210-000002",
                          f"blank {uids[3]}: printed demo-3210-000003"], out
    assert re.search(r"cards printed\s*│\s*3\b", out), out
    assert re.search(r"blank cards spoiled\s*│\s*1\b", out), out
    assert re.search(r"ledger balanced\s*│\s*yes", out), out
    for category, count in (("printed", 3), ("gagal-encode", 1), ("gagal-cetak", 0),
                            ("rusak", 0), ("perubahan-elemen-data", 0)):
        assert f"  register: {category} │ {count}" in lines, out
    assert f"  invalid blanks (UID) │ {uids[0]} gagal-encode" in lines, out
    assert "kartu tercetak / cards printed: 4/4" in out, out
    assert re.search(r"on a private pcscd \(/\S+/kiosk-demo-\w+/pcscd\.comm\)", out), out


@pytest.mark.usefixtures("pcsc_parts")
def test_demo_with_the_inline_encoder_drawn_with_rich():
    result = run_main("import sys; ", INLINE)
    assert result.returncode == 0, result.stderr + result.stdout
    uid = seeded_uids(1, 2)[1].hex().upper()
    assert f"blank {uid}: printed demo-3210-000001" in result.stdout.splitlines(), result.stdout
    assert re.search(r"register: gagal-encode\s*│\s*1\b", result.stdout), result.stdout


def test_demo_inline_without_pcscd_or_pyscard_says_how_to_install_them():
    no_vpcd = ("import sys, pathlib, kiosk.sim.pcscd as rig; "
               "rig.VPCD_DRIVER = pathlib.Path('/nonexistent/libifdvpcd.so'); ")
    result = run_main(no_vpcd, INLINE, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "apt-get install pcscd vsmartcard-vpcd libpcsclite-dev" in result.stdout
    no_pyscard = "import sys; sys.modules['smartcard'] = sys.modules['smartcard.scard'] = None; "
    result = run_main(no_pyscard, INLINE, timeout=60)
    assert result.returncode == 1, result.stderr
    assert ("kiosk demo --encoder inline needs the 'chip' extra: pip install 'kiosk[chip]'"
            in result.stdout), result.stdout
