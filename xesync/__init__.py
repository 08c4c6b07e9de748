"""xesync: Exchange room calendars -> Cisco TMS bookings -> a PMP+ licence proof on Cisco Meeting Server."""

from __future__ import annotations

__version__ = "0.1.0"
