"""A command that needs a missing extra says which one to install, and exits 2."""

from __future__ import annotations

import pytest

from kiosk.extras import MissingExtra, require


def test_a_missing_module_names_its_extra() -> None:
    with pytest.raises(MissingExtra) as caught:
        require("kiosk_no_such_module", "receipt", "a receipt printer")
    assert "pip install 'kiosk[receipt]'" in str(caught.value)
    assert "a receipt printer" in str(caught.value)


def test_a_present_module_is_returned() -> None:
    assert require("json", "none", "json").dumps({}) == "{}"
