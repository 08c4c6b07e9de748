"""The effective configuration as plain data, secrets masked (``xesync check-config``)."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from xesync.config.model import Config, Secret, SyncConfig

NOT_YET_IN_EFFECT: tuple[str, ...] = (
    # Keys that validate but that no code reads yet. The change that makes one take effect deletes
    # its line here; tests/unit/test_config.py follows this tuple. Empty since the sync engine, the
    # licence proof and `xesync run` landed: every key of the example configuration is read.
)
"""Dotted key paths that ``check-config`` reports as accepted but not yet in effect."""


def not_yet_in_effect() -> list[str]:
    """The keys of :data:`NOT_YET_IN_EFFECT`, sorted, for ``check-config``'s report."""
    return sorted(NOT_YET_IN_EFFECT)


# --------------------------------------------------------------------------------------------------
def effective(config: Config) -> dict[str, Any]:
    """The effective configuration as plain data, secrets masked, for ``xesync check-config``."""
    return {f.name: _plain(getattr(config, f.name)) for f in fields(config)}


def _plain(value: Any) -> Any:
    if isinstance(value, Secret):
        return f"<masked: {value.source.split(':', 1)[0]}>"
    if is_dataclass(value) and not isinstance(value, type):
        out = {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
        if isinstance(value, SyncConfig):
            out["database"] = str(value.database)
        return out
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, timedelta):
        return _format_duration(value)
    if isinstance(value, Path | StrEnum):
        return str(value)
    return value


def _format_duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
