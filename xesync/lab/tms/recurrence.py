"""TMS recurrence: ``RecurrencePattern`` in and out, and its expansion into occurrences.

spec: tms-booking-api.md §4, §8.5: with ``ConferenceTimeZoneRules`` (API >= 11) a series is expanded
in the conference's local time (:mod:`xesync.lab.tms.timezones`), so each occurrence keeps its local
wall-clock start across a DST change and its UTC start shifts by the DST offset. ``DayOfWeek`` values
are in UTC (API >= 8); the simulator maps them to local days by the first occurrence's day shift.
Without rules (or for a client at API <= 10) TMS applies the *server's* rules; the lab's server zone
is UTC, so the series is expanded in UTC.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from lxml import etree

from xesync.lab.tms.soap import children, first, text
from xesync.lab.tms.timezones import ConferenceZone
from xesync.lab.tms.values import fmt_time, parse_time

DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
FREQUENCIES = (
    "Daily",
    "DailyWeekday",
    "Weekly",
    "Monthly",
    "Yearly",
    "Secondly",
    "Minutely",
    "Hourly",
    "Default",
)
END_TYPES = ("EndByDate", "EndByInstances", "EndNever", "Default")
# TMSBA limitation (§11): more than this many occurrences is declined.
MAX_OCCURRENCES = 100


class RecurrenceError(ValueError):
    """A pattern TMS declines; ``kind`` is ``never_ending``, ``too_many``, ``unsupported`` or ``invalid``."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


@dataclass(slots=True, frozen=True)
class PatternException:
    """One ``RecurrenceException``: ``ADD``, ``MODIFY`` or ``DELETE`` of the occurrence ``recurrence_id``."""

    kind: str
    recurrence_id: datetime
    start: datetime | None = None
    end: datetime | None = None
    title: str | None = None


@dataclass(slots=True)
class Pattern:
    """A ``RecurrencePattern`` (§8.3)."""

    frequency: str = "Weekly"
    interval: int = 1
    days: list[str] = field(default_factory=list)
    first_day: str = "Monday"
    by_set_position: int = 0
    by_month_day: int | None = None
    end_type: str = "Default"
    end_date: datetime | None = None
    instances: int = 0
    exceptions: list[PatternException] = field(default_factory=list)

    def starts(self, first_start: datetime, zone: ConferenceZone | None = None) -> list[datetime]:
        """The UTC occurrence starts of the series whose first occurrence starts at ``first_start``.

        With ``zone`` the series is expanded in local wall-clock time (see the module docstring).

        :raises RecurrenceError: for a never-ending series, more than 100 occurrences, or an
            unsupported frequency (Yearly, Secondly, Minutely, Hourly).
        """
        if zone is None:
            return self._starts(first_start, self.end_date, self.days)
        local = zone.to_local(first_start)
        shift = (local.date() - first_start.date()).days
        days = [DAYS[(DAYS.index(d) + shift) % 7] if d in DAYS else d for d in self.days]
        end_date = zone.to_local(self.end_date) if self.end_date is not None else None
        return [zone.to_utc(s) for s in self._starts(local, end_date, days)]

    def _starts(self, first_start: datetime, end_date: datetime | None, days: list[str]) -> list[datetime]:
        end_type = self.end_type
        if end_type == "Default":
            end_type = "EndByInstances" if self.instances > 0 else "EndByDate" if end_date else "EndNever"
        if end_type == "EndNever" or (end_type == "EndByDate" and end_date is None):
            raise RecurrenceError("never_ending", "Recurrent conferences without an end are not supported.")
        if end_type == "EndByInstances" and self.instances <= 0:
            raise RecurrenceError("invalid", "PatternInstances must be positive.")
        if self.frequency in ("Yearly", "Secondly", "Minutely", "Hourly"):
            raise RecurrenceError("unsupported", f"{self.frequency} recurrence is not supported.")
        if self.frequency not in FREQUENCIES or self.interval < 1:
            raise RecurrenceError("invalid", "Invalid recurrence pattern.")
        out: list[datetime] = []
        limit = self.instances if end_type == "EndByInstances" else None
        last_day = end_date.date() if end_type == "EndByDate" and end_date else None
        for start in self._candidates(first_start, days):
            if last_day is not None and start.date() > last_day:
                break
            out.append(start)
            if limit is not None and len(out) >= limit:
                break
            if len(out) > MAX_OCCURRENCES:
                raise RecurrenceError("too_many", "A series may have at most 100 occurrences.")
        if limit is not None and limit > MAX_OCCURRENCES:
            raise RecurrenceError("too_many", "A series may have at most 100 occurrences.")
        return out

    def _candidates(self, first_start: datetime, days: list[str]) -> list[datetime]:
        # Enough candidates for 101 occurrences over any supported frequency, in order.
        freq = "Daily" if self.frequency == "Default" else self.frequency
        found: list[datetime] = []
        horizon = 102
        if freq == "Daily":
            found = [first_start + timedelta(days=i * self.interval) for i in range(horizon)]
        elif freq == "DailyWeekday":
            day = first_start
            while len(found) < horizon:
                if day.weekday() < 5:  # noqa: PLR2004 - Monday..Friday
                    found.append(day)
                day += timedelta(days=1)
        elif freq == "Weekly":
            wanted = {DAYS.index(d) for d in days if d in DAYS} or {first_start.weekday()}
            week_start = first_start - timedelta(
                days=(first_start.weekday() - DAYS.index(self.first_day)) % 7
            )
            week = 0
            while len(found) < horizon and week < horizon * 7:
                base = week_start + timedelta(weeks=week * self.interval)
                for offset in range(7):
                    day = base + timedelta(days=offset)
                    if day.weekday() in wanted and day >= first_start:
                        found.append(day)
                week += 1
        else:  # Monthly
            for i in range(horizon * 2):
                month0 = first_start.month - 1 + i * self.interval
                year, month = first_start.year + month0 // 12, month0 % 12 + 1
                sitting = self._monthly_day(first_start, year, month, days)
                if sitting is not None and sitting >= first_start:
                    found.append(sitting)
                if len(found) >= horizon:
                    break
        return found

    def _monthly_day(self, first_start: datetime, year: int, month: int, days: list[str]) -> datetime | None:
        days_in = calendar.monthrange(year, month)[1]
        if self.by_set_position == 0:
            # BySetPosition 0 = the meeting's (or ByMonthDay's) day of month; skipped when too short.
            dom = self.by_month_day or first_start.day
            return first_start.replace(year=year, month=month, day=dom) if dom <= days_in else None
        weekday = DAYS.index(days[0]) if days and days[0] in DAYS else first_start.weekday()
        matches = [d for d in range(1, days_in + 1) if calendar.weekday(year, month, d) == weekday]
        pos = self.by_set_position
        if pos > len(matches) or pos < -len(matches):
            return None
        dom = matches[pos - 1] if pos > 0 else matches[pos]
        return first_start.replace(year=year, month=month, day=dom)


