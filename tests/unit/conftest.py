"""Fixtures shared by the unit tests: the engine over the port fakes (tests/engine_kit.py), and a state
store path in a fresh directory with a store open on it (test_store*.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from engine_kit import Kit

from xesync.store import Store


@pytest.fixture
def kit(tmp_path):
    """The engine over fresh port fakes, with the default policy; a module needing another defines its own."""
    k = Kit(tmp_path)
    yield k
    k.close()


@pytest.fixture
def db(tmp_path) -> Path:
    """The state store's path in a fresh directory (not created yet)."""
    return tmp_path / "state" / "xesync.db"


@pytest.fixture
def state_store(db):
    """A state store opened (and migrated) at ``db``, closed after the test."""
    with Store.open(db) as opened:
        yield opened
