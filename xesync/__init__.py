"""xesync: Exchange room calendars -> Cisco TMS bookings -> a PMP+ licence proof on Cisco Meeting Server."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    # One version number: pyproject.toml's, as installed (``pip install -e .`` included).
    __version__ = version("xesync")
except PackageNotFoundError:  # pragma: no cover - running from a source tree that was never installed
    __version__ = "0+unknown"
