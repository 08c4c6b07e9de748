"""IANA zones as TMS ``ConferenceTimeZoneRules`` (tms-booking-api.md §8.5): Windows id and DST rules.

TMS expands a recurrent conference in the conference's time zone when the client sends
``ConferenceTimeZoneRules`` (API >= 11, §4); without them it uses the *server's* zone and a weekly
09:00 Oslo meeting drifts by an hour across a DST change. xesync knows the meeting's IANA zone (from
EWS ``StartTimeZone``), so this module turns it into what TMS reads:

- the Windows zone id (``W. Europe Standard Time``), from exchangelib's CLDR map (``exchangelib.winzone``);
- one ``TimeZoneRule`` per stretch of years with the same rules, each with the base (standard) offset,
  the daylight offset and the two relative changes (month, weekday, week of the month, second of the
  day), computed from the zone's real transitions in :mod:`zoneinfo`, not from a table.

Windows semantics (the §8.5 example, W. Europe): ``Daylight`` changes at ``ChangeSecondAtDay`` of local
*standard* time, ``Standard`` at that second of local *daylight* time; ``DayOfTheWeek`` 0 is Sunday;
``WeekOfTheMonthIndex`` 5 means the last such weekday. The base offset is the smaller of a year's two
offsets, so zones whose IANA rules call winter "daylight" (Europe/Dublin) still come out as Windows
has them (GMT Standard Time: base 0, daylight +60).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from exchangelib.winzone import IANA_TO_MS_TIMEZONE_MAP

LAST_WEEK = 5
_DAY = timedelta(days=1)
# ValidFrom of the first rule: .NET's DateTime.MinValue, as TMS itself sends it (§8.5, [observed]).
EARLIEST = "0001-01-01T00:00:00"


class UnknownTimeZoneError(ValueError):
    """The IANA zone name is not known to :mod:`zoneinfo`."""


@dataclass(frozen=True, slots=True)
class Change:
    """A yearly change: at ``second`` of the ``week``-th (5 = last) ``weekday`` (0 = Sunday) of ``month``."""

    second: int
    month: int
    weekday: int
    week: int


@dataclass(frozen=True, slots=True)
class TimeZoneRule:
    """One ``TimeZoneRule``: offsets in minutes; ``daylight``/``standard`` are ``None`` without DST.

    :ivar valid_from: the local date-time from which the rule applies, ``xs:dateTime`` text.
    """

    valid_from: str
    zone_id: str
    base_offset: int
    daylight_offset: int = 0
    daylight: Change | None = None
    standard: Change | None = None


def windows_zone_id(iana: str) -> str:
    """The Windows zone id of an IANA zone (``Europe/Oslo`` → ``W. Europe Standard Time``).

    A zone the CLDR map does not know keeps its IANA name: TMS reads the offsets and changes, and
    whether it checks ``Id`` against its own list is [unconfirmed] (tms-booking-api.md §8.5).
    """
    if iana.upper() in {"UTC", "ETC/UTC", "Z", "GMT", "ETC/GMT"}:
        return "UTC"
    found = IANA_TO_MS_TIMEZONE_MAP.get(iana)
    return str(found[0]) if found else iana


def zone(iana: str) -> ZoneInfo:
    """The :class:`ZoneInfo` for ``iana``.

    :raises UnknownTimeZoneError: the name is not an IANA zone.
    """
    try:
        return ZoneInfo(iana)
    except (ZoneInfoNotFoundError, ValueError):
        raise UnknownTimeZoneError(f"unknown time zone {iana!r}") from None


@lru_cache(maxsize=256)
def time_zone_rules(iana: str, first_year: int, last_year: int) -> tuple[TimeZoneRule, ...]:
    """The rules of ``iana`` for the years ``first_year`` … ``last_year``, equal neighbours merged.

    The first rule is valid from the beginning of time, so an occurrence before ``first_year`` still
    has a rule; later ones from 1 January of the year their rules begin.

    Remembered per arguments (the rules are immutable and every save of a zone's meetings asks for
    the same years): computing them walked each year's transitions, 6 % of the import's CPU (bench/).

    :raises UnknownTimeZoneError: the name is not an IANA zone.
    """
    tz = zone(iana)
    zone_id = windows_zone_id(iana)
    out: list[TimeZoneRule] = []
    for year in range(first_year, max(first_year, last_year) + 1):
        for rule in _year_rules(tz, zone_id, year):
            if out and _same(out[-1], rule):
                continue
            out.append(rule if out else _replace_valid_from(rule, EARLIEST))
    return tuple(out)


def _same(a: TimeZoneRule, b: TimeZoneRule) -> bool:
    return (a.base_offset, a.daylight_offset, a.daylight, a.standard) == (
        b.base_offset,
        b.daylight_offset,
        b.daylight,
        b.standard,
    )


def _replace_valid_from(rule: TimeZoneRule, valid_from: str) -> TimeZoneRule:
    return TimeZoneRule(
        valid_from=valid_from,
        zone_id=rule.zone_id,
        base_offset=rule.base_offset,
        daylight_offset=rule.daylight_offset,
        daylight=rule.daylight,
        standard=rule.standard,
    )


def _offset_min(tz: ZoneInfo, utc: datetime) -> int:
    offset = utc.astimezone(tz).utcoffset() or timedelta(0)
    return int(offset.total_seconds() // 60)


def _transitions(tz: ZoneInfo, year: int) -> list[tuple[datetime, int, int]]:
    """``(instant, old offset, new offset)`` of each change whose local (old-offset) time is in ``year``."""
    out: list[tuple[datetime, int, int]] = []
    moment = datetime(year, 1, 1, tzinfo=UTC) - 2 * _DAY
    stop = datetime(year + 1, 1, 1, tzinfo=UTC) + 2 * _DAY
    before = _offset_min(tz, moment)
    while moment < stop:
        after_moment = moment + _DAY
        after = _offset_min(tz, after_moment)
        if after != before:
            low, high = moment, after_moment  # the change is in (low, high]: bisect to the second
            while high - low > timedelta(seconds=1):
                mid = low + (high - low) / 2
                if _offset_min(tz, mid) == before:
                    low = mid
                else:
                    high = mid
            instant = high.replace(microsecond=0)
            if (instant + timedelta(minutes=before)).year == year:
                out.append((instant, before, after))
        moment, before = after_moment, after
    return out


def _change(instant: datetime, old_offset: int) -> Change:
    local = (instant + timedelta(minutes=old_offset)).replace(tzinfo=None)
    days_in_month = calendar.monthrange(local.year, local.month)[1]
    # Windows counts "the last Sunday" as week 5 whatever the month's length, so the same rule holds
    # in years where that Sunday is the fourth.
    week = LAST_WEEK if local.day + 7 > days_in_month else (local.day - 1) // 7 + 1
    return Change(
        second=local.hour * 3600 + local.minute * 60 + local.second,
        month=local.month,
        weekday=(local.weekday() + 1) % 7,  # Python: Monday = 0; TMS: Sunday = 0
        week=week,
    )


def _year_rules(tz: ZoneInfo, zone_id: str, year: int) -> list[TimeZoneRule]:
    valid_from = f"{year:04d}-01-01T00:00:00"
    changes = _transitions(tz, year)
    if not changes:
        base = _offset_min(tz, datetime(year, 7, 1, tzinfo=UTC))
        return [TimeZoneRule(valid_from=valid_from, zone_id=zone_id, base_offset=base)]
    offsets = {changes[0][1], *(new for _, _, new in changes)}
    regular = len(changes) == 2 and len(offsets) == 2 and changes[0][1] == changes[1][2]  # noqa: PLR2004
    if regular:
        low, high = min(offsets), max(offsets)
        to_daylight = next(c for c in changes if c[2] == high)
        to_standard = next(c for c in changes if c[2] == low)
        return [
            TimeZoneRule(
                valid_from=valid_from,
                zone_id=zone_id,
                base_offset=low,
                daylight_offset=high - low,
                daylight=_change(to_daylight[0], to_daylight[1]),
                standard=_change(to_standard[0], to_standard[1]),
            )
        ]
    # A year in which the zone changed its base offset (or DST for good): one rule without DST per
    # stretch of constant offset, each valid from the local moment it begins.
    rules = [TimeZoneRule(valid_from=valid_from, zone_id=zone_id, base_offset=changes[0][1])]
    for instant, _, new in changes:
        local = (instant + timedelta(minutes=new)).replace(tzinfo=None)
        rules.append(
            TimeZoneRule(valid_from=local.isoformat(timespec="seconds"), zone_id=zone_id, base_offset=new)
        )
    return rules
