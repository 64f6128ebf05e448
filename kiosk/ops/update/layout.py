"""The releases on disk: ``releases/VERSION``, the ``current`` symlink, the switch journal.

    ROOT/                      /opt/kiosk on a station ([update] root is for tests)
      releases/VERSION/        one unpacked bundle: venv/, manifest.json
      releases/.VERSION.unpack a bundle being unpacked (removed by the next update or recovery)
      current -> releases/VERSION
      switch.json              the journal of a switch under way: from, to, phase

The unit starts ``ROOT/current/venv/bin/kiosk``. ``current`` changes only by renaming a
new symlink over it (rename(2) is atomic), and the journal is written (fsync, rename)
before the switch and removed after the outcome is known, so a switch interrupted at any
point (power loss, kill -9) leaves either release whole and a journal saying which way
to finish it (updater.recover).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

DEFAULT_ROOT = "/opt/kiosk"


class Layout:
    def __init__(self, root: str | os.PathLike[str] = DEFAULT_ROOT) -> None:
        self.root = Path(root)
        self.releases = self.root / "releases"
        self.current = self.root / "current"
        self.journal = self.root / "switch.json"

    def release(self, version: str) -> Path:
        return self.releases / version

    def staging(self, version: str) -> Path:
        return self.releases / f".{version}.unpack"

    def current_version(self) -> str | None:
        """The release ``current`` points at, or None (no symlink yet, or a dangling one)."""
        try:
            target = os.readlink(self.current)
        except OSError:
            return None
        version = Path(target).name
        return version if self.release(version).is_dir() else None

    def installed(self) -> list[str]:
        if not self.releases.is_dir():
            return []
        return sorted(p.name for p in self.releases.iterdir()
                      if p.is_dir() and not p.name.startswith("."))

    def point_at(self, version: str) -> None:
        """Make ``current`` point at releases/VERSION in one rename (atomic)."""
        link = self.root / ".current.new"
        link.unlink(missing_ok=True)
        os.symlink(Path("releases") / version, link)
        os.replace(link, self.current)
        _fsync_dir(self.root)

    def write_journal(self, **fields: Any) -> None:
        atomic_write(self.journal, json.dumps(fields, sort_keys=True).encode())

    def read_journal(self) -> dict[str, Any] | None:
        try:
            doc = json.loads(self.journal.read_bytes())
        except FileNotFoundError:
            return None
        except ValueError:
            return {}  # torn journals cannot happen (rename); an empty one means: undo
        return doc if isinstance(doc, dict) else {}

    def clear_journal(self) -> None:
        self.journal.unlink(missing_ok=True)
        _fsync_dir(self.root)

    def remove_staging(self) -> None:
        if self.releases.is_dir():
            for path in self.releases.glob(".*.unpack"):
                shutil.rmtree(path, ignore_errors=True)

    def prune(self, keep: set[str]) -> list[str]:
        """Remove every release but *keep* (the current and the previous one)."""
        removed = [v for v in self.installed() if v not in keep]
        for version in removed:
            shutil.rmtree(self.release(version), ignore_errors=True)
        return removed


def atomic_write(path: Path, data: bytes) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    with open(temp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


