"""Recurrence patterns: parse ``t:Recurrence``, write it back, and expand a series into occurrences.

Occurrences are computed in the series' own time zone (``StartTimeZone``), so a 09:00 weekly meeting in
``W. Europe Standard Time`` stays at 09:00 local across the DST change (``ews.md`` §4 trap 27).
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from xesync.lab.ews.xml import Element, fmt_date, local, parse_date, sub, t, text_of

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
WEEK_INDEX = ("First", "Second", "Third", "Fourth", "Last")
MONTHS = tuple(calendar.month_name)[1:]
PATTERNS = frozenset(
    {
        "DailyRecurrence",
        "WeeklyRecurrence",
        "AbsoluteMonthlyRecurrence",
        "RelativeMonthlyRecurrence",
        "AbsoluteYearlyRecurrence",
        "RelativeYearlyRecurrence",
    }
)
BOUNDARIES = frozenset({"NoEndRecurrence", "EndDateRecurrence", "NumberedRecurrence"})
# A series without an end is expanded this far at most (CalendarView windows are bounded anyway).
NO_END_HORIZON_DAYS = 3 * 366
MAX_OCCURRENCES = 999


class RecurrenceError(ValueError):
    """A ``t:Recurrence`` the simulator cannot use."""


@dataclass(slots=True)
class Recurrence:
    """A pattern and a boundary, as EWS names them."""

    pattern: str
    interval: int = 1
    days_of_week: list[str] = field(default_factory=list)
    first_day_of_week: str = "Monday"
    day_of_month: int = 1
    week_index: str = "First"
    month: str = "January"
    boundary: str = "NoEndRecurrence"
    start_date: date = date(2000, 1, 1)
    end_date: date | None = None
    count: int | None = None


def zone(ms_id: str) -> ZoneInfo:
    """The IANA zone for a Windows zone id (exchangelib's own table), UTC when unknown."""
    from exchangelib.winzone import MS_TIMEZONE_TO_IANA_MAP  # noqa: PLC0415 - data table only

    iana = MS_TIMEZONE_TO_IANA_MAP.get(ms_id, ms_id)
    try:
        return ZoneInfo(str(iana))
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def parse_recurrence(el: Element) -> Recurrence:
    """Parse a ``t:Recurrence`` element.

    :raises RecurrenceError: on an unknown pattern or boundary, or bad values.
    """
    pattern_el = next((c for c in el if local(c) in PATTERNS), None)
    boundary_el = next((c for c in el if local(c) in BOUNDARIES), None)
    if pattern_el is None or boundary_el is None:
        raise RecurrenceError("Recurrence needs a supported pattern and a boundary")
    try:
        rec = Recurrence(pattern=local(pattern_el), boundary=local(boundary_el))
        rec.interval = int(text_of(pattern_el, "Interval", "1") or "1")
        days = text_of(pattern_el, "DaysOfWeek")
        rec.days_of_week = days.split() if days else []
        rec.first_day_of_week = text_of(pattern_el, "FirstDayOfWeek", "Monday") or "Monday"
        rec.day_of_month = int(text_of(pattern_el, "DayOfMonth", "1") or "1")
        rec.week_index = text_of(pattern_el, "DayOfWeekIndex", "First") or "First"
        rec.month = text_of(pattern_el, "Month", "January") or "January"
        start = parse_date(text_of(boundary_el, "StartDate"))
        if start is None:
            raise RecurrenceError("recurrence boundary needs a StartDate")
        rec.start_date = start
        rec.end_date = parse_date(text_of(boundary_el, "EndDate"))
        count = text_of(boundary_el, "NumberOfOccurrences")
        rec.count = int(count) if count else None
    except ValueError as exc:
        raise RecurrenceError(str(exc)) from None
    if rec.interval < 1 or (rec.boundary == "NumberedRecurrence" and not rec.count):
        raise RecurrenceError("bad Interval or NumberOfOccurrences")
    if rec.boundary == "EndDateRecurrence" and rec.end_date is None:
        raise RecurrenceError("EndDateRecurrence needs an EndDate")
    return rec


def write_recurrence(parent: Element, rec: Recurrence) -> Element:
    """Append ``t:Recurrence`` for ``rec``."""
    el = sub(parent, t("Recurrence"))
    p = sub(el, t(rec.pattern))
    if rec.pattern == "RelativeYearlyRecurrence":
        sub(p, t("DaysOfWeek"), " ".join(rec.days_of_week))
        sub(p, t("DayOfWeekIndex"), rec.week_index)
        sub(p, t("Month"), rec.month)
    elif rec.pattern == "AbsoluteYearlyRecurrence":
        sub(p, t("DayOfMonth"), str(rec.day_of_month))
        sub(p, t("Month"), rec.month)
    else:
        sub(p, t("Interval"), str(rec.interval))
        if rec.pattern == "WeeklyRecurrence":
            sub(p, t("DaysOfWeek"), " ".join(rec.days_of_week))
            sub(p, t("FirstDayOfWeek"), rec.first_day_of_week)
        elif rec.pattern == "AbsoluteMonthlyRecurrence":
            sub(p, t("DayOfMonth"), str(rec.day_of_month))
        elif rec.pattern == "RelativeMonthlyRecurrence":
            sub(p, t("DaysOfWeek"), " ".join(rec.days_of_week))
            sub(p, t("DayOfWeekIndex"), rec.week_index)
    b = sub(el, t(rec.boundary))
    sub(b, t("StartDate"), fmt_date(rec.start_date))
    if rec.boundary == "EndDateRecurrence" and rec.end_date is not None:
        sub(b, t("EndDate"), fmt_date(rec.end_date))
    if rec.boundary == "NumberedRecurrence":
        sub(b, t("NumberOfOccurrences"), str(rec.count))
    return el


def _weekday_set(days: list[str]) -> set[int]:
    out: set[int] = set()
    for d in days:
        if d in WEEKDAYS:
            out.add(WEEKDAYS.index(d))
        elif d == "Day":
            out.update(range(7))
        elif d == "Weekday":
            out.update(range(5))
        elif d == "WeekendDay":
            out.update({5, 6})
    return out


def _nth_weekday(year: int, month: int, days: set[int], index: str) -> date | None:
    last = calendar.monthrange(year, month)[1]
    matches = [date(year, month, d) for d in range(1, last + 1) if date(year, month, d).weekday() in days]
    if not matches:
        return None
    if index == "Last":
        return matches[-1]
    pos = WEEK_INDEX.index(index) if index in WEEK_INDEX else 0
    return matches[pos] if pos < len(matches) else None


def _add_months(d: date, months: int) -> tuple[int, int]:
    total = d.year * 12 + d.month - 1 + months
    return total // 12, total % 12 + 1


def _month_index(name: str) -> int:
    return MONTHS.index(name) + 1 if name in MONTHS else 1


def pattern_dates(rec: Recurrence, until: date) -> Iterator[date]:
    """Dates matching the pattern from ``start_date`` up to ``until`` (inclusive), in order."""
    start = rec.start_date
    if rec.pattern == "DailyRecurrence":
        d = start
        while d <= until:
            yield d
            d += timedelta(days=rec.interval)
    elif rec.pattern == "WeeklyRecurrence":
        days = _weekday_set(rec.days_of_week) or {start.weekday()}
        fdow = WEEKDAYS.index(rec.first_day_of_week) if rec.first_day_of_week in WEEKDAYS else 0
        week_start = start - timedelta(days=(start.weekday() - fdow) % 7)
        while week_start <= until:
            for offset in range(7):
                d = week_start + timedelta(days=offset)
                if d.weekday() in days and start <= d <= until:
                    yield d
            week_start += timedelta(weeks=rec.interval)
    elif rec.pattern in {"AbsoluteMonthlyRecurrence", "RelativeMonthlyRecurrence"}:
        k = 0
        while True:
            year, month = _add_months(start, k * rec.interval)
            if date(year, month, 1) > until:
                return
            if rec.pattern == "AbsoluteMonthlyRecurrence":
                m_day: date | None = date(
                    year, month, min(rec.day_of_month, calendar.monthrange(year, month)[1])
                )
            else:
                m_day = _nth_weekday(year, month, _weekday_set(rec.days_of_week), rec.week_index)
            if m_day is not None and start <= m_day <= until:
                yield m_day
            k += 1
    else:  # yearly
        month = _month_index(rec.month)
        year = start.year
        while date(year, month, 1) <= until:
            if rec.pattern == "AbsoluteYearlyRecurrence":
                y_day: date | None = date(
                    year, month, min(rec.day_of_month, calendar.monthrange(year, month)[1])
                )
            else:
                y_day = _nth_weekday(year, month, _weekday_set(rec.days_of_week), rec.week_index)
            if y_day is not None and start <= y_day <= until:
                yield y_day
            year += 1


def series_starts(
    rec: Recurrence, first_start: datetime, tz_id: str, until: datetime | None = None
) -> list[datetime]:
    """Original starts (UTC) of every occurrence, in order, keeping the local time of ``first_start``.

    :param until: stop after this instant (for series without an end).
    """
    tz = zone(tz_id)
    local_start = first_start.astimezone(tz)
    horizon = rec.start_date + timedelta(days=NO_END_HORIZON_DAYS)
    if rec.boundary == "EndDateRecurrence" and rec.end_date is not None:
        horizon = rec.end_date
    if until is not None and rec.boundary != "NumberedRecurrence":
        horizon = min(horizon, until.astimezone(tz).date())
    if rec.boundary == "NumberedRecurrence":
        horizon = rec.start_date + timedelta(days=366 * 100)
    out: list[datetime] = []
    limit = min(rec.count or MAX_OCCURRENCES, MAX_OCCURRENCES)
    for d in pattern_dates(rec, horizon):
        local = datetime.combine(d, local_start.time(), tzinfo=tz)
        out.append(local.astimezone(UTC))
        if len(out) >= limit:
            break
    return out
