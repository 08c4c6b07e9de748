"""When a booking's licence checks are due: its sittings, expanded from the request TMS was sent.

A **sitting** is one time a meeting's call runs: a single meeting, or one occurrence of a series
(keyed by its recurrence id, the original start in UTC, as :mod:`xesync.model` defines
*occurrence*). The licence checker (:mod:`xesync.licence_service`) checks sittings, not bookings.

Decision: the occurrences are **computed** from the :class:`~xesync.meetings.ConferenceRequest`
stored with the booking (pattern, range, ``occurrence_limit`` and exceptions), not asked of TMS.
TMS expands a series the same way from the same request (tms-booking-api.md §4: in the
conference's local time zone, so a 09:00 series stays at 09:00 local across a DST change), the
answer costs no TMS request per scheduling pass, and the schedule still works while TMS is down. The
price is that a series TMS expanded differently is checked at the times xesync sent; the verdict
then says ``call_not_found``, which names the discrepancy instead of hiding it.

Pure: no I/O, no clock; every time is handed in.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from xesync.meetings import ConferenceRequest, Frequency, Recurrence
from xesync.model import Booking, as_utc

MAX_PERIODS = 5000  # days, weeks, months or years walked at most: a bound for a malformed pattern


@dataclass(frozen=True, slots=True, kw_only=True)
class Sitting:
    """One time a meeting's call runs.

    :ivar uid: the meeting's UID.
    :ivar occurrence: the recurrence id (UTC), ``None`` for a single meeting.
    :ivar start: when it starts (UTC), moved occurrences at their new time.
    :ivar end: when it ends (UTC).
    """

    uid: str
    occurrence: datetime | None
    start: datetime
    end: datetime

    @property
    def key(self) -> tuple[str, datetime | None]:
        """``(uid, occurrence)``."""
        return (self.uid, self.occurrence)

    @property
    def minutes(self) -> float:
        """How long it lasts, in minutes."""
        return (self.end - self.start).total_seconds() / 60


def sittings(booking: Booking, *, since: datetime, until: datetime) -> list[Sitting]:
    """The booking's sittings that end at or after ``since`` and start at or before ``until``, by start."""
    since, until = as_utc(since, "since"), as_utc(until, "until")
    found = [s for s in _all(booking, until) if s.end >= since and s.start <= until]
    return sorted(found, key=lambda s: (s.start, s.occurrence or s.start))


def _all(booking: Booking, until: datetime) -> Iterator[Sitting]:
    request = booking.request
    if request is None or request.recurrence is None or booking.occurrence is not None:
        # A single meeting, or an occurrence booked on its own: the booking's own times.
        yield Sitting(uid=booking.uid, occurrence=booking.occurrence, start=booking.start, end=booking.end)
        return
    yield from _series(booking.uid, request, request.recurrence, until)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _series(uid: str, request: ConferenceRequest, rec: Recurrence, until: datetime) -> Iterator[Sitting]:
    zone = _zone(request.time_zone)
    first = request.start.astimezone(zone)
    length = request.end - request.start
    at = first.timetz().replace(tzinfo=None)
    changes = {c.recurrence_id: c for c in request.exceptions}
    limit = min(x for x in (rec.count, request.occurrence_limit, 10**6) if x is not None)
    made = 0
    for day in _dates(rec, first.date()):
        if made >= limit or (rec.end_date is not None and day > rec.end_date):
            return
        original = _local(day, at, zone)
        made += 1
        # Past the window (and past every exception, which may move an occurrence into it): done.
        if original > until + timedelta(days=1) and all(k < original for k in changes):
            return
        change = changes.get(original)
        if change is not None and change.cancelled:
            continue
        start = change.start if change is not None and change.start is not None else original
        end = change.end if change is not None and change.end is not None else start + length
        yield Sitting(uid=uid, occurrence=original, start=start, end=end)


def _local(day: date, at: time, zone: ZoneInfo) -> datetime:
    # Local wall-clock time on that day, so the series keeps its local time across DST changes.
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def _dates(rec: Recurrence, first: date) -> Iterator[date]:
    start = max(rec.start_date, first) if rec.start_date else first
    interval = max(1, rec.interval)
    if rec.frequency is Frequency.DAILY:
        for k in range(MAX_PERIODS):
            yield start + timedelta(days=k * interval)
    elif rec.frequency is Frequency.WEEKLY:
        yield from _weekly(rec, start, interval)
    else:
        step = interval if rec.frequency is Frequency.MONTHLY else 12 * interval
        month0 = start.year * 12 + start.month - 1
        if rec.frequency is Frequency.YEARLY and rec.month is not None:
            month0 = start.year * 12 + rec.month - 1
            if month0 < start.year * 12 + start.month - 1:
                month0 += 12
        for k in range(MAX_PERIODS):
            year, month = divmod(month0 + k * step, 12)
            for day in _in_month(rec, year, month + 1, start):
                if day >= start:
                    yield day


def _weekly(rec: Recurrence, start: date, interval: int) -> Iterator[date]:
    fdow = rec.first_day_of_week or 1
    week0 = start - timedelta(days=(start.isoweekday() - fdow) % 7)
    days = sorted(set(rec.weekdays or (start.isoweekday(),)), key=lambda d: (d - fdow) % 7)
    for k in range(MAX_PERIODS):
        week = week0 + timedelta(weeks=k * interval)
        for weekday in days:
            day = week + timedelta(days=(weekday - fdow) % 7)
            if day >= start:
                yield day


def _in_month(rec: Recurrence, year: int, month: int, start: date) -> list[date]:
    last = calendar.monthrange(year, month)[1]
    if rec.week_of_month is None:
        # Absolute: the day of the month, the month's last day when it is shorter.
        wanted = rec.day_of_month or start.day
        return [date(year, month, min(wanted, last))]
    # Relative: the n-th (or last) day of the month that is one of the weekdays.
    weekdays = set(rec.weekdays or (start.isoweekday(),))
    matching = [
        date(year, month, d) for d in range(1, last + 1) if date(year, month, d).isoweekday() in weekdays
    ]
    if not matching:
        return []
    if rec.week_of_month < 0:
        return [matching[-1]]
    index = rec.week_of_month - 1
    return [matching[index]] if index < len(matching) else []
