"""Fixtures for the port contract suites: the whole lab on loopback and an xesync config pointing at it.

The lab (EWS, TMS and CMS simulators and the fixture's directory on slapd) starts once per test module,
and is reset to its fixture before each test that asks for it, so that tests stay independent while
paying the start-up once. ``lab_config`` is the configuration ``xesync lab serve --write-config``
writes, loaded through the production config reader.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from xesync import config as config_mod
from xesync.config.model import Config
from xesync.lab import Lab
from xesync.lab.serve import write_lab_config


@pytest.fixture(scope="module")
def lab_module() -> Iterator[Lab]:
    """The whole lab, started once for the module."""
    with Lab() as lab:  # __enter__ starts it
        yield lab


@pytest.fixture
def lab(lab_module: Lab) -> Lab:
    """The module's lab, reset to its fixture (clock, faults and request counts included)."""
    lab_module.reset()
    return lab_module


@pytest.fixture
def lab_config(lab: Lab, tmp_path: Path) -> Config:
    """The configuration ``xesync lab serve --write-config`` writes for this lab, loaded and validated."""
    path = tmp_path / "xesync.toml"
    write_lab_config(lab.describe(), path, fixture=lab.fixture, state_dir=tmp_path / "state")
    return config_mod.load(path)
