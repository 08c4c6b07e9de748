"""Helpers shared by the reliability suites: the scale, the seed, an xesync configuration for a lab."""

from __future__ import annotations

import os
import socket
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


def write_config(lab: Lab, directory: Path, *, sync: str = "") -> Config:
    """Write and load the configuration ``xesync lab serve --write-config`` writes for ``lab``.

    :param sync: TOML lines added to ``[sync]``.
    """
    path = directory / "xesync.toml"
    write_lab_config(lab.describe(), path, fixture=lab.fixture, state_dir=directory / "state")
    if sync:
        text = path.read_text(encoding="utf-8").replace("[sync]\n", f"[sync]\n{sync}\n", 1)
        path.write_text(text, encoding="utf-8")
    return config_mod.load(path)


# The crash suites cancel at random; when kills pile several rounds of churn into one pass, the
# data-loss fuse rightly refuses to cancel most of a room at once. The fuse is not under test there.
NO_FUSE = "mass_cancel_guard = false"


def daemon_config(
    lab: Lab, directory: Path, *, interval: str, metrics_port: int | None = None, sync: str = ""
) -> Config:
    """The lab's configuration with ``sync.interval`` and, when given, a ``[metrics]`` listener."""
    cfg = write_config(lab, directory, sync=sync)
    path = cfg.source
    text = path.read_text(encoding="utf-8").replace("[sync]\n", f'[sync]\ninterval = "{interval}"\n', 1)
    if metrics_port is not None:
        text += f'\n[metrics]\nenabled = true\nhost = "127.0.0.1"\nport = {metrics_port}\n'
    path.write_text(text, encoding="utf-8")
    return config_mod.load(path)


def free_port() -> int:
    """A loopback port free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
