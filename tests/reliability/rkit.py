"""Helpers shared by the reliability suites: the scale, the seed, an xesync configuration for a lab."""

from __future__ import annotations

import os
from pathlib import Path

from xesync import config as config_mod
from xesync.config.model import Config
from xesync.lab import Lab
from xesync.lab.serve import write_lab_config


def scale() -> int:
    """``XESYNC_RELIABILITY_SCALE`` as a positive integer (1 by default)."""
    return max(1, int(os.environ.get("XESYNC_RELIABILITY_SCALE", "1")))


def seed() -> int:
    """``XESYNC_RELIABILITY_SEED`` (1414 by default)."""
    return int(os.environ.get("XESYNC_RELIABILITY_SEED", "1414"))


def write_config(lab: Lab, directory: Path) -> Config:
    """Write and load the configuration ``xesync lab serve --write-config`` writes for ``lab``."""
    path = directory / "xesync.toml"
    write_lab_config(lab.describe(), path, fixture=lab.fixture, state_dir=directory / "state")
    return config_mod.load(path)
