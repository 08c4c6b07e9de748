"""exchangelib calendar items → the port values in :mod:`xesync.meetings` (pure, no I/O).

The Exchange adapter reads items with the fields in :data:`ITEM_FIELDS` and hands them here. Nothing
in this module talks to a server, so the unit tests build exchangelib objects by hand.

Terminology
-----------

Windows zone
    The zone id Exchange stores on a meeting (``StartTimeZone Id="W. Europe Standard Time"``).
    exchangelib turns it into an ``EWSTimeZone`` through the CLDR table (``winzone.py``), whose
    ``key`` is an IANA name. The table is many-to-one in reverse: Oslo's meetings come back as
    ``Europe/Berlin``, which has the same rules (ews.md §1.3).
occurrence row
    One ``CalendarView`` instance of a series (type ``Occurrence`` or ``Exception``) read with
    :data:`OCCURRENCE_FIELDS`; its ``original_start`` is the recurrence id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from exchangelib import HTMLBody
from exchangelib.recurrence import (
    AbsoluteMonthlyPattern,
    AbsoluteYearlyPattern,
    DailyPattern,
    EndDatePattern,
    NumberedPattern,
    RelativeMonthlyPattern,
    RelativeYearlyPattern,
    WeeklyPattern,
)

from xesync.meetings import Frequency, Occurrence, Recurrence, Response, RoomItem

# GetItem fields for a room item (ews.md §1.9). Start/End come with their zones; the rest is what a
# RoomItem carries. Body and the attendee lists are "complex": SyncFolderItems cannot return them
# (MS SyncFolderItems operation, Remarks), so they are read with GetItem.
ITEM_FIELDS = (
    "parent_folder_id",
    "uid",
    "type",
    "subject",
    "start",
    "end",
    "_start_timezone",
    "_end_timezone",
    "is_all_day",
    "sensitivity",
    "is_cancelled",
    "my_response_type",
    "organizer",
    "required_attendees",
    "optional_attendees",
    "resources",
    "location",
    "body",
    "recurrence",
    "deleted_occurrences",
    "appointment_sequence_number",
)

# GetItem fields for the instances a calendar view returns (ews.md §1.5: uid is complex, so a view
# asking for it costs FindItem + GetItem either way; we fetch only the series instances).
OCCURRENCE_FIELDS = ("uid", "start", "end", "original_start")

MASTER = "RecurringMaster"
INSTANCE_TYPES = frozenset({"Occurrence", "Exception"})

_RESPONSES = {
    "Unknown": Response.UNKNOWN,
    "NoResponseReceived": Response.NO_RESPONSE,
    "Tentative": Response.TENTATIVE,
    "Accept": Response.ACCEPT,
    "Decline": Response.DECLINE,
    "Organizer": Response.ORGANIZER,
}

# DaysOfWeek in relative patterns may be 8 (Day), 9 (Weekday) or 10 (WeekendDay) besides 1-7
# (exchangelib fields.py WEEKDAYS); DayOfWeekIndex 5 is "Last".
_EXTRA_WEEKDAYS = {8: (1, 2, 3, 4, 5, 6, 7), 9: (1, 2, 3, 4, 5), 10: (6, 7)}
_LAST_WEEK = 5
# exchangelib maps the Windows id "UTC" to Etc/UTC; the port values spell it "UTC".
_UTC_ALIASES = frozenset(
    {"UTC", "Etc/UTC", "Etc/GMT", "Etc/UCT", "Etc/Universal", "Etc/Zulu", "Universal", "Zulu"}
)


def utc(value: datetime) -> datetime:
    """``value`` (an aware ``EWSDateTime`` or ``datetime``) as a plain UTC ``datetime``."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"Exchange returned a naive datetime {value!r}")
    return datetime.fromtimestamp(value.timestamp(), tz=UTC)


def iana_zone(tz: Any) -> str:
    """The IANA name of an exchangelib zone (``EWSTimeZone.key``), ``UTC`` when there is none.

    A name Python's zone database does not know also falls back to ``UTC`` rather than failing the
    room: the times themselves are UTC and stay right; only DST-aware series rules would suffer.
    """
    key = getattr(tz, "key", None)
    if not key or key in _UTC_ALIASES:
        return "UTC"
    try:
        ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError):
        return "UTC"
    return str(key)


def response_of(value: str | None) -> Response:
    """``MyResponseType`` → :class:`Response` (``Unknown`` for anything unexpected)."""
    return _RESPONSES.get(value or "Unknown", Response.UNKNOWN)


def _plain_date(value: date) -> date:
    # EWSDate and EWSDateTime are subclasses; the port values hold stdlib types only.
    return date(value.year, value.month, value.day)


def _all_day_bound(value: date | datetime, tz: Any, *, end: bool) -> datetime:
    # exchangelib turns all-day Start/End into dates in the item's zone, the end made inclusive
    # (items/calendar_item.py from_xml); undo that to get the instants Exchange stored.
    if isinstance(value, datetime):
        return utc(value)
    day = _plain_date(value) + (timedelta(days=1) if end else timedelta())
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(iana_zone(tz))).astimezone(UTC)


def _weekdays(value: int) -> tuple[int, ...]:
    return _EXTRA_WEEKDAYS.get(value, (value,))


def _relative(pattern: Any) -> dict[str, Any]:
    week = int(pattern.week_number)
    return {"weekdays": _weekdays(int(pattern.weekday)), "week_of_month": -1 if week == _LAST_WEEK else week}


