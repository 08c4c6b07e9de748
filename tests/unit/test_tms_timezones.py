"""IANA zones as TMS TimeZoneRules: Windows ids and DST changes computed from zoneinfo (§8.5)."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from xesync.adapters.tms_timezones import (
    EARLIEST,
    Change,
    TimeZoneRule,
    UnknownTimeZoneError,
    time_zone_rules,
    windows_zone_id,
)


def test_oslo_is_the_spec_example_rule():
    """Europe/Oslo gives §8.5's W. Europe rule: +60, +60 DST, last Sunday of March 02:00 and October 03:00."""
    assert time_zone_rules("Europe/Oslo", 2027, 2028) == (
        TimeZoneRule(
            valid_from=EARLIEST,
            zone_id="W. Europe Standard Time",
            base_offset=60,
            daylight_offset=60,
            daylight=Change(second=7200, month=3, weekday=0, week=5),
            standard=Change(second=10800, month=10, weekday=0, week=5),
        ),
    )


def test_new_york_uses_second_and_first_sunday():
    """America/New_York changes on the second Sunday of March and the first Sunday of November at 02:00."""
    (rule,) = time_zone_rules("America/New_York", 2027, 2027)
    assert (rule.zone_id, rule.base_offset, rule.daylight_offset) == ("Eastern Standard Time", -300, 60)
    assert rule.daylight == Change(second=7200, month=3, weekday=0, week=2)
    assert rule.standard == Change(second=7200, month=11, weekday=0, week=1)


def test_southern_hemisphere_daylight_starts_in_october():
    """Australia/Sydney: daylight from the first Sunday of October, standard from the first of April."""
    (rule,) = time_zone_rules("Australia/Sydney", 2027, 2027)
    assert (rule.base_offset, rule.daylight_offset) == (600, 60)
    assert rule.daylight == Change(second=7200, month=10, weekday=0, week=1)
    assert rule.standard == Change(second=10800, month=4, weekday=0, week=1)


def test_dublin_winter_daylight_comes_out_as_windows_has_it():
    """Europe/Dublin (IANA's negative DST) is GMT Standard Time: base 0, daylight +60 in summer."""
    (rule,) = time_zone_rules("Europe/Dublin", 2027, 2027)
    assert (rule.zone_id, rule.base_offset, rule.daylight_offset) == ("GMT Standard Time", 0, 60)
    assert rule.daylight is not None
    assert rule.daylight.month == 3


def test_zone_without_dst_has_no_changes():
    """Asia/Tokyo has one rule with no Daylight or Standard change."""
    assert time_zone_rules("Asia/Tokyo", 2027, 2030) == (
        TimeZoneRule(valid_from=EARLIEST, zone_id="Tokyo Standard Time", base_offset=540),
    )


def test_a_year_that_changes_the_rules_gets_its_own_rules():
    """Europe/Moscow dropped DST in 2011: a DST rule until then, then rules without DST from 2011."""
    rules = time_zone_rules("Europe/Moscow", 2010, 2012)
    assert rules[0].valid_from == EARLIEST
    assert rules[0].daylight is not None
    assert all(r.daylight is None for r in rules[1:])
    assert rules[-1].base_offset == 240
    assert rules[-1].valid_from.startswith("2011-03-27")


def test_utc_and_unknown_cldr_names():
    """UTC maps to the Windows id UTC; an IANA zone the CLDR map lacks keeps its own name."""
    assert windows_zone_id("UTC") == "UTC"
    assert windows_zone_id("Europe/Oslo") == "W. Europe Standard Time"
    assert windows_zone_id("Not/AZone") == "Not/AZone"


def test_unknown_zone_raises():
    """A name zoneinfo does not know raises UnknownTimeZoneError."""
    with pytest.raises(UnknownTimeZoneError):
        time_zone_rules("Not/AZone", 2027, 2027)


def local_change(change: Change, year: int) -> datetime:
    """Where the Windows rule puts the change in ``year`` (floating local time)."""
    weekday = (change.weekday - 1) % 7
    days = [d for d in range(1, calendar.monthrange(year, change.month)[1] + 1)
            if calendar.weekday(year, change.month, d) == weekday]  # fmt: skip
    day = days[-1] if change.week == 5 else days[change.week - 1]
    return datetime(year, change.month, day, tzinfo=UTC) + timedelta(seconds=change.second)


@pytest.mark.parametrize("iana", ["Europe/Oslo", "America/New_York", "Australia/Sydney", "America/Santiago"])
def test_rule_reproduces_zoneinfo_offsets_for_every_hour_of_the_year(iana):
    """Applying the computed rule the Windows way gives zoneinfo's offset at every hour of 2027 and 2028."""
    (rule,) = time_zone_rules(iana, 2027, 2028)
    assert rule.daylight is not None
    assert rule.standard is not None
    tz = ZoneInfo(iana)
    base, dst = timedelta(minutes=rule.base_offset), timedelta(minutes=rule.daylight_offset)
    moment = datetime(2027, 1, 1, tzinfo=UTC)
    while moment < datetime(2029, 1, 1, tzinfo=UTC):
        naive = moment  # the rule's local times are floating, labelled UTC like the lab does
        begin = local_change(rule.daylight, moment.year) - base
        end = local_change(rule.standard, moment.year) - base - dst
        in_dst = begin <= naive < end if begin < end else not end <= naive < begin
        assert base + (dst if in_dst else timedelta(0)) == moment.astimezone(tz).utcoffset(), moment
        moment += timedelta(hours=1)
