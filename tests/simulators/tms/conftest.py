"""Fixtures for the TMS simulator's contract tests: the simulator on loopback, once per SOAP version."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The raw-SOAP helpers live beside the tests; pytest's importlib mode does not put this folder on the path.
sys.path.insert(0, str(Path(__file__).parent))

from tms_wire import Served


@pytest.fixture(params=[11, 12], ids=["soap11", "soap12"])
def tms(request):
    """The TMS simulator, once per SOAP version."""
    served = Served(request.param)
    yield served
    served.stop()


@pytest.fixture
def tms12():
    """The TMS simulator, spoken to in SOAP 1.2 only."""
    served = Served(12)
    yield served
    served.stop()
