"""``ConferenceTimeZoneRules`` (tms-booking-api.md §8.5): read, echo, check and apply ``TimeZoneRule``.

A rule is kept as the text the client sent, so that ``GetConference*`` returns it as sent; it is checked
(:func:`conference_zone`) only when a save uses it. The zone converts between UTC and the conference's
local wall-clock time, so that a series keeps its local start across a DST change (§4, API >= 11).
Local wall-clock times are carried as datetimes labelled UTC ("floating" times), so they compare and
add like the simulator's other times; only :class:`ConferenceZone` turns them into instants.

Windows semantics, as the §8.5 example (W. Europe) shows: ``Daylight`` changes at ``ChangeSecondAtDay``
of local standard time, ``Standard`` at that second of local daylight time; ``WeekOfTheMonthIndex`` 5 is
the last such weekday; ``DayOfTheWeek`` 0 is Sunday; ``DaylightOffsetInMinutes`` is added to the base
offset while daylight time is in force. A rule without ``Daylight``/``Standard`` (a client may send only
``Id`` and the offsets) has no DST.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from lxml import etree

from xesync.lab.tms.soap import children, first, text

RULE_FIELDS = ("ValidFrom", "Id", "DisplayName", "BaseOffsetInMinutes")
MAX_OFFSET_MIN = 14 * 60  # UTC-14:00 .. UTC+14:00: the simulator's bound for a sane offset
SECONDS_PER_DAY = 86400
LAST_WEEK = 5


class TimeZoneError(ValueError):
    """A ``TimeZoneRule`` that breaks the rules of §8.5."""


@dataclass(slots=True, frozen=True)
class Change:
    """A ``Daylight`` or ``Standard`` element, as sent (text, ``None`` where absent)."""

    change_second: str | None = None
    month: str | None = None
    day_of_week: str | None = None
    week_index: str | None = None


@dataclass(slots=True, frozen=True)
class TimeZoneRule:
    """One ``TimeZoneRule``, as sent (text, ``None`` where absent)."""

    valid_from: str | None = None
    zone_id: str | None = None
    display_name: str | None = None
    base_offset: str | None = None
    daylight: Change | None = None
    daylight_offset: str | None = None
    standard: Change | None = None


def parse_rules(element: etree._Element) -> list[TimeZoneRule]:
    """Read ``ConferenceTimeZoneRules``; nothing is checked here (see :func:`conference_zone`)."""
    return [
        TimeZoneRule(
            valid_from=text(rule, "ValidFrom"),
            zone_id=text(rule, "Id"),
            display_name=text(rule, "DisplayName"),
            base_offset=text(rule, "BaseOffsetInMinutes"),
            daylight=_parse_change(first(rule, "Daylight")),
            daylight_offset=text(rule, "DaylightOffsetInMinutes"),
            standard=_parse_change(first(rule, "Standard")),
        )
        for rule in children(element, "TimeZoneRule")
    ]


def _parse_change(element: etree._Element | None) -> Change | None:
    if element is None:
        return None
    relative = first(element, "RelativeRule")
    return Change(
        change_second=text(element, "ChangeSecondAtDay"),
        month=None if relative is None else text(relative, "Month"),
        day_of_week=None if relative is None else text(relative, "DayOfTheWeek"),
        week_index=None if relative is None else text(relative, "WeekOfTheMonthIndex"),
    )


def render_rules(parent: etree._Element, ns: str, rules: list[TimeZoneRule]) -> None:
    """Append ``ConferenceTimeZoneRules`` in §8.5 order, with only the elements the client sent."""

    def add(into: etree._Element, name: str, value: str | None) -> None:
        if value is not None:
            etree.SubElement(into, f"{{{ns}}}{name}").text = value

    wrapper = etree.SubElement(parent, f"{{{ns}}}ConferenceTimeZoneRules")
    for rule in rules:
        el = etree.SubElement(wrapper, f"{{{ns}}}TimeZoneRule")
        for name, value in zip(
            RULE_FIELDS, (rule.valid_from, rule.zone_id, rule.display_name, rule.base_offset), strict=True
        ):
            add(el, name, value)
        if rule.daylight is not None:
            _render_change(el, ns, "Daylight", rule.daylight)
        add(el, "DaylightOffsetInMinutes", rule.daylight_offset)
        if rule.standard is not None:
            _render_change(el, ns, "Standard", rule.standard)


def _render_change(parent: etree._Element, ns: str, name: str, change: Change) -> None:
    el = etree.SubElement(parent, f"{{{ns}}}{name}")
    if change.change_second is not None:
        etree.SubElement(el, f"{{{ns}}}ChangeSecondAtDay").text = change.change_second
    if (change.month, change.day_of_week, change.week_index) != (None, None, None):
        relative = etree.SubElement(el, f"{{{ns}}}RelativeRule")
        for tag, value in (
            ("Month", change.month),
            ("DayOfTheWeek", change.day_of_week),
            ("WeekOfTheMonthIndex", change.week_index),
        ):
            if value is not None:
                etree.SubElement(relative, f"{{{ns}}}{tag}").text = value


# ---------------------------------------------------------------------------------- server zones


def _windows_zone(
    zone_id: str, display: str, base: int, daylight: tuple[int, int, int], standard: tuple[int, int, int]
) -> TimeZoneRule:
    """A Windows zone with DST as a whole rule: ``daylight``/``standard`` = (second, month, week)."""

    def change(second: int, month: int, week: int) -> Change:
        return Change(change_second=str(second), month=str(month), day_of_week="0", week_index=str(week))

    return TimeZoneRule(
        valid_from="0001-01-01T00:00:00",
        zone_id=zone_id,
        display_name=display,
        base_offset=str(base),
        daylight=change(*daylight),
        daylight_offset="60",
        standard=change(*standard),
    )


# The TMS server's own zone, which a conference saved without ConferenceTimeZoneRules gets (the
# ``server_time_zone`` knob). The W. Europe rule is the §8.5 example; the others are Windows' rules.
SERVER_ZONES: dict[str, TimeZoneRule] = {
    "W. Europe Standard Time": _windows_zone(
        "W. Europe Standard Time",
        "(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna",
        60,
        (7200, 3, LAST_WEEK),
        (10800, 10, LAST_WEEK),
    ),
    "GMT Standard Time": _windows_zone(
        "GMT Standard Time",
        "(UTC+00:00) Dublin, Edinburgh, Lisbon, London",
        0,
        (3600, 3, LAST_WEEK),
        (7200, 10, LAST_WEEK),
    ),
    "Eastern Standard Time": _windows_zone(
        "Eastern Standard Time", "(UTC-05:00) Eastern Time (US & Canada)", -300, (7200, 3, 2), (7200, 11, 1)
    ),
    # Windows' UTC zone has no DST, so its rule has no Daylight/Standard (a Month 0 rule would not
    # survive a client's read-modify-save through the §8.5 checks).
    "UTC": TimeZoneRule(
        valid_from="0001-01-01T00:00:00",
        zone_id="UTC",
        display_name="(UTC) Coordinated Universal Time",
        base_offset="0",
        daylight_offset="0",
    ),
}


def server_rules(zone_id: str) -> list[TimeZoneRule]:
    """The ``ConferenceTimeZoneRules`` of the TMS server's zone."""
    return [SERVER_ZONES[zone_id]]


