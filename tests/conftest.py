"""Shared test settings: Hypothesis profiles and structlog isolation."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import structlog
from hypothesis import HealthCheck, settings

# The port fakes (tests/fakes.py) are imported by name; importlib mode does not put tests/ on the path.
sys.path.insert(0, str(Path(__file__).parent))

settings.register_profile("dev", max_examples=50)
settings.register_profile("ci", max_examples=100, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("deterministic", derandomize=True, max_examples=50)
# `make soak`: the engine state machine at length (tests/unit/test_engine_machine.py reads the profile
# for its step count); minutes, not part of `make test`.
settings.register_profile("soak", max_examples=2000, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture(autouse=True)
def _reset_structlog():
    """Give every test structlog's defaults, so one test's configure() cannot leak into another."""
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