def _weekly(pattern: Any) -> dict[str, Any]:
    days = pattern.weekdays if isinstance(pattern.weekdays, list | tuple) else [pattern.weekdays]
    return {
        "interval": pattern.interval,
        "weekdays": tuple(sorted(int(d) for d in days)),
        "first_day_of_week": int(pattern.first_day_of_week or 1),
    }


# pattern class -> (frequency, the pattern's own Recurrence fields)
_PATTERNS: dict[type, tuple[Frequency, Callable[[Any], dict[str, Any]]]] = {
    DailyPattern: (Frequency.DAILY, lambda p: {"interval": p.interval}),
    WeeklyPattern: (Frequency.WEEKLY, _weekly),
    AbsoluteMonthlyPattern: (
        Frequency.MONTHLY,
        lambda p: {"interval": p.interval, "day_of_month": p.day_of_month},
    ),
    RelativeMonthlyPattern: (Frequency.MONTHLY, lambda p: {"interval": p.interval, **_relative(p)}),
    AbsoluteYearlyPattern: (
        Frequency.YEARLY,
        lambda p: {"day_of_month": p.day_of_month, "month": int(p.month)},
    ),
    RelativeYearlyPattern: (Frequency.YEARLY, lambda p: {"month": int(p.month), **_relative(p)}),
}


def to_recurrence(rec: Any) -> Recurrence | None:
    """An exchangelib ``Recurrence`` → :class:`Recurrence`; ``None`` for none (or a task pattern).

    Regeneration patterns belong to tasks and never appear on calendar items.
    """
    if rec is None or rec.pattern is None or rec.boundary is None:
        return None
    known = _PATTERNS.get(type(rec.pattern))
    if known is None:
        return None
    frequency, pattern_fields = known
    boundary = rec.boundary
    fields: dict[str, Any] = {"start_date": _plain_date(boundary.start)}
    if isinstance(boundary, EndDatePattern):
        fields["end_date"] = _plain_date(boundary.end)
    elif isinstance(boundary, NumberedPattern):
        fields["count"] = int(boundary.number)
    return Recurrence(frequency=frequency, **pattern_fields(rec.pattern), **fields)


def to_occurrences(rows: Iterable[Any], window: tuple[datetime, datetime]) -> tuple[Occurrence, ...]:
    """Occurrence rows of one series → :class:`Occurrence` values inside ``window``, in start order.

    Moved instances (``Exception``) carry their current start and end and their original start as
    the recurrence id. A view also returns an instance that ends exactly at the window's start
    (ews.md §1.5); it is not inside the window, so it is left out.
    """
    out = []
    for row in rows:
        start, end = utc(row.start), utc(row.end)
        if end <= window[0] or start >= window[1]:
            continue
        original = utc(row.original_start) if row.original_start is not None else start
        out.append(Occurrence(recurrence_id=original, start=start, end=end))
    return tuple(sorted(out, key=lambda o: (o.start, o.recurrence_id)))


def _addresses(groups: Sequence[Any]) -> frozenset[str]:
    found = set()
    for group in groups:
        for attendee in group or ():
            mailbox = getattr(attendee, "mailbox", None)
            address = getattr(mailbox, "email_address", None)
            if address:
                found.add(str(address).lower())
    return frozenset(found)


def to_room_item(room: str, item: Any, occurrences: tuple[Occurrence, ...] = ()) -> RoomItem:
    """An exchangelib ``CalendarItem`` read with :data:`ITEM_FIELDS` → :class:`RoomItem`.

    :param room: the room key.
    :param item: the room's copy (a single meeting or a series master).
    :param occurrences: for a master, its instances inside the window (:func:`to_occurrences`).
    :raises ValueError: the item has no start or end (ews.md §4 trap 1: a time Exchange sent in a
        form exchangelib could not parse arrives as ``None``).
    """
    if item.start is None or item.end is None:
        raise ValueError(f"room {room!r}: item {item.id} has no start or end")
    if item.is_all_day:
        start = _all_day_bound(item.start, item._start_timezone, end=False)  # noqa: SLF001
        end = _all_day_bound(item.end, item._end_timezone or item._start_timezone, end=True)  # noqa: SLF001
    else:
        start, end = utc(item.start), utc(item.end)
    organiser = item.organizer
    recurrence = to_recurrence(item.recurrence) if item.type == MASTER else None
    deleted = tuple(utc(d.start) for d in item.deleted_occurrences or () if d.start is not None)
    return RoomItem(
        room=room,
        # Exchange 2010+ gives every calendar item a UID; the id is a stable stand-in if one lacks it.
        uid=item.uid or item.id,
        item_id=item.id,
        change_key=item.changekey,
        subject=item.subject or "",
        organiser=(organiser.email_address or "") if organiser is not None else "",
        organiser_name=(organiser.name or "") if organiser is not None else "",
        start=start,
        end=end,
        time_zone=iana_zone(item._start_timezone),  # noqa: SLF001 - exchangelib's name for StartTimeZone
        all_day=bool(item.is_all_day),
        private=item.sensitivity in {"Private", "Confidential"},
        cancelled=bool(item.is_cancelled),
        response=response_of(item.my_response_type),
        attendees=_addresses((item.required_attendees, item.optional_attendees, item.resources)),
        location=item.location or "",
        body=str(item.body or ""),
        body_is_html=isinstance(item.body, HTMLBody),
        recurrence=recurrence,
        occurrences=occurrences if recurrence is not None else (),
        deleted_occurrences=deleted if recurrence is not None else (),
        sequence=int(item.appointment_sequence_number or 0),
    )
