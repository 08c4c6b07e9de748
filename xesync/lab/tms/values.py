"""TMS value formats (tms-booking-api.md §5) and enumerations (§9)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})?$")

CONFERENCE_STATUSES = (
    "All",
    "AllExceptDeleted",
    "Pending",
    "Ongoing",
    "Finished",
    "PendingAndOngoing",
    "MeetingRequest",
    "Rejected",
    "NotSaved",
    "Defective",
    "Deleted",
)
BOOKING_MODES = ("Strict", "BestEffortForced")


def parse_time(raw: str) -> datetime:
    """``YYYY-MM-DD HH:MM:SSZ`` or the ``T`` form; a missing zone is UTC (``xs:dateTime`` inputs).

    :raises ValueError: on anything else.
    """
    match = _TIME.match(raw.strip())
    if match is None:
        raise ValueError(f"not a TMS time: {raw!r}")
    day, clock, _fraction, zone = match.groups()
    zone = "+00:00" if zone in (None, "Z") else zone
    return datetime.fromisoformat(f"{day}T{clock}{zone}").astimezone(UTC)


def fmt_time(value: datetime) -> str:
    """The space form TMS emits: ``2021-01-29 13:09:18Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def status_matches(wanted: str, status: str) -> bool:
    """Whether a conference in ``status`` passes a ``ConferenceStatus`` filter."""
    if wanted == "All":
        return True
    if wanted == "AllExceptDeleted":
        return status != "Deleted"
    if wanted == "PendingAndOngoing":
        return status in ("Pending", "Ongoing")
    return status == wanted


def default_title(start: datetime) -> str:
    """TMS's default title, e.g. ``Meeting 1/29/2021 2:09 PM`` (§8.1)."""
    return f"Meeting {start.month}/{start.day}/{start.year} {start.strftime('%I:%M %p').lstrip('0')}"


def as_bool(raw: str | None) -> bool:
    """``true``/``1`` are interchangeable (§5)."""
    return (raw or "").strip().lower() in ("true", "1")