def parse_pattern(element: etree._Element) -> Pattern:
    """Read a ``RecurrencePattern`` element.

    :raises RecurrenceError: on values that do not parse.
    """
    try:
        pattern = Pattern(
            frequency=text(element, "FrequencyType") or "Default",
            interval=int(text(element, "Interval") or "1"),
            first_day=text(element, "FirstDayOfWeek") or "Monday",
            by_set_position=int(text(element, "BySetPosition") or "0"),
            end_type=text(element, "PatternEndType") or "Default",
            instances=int(text(element, "PatternInstances") or "0"),
        )
        by_month_day = text(element, "ByMonthDay")
        pattern.by_month_day = int(by_month_day) if by_month_day else None
        end_date = text(element, "PatternEndDateUTC")
        pattern.end_date = parse_time(end_date) if end_date else None
    except ValueError as exc:
        raise RecurrenceError("invalid", f"Invalid recurrence pattern: {exc}") from None
    days = first(element, "DaysOfWeek")
    if days is not None:
        pattern.days = [(d.text or "").strip() for d in children(days, "DayOfWeek")]
    exceptions = first(element, "Exceptions")
    if exceptions is not None:
        pattern.exceptions = [_parse_exception(e) for e in children(exceptions, "RecurrenceException")]
    return pattern


def _parse_exception(element: etree._Element) -> PatternException:
    kind = (text(element, "ExceptionType") or "").upper()
    rid = text(element, "RecurrenceIdUTC")
    if kind not in ("ADD", "MODIFY", "DELETE") or not rid:
        raise RecurrenceError("invalid", "A RecurrenceException needs ExceptionType and RecurrenceIdUTC.")
    try:
        recurrence_id = parse_time(rid)
        data = first(element, "ModifiedData")
        start = end = None
        title = None
        if data is not None:
            raw_start, raw_end = text(data, "StartTimeUTC"), text(data, "EndTimeUTC")
            start = parse_time(raw_start) if raw_start else None
            end = parse_time(raw_end) if raw_end else None
            title = text(data, "Title")
    except ValueError as exc:
        raise RecurrenceError("invalid", f"Invalid recurrence exception: {exc}") from None
    return PatternException(kind=kind, recurrence_id=recurrence_id, start=start, end=end, title=title)


def render_pattern(parent: etree._Element, ns: str, pattern: Pattern, first_rid: datetime | None) -> None:
    """Append ``RecurrencePattern`` in §8.3 order (``ByMonthDay`` only when set)."""
    el = etree.SubElement(parent, f"{{{ns}}}RecurrencePattern")

    def add(name: str, value: str) -> etree._Element:
        child = etree.SubElement(el, f"{{{ns}}}{name}")
        child.text = value
        return child

    add("FrequencyType", pattern.frequency)
    add("Interval", str(pattern.interval))
    days = etree.SubElement(el, f"{{{ns}}}DaysOfWeek")
    for day in pattern.days:
        etree.SubElement(days, f"{{{ns}}}DayOfWeek").text = day
    add("FirstDayOfWeek", pattern.first_day)
    add("BySetPosition", str(pattern.by_set_position))
    if pattern.by_month_day is not None:
        add("ByMonthDay", str(pattern.by_month_day))
    add("PatternEndType", pattern.end_type)
    if pattern.end_date is not None:
        add("PatternEndDateUTC", fmt_time(pattern.end_date))
    if first_rid is not None:
        add("FirstOccurrenceRecInstanceIdUTC", fmt_time(first_rid))
    add("PatternInstances", str(pattern.instances))
    exceptions = etree.SubElement(el, f"{{{ns}}}Exceptions")
    for exc in pattern.exceptions:
        item = etree.SubElement(exceptions, f"{{{ns}}}RecurrenceException")
        etree.SubElement(item, f"{{{ns}}}ExceptionType").text = exc.kind
        etree.SubElement(item, f"{{{ns}}}RecurrenceIdUTC").text = fmt_time(exc.recurrence_id)
        etree.SubElement(item, f"{{{ns}}}RecurrenceIdRange").text = "None"
        # spec: tms-booking-api.md §8.4: the ModifiedMask bits are [unconfirmed]; 0 is emitted.
        etree.SubElement(item, f"{{{ns}}}ModifiedMask").text = "0"