# ---------------------------------------------------------------------------------- checked zone


@dataclass(slots=True, frozen=True)
class Transition:
    """A checked change: at ``second`` of the ``week``-th (5 = last) ``weekday`` (0 = Sunday) of ``month``."""

    second: int
    month: int
    weekday: int
    week: int

    def local_at(self, year: int) -> datetime:
        """The local wall-clock moment of the change in ``year``."""
        python_weekday = (self.weekday - 1) % 7  # calendar: Monday = 0; TMS: Sunday = 0
        days = [
            d
            for d in range(1, calendar.monthrange(year, self.month)[1] + 1)
            if calendar.weekday(year, self.month, d) == python_weekday
        ]
        day = days[-1] if self.week == LAST_WEEK else days[self.week - 1]
        return datetime(year, self.month, day, tzinfo=UTC) + timedelta(seconds=self.second)


@dataclass(slots=True, frozen=True)
class Zone:
    """A checked rule: a base offset and, optionally, DST between two transitions."""

    valid_from: datetime
    base: timedelta
    dst: timedelta = timedelta(0)
    daylight: Transition | None = None
    standard: Transition | None = None

    def offset(self, utc: datetime) -> timedelta:
        """The UTC offset in force at the UTC instant ``utc``."""
        if self.daylight is None or self.standard is None or not self.dst:
            return self.base
        utc = utc.astimezone(UTC)
        begin = self.daylight.local_at(utc.year) - self.base
        end = self.standard.local_at(utc.year) - self.base - self.dst
        in_dst = begin <= utc < end if begin < end else not end <= utc < begin
        return self.base + self.dst if in_dst else self.base


