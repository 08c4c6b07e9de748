"""Fixtures for the reliability suites: one lab per module, an xesync configuration for it, the scale.

``XESYNC_RELIABILITY_SCALE`` (default 1) multiplies the randomised counts (kills, churn, fault
rounds); the default keeps ``tests/reliability/`` within about three minutes on two cores. The seed
of every random choice is ``XESYNC_RELIABILITY_SEED`` (default 1414), printed with each figure line,
so that a failing run can be replayed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from xesync.lab import Lab

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "contract"))  # ews_lab.LabOrganiser


@pytest.fixture(scope="module")
def lab_module() -> Iterator[Lab]:
    """The whole lab (EWS, TMS, CMS, the directory on slapd when installed), once per module."""
    with Lab() as lab:
        yield lab
        lab.clock.set(datetime.now(UTC))


@pytest.fixture
def lab(lab_module: Lab) -> Lab:
    """The module's lab, reset to its fixture (faults, request log and clock included)."""
    lab_module.reset()
    return lab_module
