"""The layering contracts of pyproject.toml hold, and a broken one fails with its rule's name."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
        "sys.exit(lint_imports_command())", "--no-cache"]


def lint(where: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(where), "PATH": "/usr/bin:/bin"}
    return subprocess.run(LINT, cwd=where, env=env, capture_output=True, text=True, timeout=120)


def test_the_tree_keeps_every_contract() -> None:
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_core_that_imports_a_device_breaks_the_named_rule(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "kiosk", tmp_path / "kiosk",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    stock = tmp_path / "kiosk" / "station" / "core" / "stock.py"
    stock.write_text(stock.read_text() + "\nimport serial  # noqa\n")
    result = lint(tmp_path)
    assert result.returncode != 0
    assert "The station's core takes events and returns actions" in result.stdout
    assert "kiosk.station.core.stock -> serial" in result.stdout


def test_the_district_loads_no_image_decoder() -> None:
    """The router, the page and the district's commands check a record's envelope and id,
    never its pixels: Pillow, simplejpeg and numpy stay out of their processes."""
    modules = ("kiosk.district.router", "kiosk.district.web.server", "kiosk.district.cli")
    probe = (f"import sys; import {', '.join(modules)}; "
             "print(sorted(m for m in ('PIL', 'simplejpeg', 'numpy') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_station_runs_without_the_demos_and_districts_terminal_library() -> None:
    """`rich` comes with the `demo` and `district` extras, never with a station's Pi: the
    station's process, its panel and `kiosk status` load without it (a release bundle built
    with `kiosk[pi]` once failed to start on this)."""
    modules = ("kiosk.station.loop", "kiosk.devices.panel.lcd", "kiosk.ops.status", "kiosk.cli")
    probe = (f"import sys; import {', '.join(modules)}; "
             "print(sorted(m for m in sys.modules if m == 'rich' or m.startswith('rich.')))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
