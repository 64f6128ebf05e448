"""No router process outlives its test."""

from __future__ import annotations

import pytest

from tests.district.test_router import RouterProcess


@pytest.fixture(autouse=True)
def _no_router_process_outlives_its_test():
    yield
    while RouterProcess.started:
        RouterProcess.started.pop().kill_if_running()
