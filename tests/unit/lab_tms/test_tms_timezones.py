"""``ConferenceTimeZoneRules``: parsing, echo, checks and DST-aware expansion (tms-booking-api.md §8.5)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from lxml import etree

from xesync.lab.tms.recurrence import Pattern
from xesync.lab.tms.timezones import (
    Change,
    TimeZoneError,
    TimeZoneRule,
    conference_zone,
    parse_rules,
    render_rules,
)

NS = "http://tandberg.net/2004/02/tms/external/booking/"

AMSTERDAM_XML = f"""<ConferenceTimeZoneRules xmlns="{NS}"><TimeZoneRule>
  <ValidFrom>0001-01-01T00:00:00</ValidFrom><Id>W. Europe Standard Time</Id>
  <DisplayName>(UTC+01:00) Amsterdam</DisplayName><BaseOffsetInMinutes>60</BaseOffsetInMinutes>
  <Daylight><ChangeSecondAtDay>7200</ChangeSecondAtDay><RelativeRule><Month>3</Month>
    <DayOfTheWeek>0</DayOfTheWeek><WeekOfTheMonthIndex>5</WeekOfTheMonthIndex></RelativeRule></Daylight>
  <DaylightOffsetInMinutes>60</DaylightOffsetInMinutes>
  <Standard><ChangeSecondAtDay>10800</ChangeSecondAtDay><RelativeRule><Month>10</Month>
    <DayOfTheWeek>0</DayOfTheWeek><WeekOfTheMonthIndex>5</WeekOfTheMonthIndex></RelativeRule></Standard>
</TimeZoneRule></ConferenceTimeZoneRules>"""


def amsterdam() -> list[TimeZoneRule]:
    return parse_rules(etree.fromstring(AMSTERDAM_XML))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_amsterdam_weekly_series_keeps_local_time_across_both_dst_changes():
    """A Monday 09:00 Amsterdam series moves from 07:00Z to 08:00Z after 25 Oct and back after 28 Mar."""
    zone = conference_zone(amsterdam())
    pattern = Pattern(frequency="Weekly", days=["Monday"], end_type="EndByInstances", instances=25)
    starts = pattern.starts(utc(2026, 10, 19, 7, 0), zone)
    assert len(starts) == 25
    assert starts[0] == utc(2026, 10, 19, 7, 0)  # CEST, before the last Sunday of October
    assert starts[1] == utc(2026, 10, 26, 8, 0)  # CET from 25 October
    assert starts[22] == utc(2027, 3, 22, 8, 0)  # still CET
    assert starts[23] == utc(2027, 3, 29, 7, 0)  # CEST from 28 March
    assert {zone.to_local(s).hour for s in starts} == {9}  # type: ignore[union-attr]


def test_without_rules_the_series_is_expanded_in_utc():
    """Without a zone the same series keeps its UTC start, as with the server's (UTC) rules."""
    pattern = Pattern(frequency="Weekly", days=["Monday"], end_type="EndByInstances", instances=3)
    first = utc(2026, 10, 19, 7, 0)
    assert pattern.starts(first) == [first + timedelta(weeks=w) for w in range(3)]


def test_utc_days_of_week_map_to_local_days():
    """A Monday 00:30 Amsterdam meeting is Sunday 23:30Z; its UTC day Sunday still means local Monday."""
    zone = conference_zone(amsterdam())
    pattern = Pattern(frequency="Weekly", days=["Sunday"], end_type="EndByInstances", instances=2)
    starts = pattern.starts(utc(2026, 11, 29, 23, 30), zone)
    assert starts == [utc(2026, 11, 29, 23, 30), utc(2026, 12, 6, 23, 30)]


def test_offsets_only_rule_has_no_dst():
    """A rule with only Id and the offsets (no Daylight/Standard) applies the base offset all year."""
    zone = conference_zone([TimeZoneRule(zone_id="X", base_offset="60", daylight_offset="60")])
    assert zone is not None
    assert zone.to_local(utc(2027, 7, 1, 8, 0)) == utc(2027, 7, 1, 9, 0)
    assert zone.to_local(utc(2027, 1, 1, 8, 0)) == utc(2027, 1, 1, 9, 0)


def test_skipped_local_time_moves_forward_and_repeated_time_is_daylight():
    """02:30 on 28 Mar 2027 does not exist (→ 03:30 CEST); 02:30 on 31 Oct 2027 is taken as CEST."""
    zone = conference_zone(amsterdam())
    assert zone is not None
    assert zone.to_utc(utc(2027, 3, 28, 2, 30)) == utc(2027, 3, 28, 1, 30)
    assert zone.to_utc(utc(2027, 10, 31, 2, 30)) == utc(2027, 10, 31, 0, 30)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (Change("7200", "13", "0", "5"), "Month"),
        (Change("7200", "3", "0", "6"), "WeekOfTheMonthIndex"),
        (Change("7200", "3", "7", "5"), "DayOfTheWeek"),
        (Change("86400", "3", "0", "5"), "ChangeSecondAtDay"),
        (Change("x", "3", "0", "5"), "ChangeSecondAtDay"),
    ],
)
def test_rule_violations_are_refused(change, message):
    """An out-of-range or non-integer field of a transition raises TimeZoneError naming the field."""
    rule = amsterdam()[0]
    bad = TimeZoneRule(
        valid_from=rule.valid_from,
        zone_id=rule.zone_id,
        base_offset=rule.base_offset,
        daylight=change,
        daylight_offset=rule.daylight_offset,
        standard=rule.standard,
    )
    with pytest.raises(TimeZoneError, match=message):
        conference_zone([bad])


def test_daylight_without_standard_and_missing_base_offset_are_refused():
    """A rule needs BaseOffsetInMinutes, and Daylight and Standard together or not at all."""
    rule = amsterdam()[0]
    with pytest.raises(TimeZoneError, match="both"):
        conference_zone([TimeZoneRule(base_offset="60", daylight=rule.daylight, daylight_offset="60")])
    with pytest.raises(TimeZoneError, match="BaseOffsetInMinutes"):
        conference_zone([TimeZoneRule(zone_id="X")])


def test_rules_are_rendered_as_sent():
    """Rendering parsed rules gives back the same elements, in §8.5 order, and nothing more."""
    parent = etree.Element(f"{{{NS}}}Conference")
    render_rules(parent, NS, amsterdam())
    rule = parent[0][0]
    assert [etree.QName(c).localname for c in rule] == [
        "ValidFrom",
        "Id",
        "DisplayName",
        "BaseOffsetInMinutes",
        "Daylight",
        "DaylightOffsetInMinutes",
        "Standard",
    ]
    assert parse_rules(parent[0]) == amsterdam()
    sparse = etree.Element(f"{{{NS}}}Conference")
    render_rules(sparse, NS, [TimeZoneRule(zone_id="X", base_offset="0")])
    assert [etree.QName(c).localname for c in sparse[0][0]] == ["Id", "BaseOffsetInMinutes"]
