"""The allocator set-up of `kiosk run` (kiosk/ops/memory.py)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

CHECK = ("from kiosk.ops.memory import limit_malloc_arenas; "
         "print(limit_malloc_arenas())")


def run_check(env: dict[str, str]) -> str:
    result = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True,
                            env=env, check=True)
    return result.stdout.strip()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_takes_the_arena_limit():
    assert run_check({"PATH": "/usr/bin:/bin"}) == "True"


def test_an_arena_limit_set_by_the_technician_wins():
    assert run_check({"PATH": "/usr/bin:/bin", "MALLOC_ARENA_MAX": "4"}) == "False"
