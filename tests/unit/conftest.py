"""Fixtures shared by the unit tests: the engine over the port fakes (tests/engine_kit.py)."""

from __future__ import annotations

import pytest
from engine_kit import Kit


@pytest.fixture
def kit(tmp_path):
    """The engine over fresh port fakes, with the default policy; a module needing another defines its own."""
    k = Kit(tmp_path)
    yield k
    k.close()
