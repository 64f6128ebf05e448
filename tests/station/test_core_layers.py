"""The core has no circle: the machine imports its parts (desk, commands), they see it
only through `kiosk.station.core.parts`, and no back-reference hides under TYPE_CHECKING
(which the import contracts of pyproject.toml do not see)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "kiosk" / "station" / "core"
LINT = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
        "sys.exit(lint_imports_command())", "--no-cache"]


def type_checking_blocks(path: Path) -> list[int]:
    tree = ast.parse(path.read_text())
    return [node.lineno for node in ast.walk(tree) if isinstance(node, ast.If)
            and "TYPE_CHECKING" in ast.unparse(node.test)]


def test_no_core_module_imports_only_for_type_checking() -> None:
    hidden = {path.name: lines for path in sorted(CORE.glob("*.py"))
              if (lines := type_checking_blocks(path))}
    assert hidden == {}, "imports under TYPE_CHECKING escape the layers contract"


def test_a_command_that_imports_the_machine_breaks_the_named_rule(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "kiosk", tmp_path / "kiosk",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    commands = tmp_path / "kiosk" / "station" / "core" / "commands.py"
    commands.write_text(commands.read_text() + "\nimport kiosk.station.core.machine  # noqa\n")
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(LINT, cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode != 0
    said = " ".join(result.stdout.split())
    assert "know it only through core.parts: no circle BROKEN" in said
    assert "kiosk.station.core.commands -> kiosk.station.core.machine" in said
