"""What a station can run: the machine and word size of an interpreter's ELF file, and its version.

A 32-bit userland on a 64-bit kernel reports ``aarch64`` from ``uname`` (and from
``platform.machine()``), so the kernel is not asked: the interpreter a bundle's
environment needs is read instead (its ELF header says ARM or AArch64, 32 or 64 bit).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

# e_machine values of the ELF specification.
_MACHINES = {3: "i386", 40: "armv7l", 62: "x86_64", 183: "aarch64"}
_CLASSES = {1: 32, 2: 64}


class PlatformError(Exception):
    """This station cannot run the bundle: the reason names what differs."""


@dataclass(frozen=True)
class Platform:
    machine: str  # x86_64, aarch64, armv7l (a 32-bit ARM userland), i386
    python: str   # "3.11"


def elf_machine(path: str | Path) -> str:
    """The machine an ELF executable is built for, e.g. ``aarch64`` or ``armv7l``."""
    with open(path, "rb") as handle:
        header = handle.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        raise PlatformError(f"{path}: not an ELF executable")
    bits = _CLASSES.get(header[4])
    order = "little" if header[5] == 1 else "big"
    number = int.from_bytes(header[18:20], order)
    machine = _MACHINES.get(number, f"elf-machine-{number}")
    if machine in ("aarch64", "x86_64") and bits == 32:
        machine += "-ilp32"
    return machine


def python_version(interpreter: str | Path) -> str:
    """``major.minor`` of *interpreter*, asked by running it (it must run here)."""
    try:
        done = subprocess.run([str(interpreter), "-c",
                               "import sys; print('%d.%d' % sys.version_info[:2])"],
                              capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError) as error:
        raise PlatformError(f"{interpreter}: cannot run it ({error})") from None
    return done.stdout.strip()


def platform_of(interpreter: str | Path) -> Platform:
    """The platform *interpreter* gives a virtual environment built on it."""
    path = Path(interpreter)
    if not path.exists():
        raise PlatformError(f"{interpreter}: no such interpreter on this station")
    return Platform(elf_machine(path.resolve()), python_version(path))


def check(interpreter: str, wanted: Platform) -> None:
    """Raise PlatformError unless *interpreter* is here and is the *wanted* platform."""
    found = platform_of(interpreter)
    if found.machine != wanted.machine:
        raise PlatformError(f"bundle is for {wanted.machine}, this station's {interpreter}"
                            f" is {found.machine}")
    if found.python != wanted.python:
        raise PlatformError(f"bundle is for Python {wanted.python}, this station's"
                            f" {interpreter} is Python {found.python}")