class ConferenceZone:
    """The conference's time zone: the rule valid at a moment, by ``ValidFrom``."""

    def __init__(self, zones: list[Zone]) -> None:
        self.zones = sorted(zones, key=lambda z: z.valid_from)

    def _zone(self, moment: datetime) -> Zone:
        valid = [z for z in self.zones if z.valid_from <= moment]
        return valid[-1] if valid else self.zones[0]

    def to_local(self, utc: datetime) -> datetime:
        """The local wall-clock time of the UTC instant ``utc``."""
        utc = utc.astimezone(UTC)
        return utc + self._zone(utc).offset(utc)

    def to_utc(self, local: datetime) -> datetime:
        """The UTC instant of a local wall-clock time.

        An ambiguous time (the hour repeated when DST ends) is taken in daylight time, the earlier
        instant; a time skipped when DST begins is moved forward by the DST offset (as Windows does).
        """
        zone = self._zone(local)
        daylight = local - zone.base - zone.dst
        if zone.dst and self.to_local(daylight) == local:
            return daylight
        return local - zone.base


def conference_zone(rules: list[TimeZoneRule]) -> ConferenceZone | None:
    """The checked zone of ``rules`` (``None`` for no rules).

    :raises TimeZoneError: naming the first rule violation.
    """
    return ConferenceZone([_check(rule) for rule in rules]) if rules else None


def _int(raw: str | None, name: str, low: int, high: int) -> int:
    try:
        value = int((raw or "").strip())
    except ValueError:
        raise TimeZoneError(f"{name} must be an integer, not {raw!r}.") from None
    if not low <= value <= high:
        raise TimeZoneError(f"{name} must be between {low} and {high}, not {value}.")
    return value


def _check(rule: TimeZoneRule) -> Zone:
    if rule.base_offset is None:
        raise TimeZoneError("A TimeZoneRule needs BaseOffsetInMinutes.")
    base = _int(rule.base_offset, "BaseOffsetInMinutes", -MAX_OFFSET_MIN, MAX_OFFSET_MIN)
    dst = 0
    if rule.daylight_offset is not None:
        dst = _int(rule.daylight_offset, "DaylightOffsetInMinutes", -MAX_OFFSET_MIN, MAX_OFFSET_MIN)
    valid_from = datetime.min.replace(tzinfo=UTC)
    if rule.valid_from:
        try:
            valid_from = datetime.fromisoformat(rule.valid_from.strip().removesuffix("Z"))
        except ValueError:
            raise TimeZoneError(f"ValidFrom must be an xs:dateTime, not {rule.valid_from!r}.") from None
        valid_from = valid_from.replace(tzinfo=UTC)
    if (rule.daylight is None) != (rule.standard is None):
        raise TimeZoneError("A TimeZoneRule needs both Daylight and Standard, or neither.")
    daylight = _transition(rule.daylight, "Daylight")
    standard = _transition(rule.standard, "Standard")
    return Zone(valid_from, timedelta(minutes=base), timedelta(minutes=dst), daylight, standard)


def _transition(change: Change | None, name: str) -> Transition | None:
    if change is None:
        return None
    return Transition(
        second=_int(change.change_second, f"{name}/ChangeSecondAtDay", 0, SECONDS_PER_DAY - 1),
        month=_int(change.month, f"{name}/RelativeRule/Month", 1, 12),
        weekday=_int(change.day_of_week, f"{name}/RelativeRule/DayOfTheWeek", 0, 6),
        week=_int(change.week_index, f"{name}/RelativeRule/WeekOfTheMonthIndex", 1, LAST_WEEK),
    )
