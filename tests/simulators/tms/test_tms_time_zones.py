"""``ConferenceTimeZoneRules`` on the wire: DST-aware series, echo as sent, rule faults (§4, §8.5)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tms_wire import NS, conference_xml, tms_time, weekly

EXT = "<ExternalSourceId>xesync:lab</ExternalSourceId><ExternalConferenceId>tz</ExternalConferenceId>"
MARCH = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)  # Monday 09:00 CET
OCTOBER = datetime(2027, 10, 18, 7, 0, tzinfo=UTC)  # Monday 09:00 CEST
TIME_ZONE_RULE_FAULT = -2147218259


def amsterdam(month_in: str = "3", week_in: str = "5") -> str:
    """The §8.5 example rule (W. Europe Standard Time)."""
    return (
        "<ConferenceTimeZoneRules><TimeZoneRule><ValidFrom>0001-01-01T00:00:00</ValidFrom>"
        "<Id>W. Europe Standard Time</Id><DisplayName>(UTC+01:00) Amsterdam</DisplayName>"
        "<BaseOffsetInMinutes>60</BaseOffsetInMinutes><Daylight><ChangeSecondAtDay>7200</ChangeSecondAtDay>"
        f"<RelativeRule><Month>{month_in}</Month><DayOfTheWeek>0</DayOfTheWeek>"
        f"<WeekOfTheMonthIndex>{week_in}</WeekOfTheMonthIndex></RelativeRule></Daylight>"
        "<DaylightOffsetInMinutes>60</DaylightOffsetInMinutes><Standard><ChangeSecondAtDay>10800</ChangeSecondAtDay>"
        "<RelativeRule><Month>10</Month><DayOfTheWeek>0</DayOfTheWeek><WeekOfTheMonthIndex>5</WeekOfTheMonthIndex>"
        "</RelativeRule></Standard></TimeZoneRule></ConferenceTimeZoneRules>"
    )


def save(client, start, rules, *, version=22, count=5):
    body = conference_xml(key="tz", start=start, pattern=weekly(count, day="Monday"))
    body = body.replace("</Participants>", "</Participants>" + rules)
    return client.call("SaveConferenceWithMode", body + "<BookingMode>Strict</BookingMode>", version=version)


def occurrence_start(client, rid, *, version=22):
    found = client.call(
        "GetConferenceIdByExternalId", f"{EXT}<RecurrenceIdUTC>{tms_time(rid)}</RecurrenceIdUTC>"
    )
    conf_id = found.value("tns:GetConferenceIdByExternalIdResult")
    conf = client.call("GetConferenceById", f"<ConferenceId>{conf_id}</ConferenceId>", version=version)
    return conf.find("tns:GetConferenceByIdResult")


def test_series_keeps_local_start_across_the_march_dst_change(tms):
    """Monday 09:00 Amsterdam: 08:00Z until the last Sunday of March, then 07:00Z (UTC start shifts)."""
    client = tms.client
    assert save(client, MARCH, amsterdam()).status == 200
    for week, hour in [(0, 8), (3, 8), (4, 7)]:
        rid = MARCH + timedelta(weeks=week)
        rid = rid.replace(hour=hour)
        conf = occurrence_start(client, rid)
        assert conf is not None
        assert conf.find(f"{{{NS}}}StartTimeUTC").text == tms_time(rid)
        assert conf.find(f"{{{NS}}}EndTimeUTC").text == tms_time(rid + timedelta(hours=1))


def test_series_keeps_local_start_across_the_october_dst_change(tms12):
    """Monday 09:00 Amsterdam: 07:00Z until the last Sunday of October, then 08:00Z."""
    client = tms12.client
    assert save(client, OCTOBER, amsterdam(), count=3).status == 200
    starts = [OCTOBER, OCTOBER + timedelta(weeks=1), OCTOBER + timedelta(weeks=2, hours=1)]
    for rid in starts:
        conf = occurrence_start(client, rid)
        assert conf.find(f"{{{NS}}}RecurrenceInstanceIdUTC").text == tms_time(rid)


def test_rules_are_returned_as_sent_in_get_conference_responses(tms12):
    """GetRecurrentConferenceById and an occurrence's GetConferenceById echo the rules as sent."""
    client = tms12.client
    saved = save(client, MARCH, amsterdam())
    series_id = saved.value("tns:SaveConferenceWithModeResult/tns:Conference/tns:ConferenceId")
    series = client.call("GetRecurrentConferenceById", f"<ConferenceId>{series_id}</ConferenceId>")
    conf = series.find("tns:GetRecurrentConferenceByIdResult")
    names = [child.tag.split("}")[1] for child in conf]
    assert names.index("ConferenceLanguage") + 1 == names.index("ConferenceTimeZoneRules")
    assert names.index("ConferenceTimeZoneRules") + 1 == names.index("ConferenceState")
    rule = conf.find(f"{{{NS}}}ConferenceTimeZoneRules/{{{NS}}}TimeZoneRule")
    assert rule.findtext(f"{{{NS}}}Id") == "W. Europe Standard Time"
    assert rule.findtext(f"{{{NS}}}Daylight/{{{NS}}}RelativeRule/{{{NS}}}WeekOfTheMonthIndex") == "5"
    assert rule.findtext(f"{{{NS}}}Standard/{{{NS}}}ChangeSecondAtDay") == "10800"
    one = occurrence_start(client, MARCH)
    assert one.find(f"{{{NS}}}ConferenceTimeZoneRules/{{{NS}}}TimeZoneRule/{{{NS}}}Id") is not None


def test_offsets_only_rules_give_no_dst_shift(tms12):
    """A rule with only Id and offsets keeps the UTC start (no DST); it is echoed with just those fields."""
    client = tms12.client
    rules = (
        "<ConferenceTimeZoneRules><TimeZoneRule><Id>W. Europe Standard Time</Id>"
        "<BaseOffsetInMinutes>60</BaseOffsetInMinutes><DaylightOffsetInMinutes>60</DaylightOffsetInMinutes>"
        "</TimeZoneRule></ConferenceTimeZoneRules>"
    )
    assert save(client, MARCH, rules).status == 200
    conf = occurrence_start(client, MARCH + timedelta(weeks=4))
    assert conf.find(f"{{{NS}}}StartTimeUTC").text == tms_time(MARCH + timedelta(weeks=4))
    rule = conf.find(f"{{{NS}}}ConferenceTimeZoneRules/{{{NS}}}TimeZoneRule")
    assert [c.tag.split("}")[1] for c in rule] == ["Id", "BaseOffsetInMinutes", "DaylightOffsetInMinutes"]


def test_rule_violations_fault_with_the_configured_code(tms):
    """Month 13 or WeekOfTheMonthIndex 6 is a fault (code is the time_zone_rule knob); nothing is booked."""
    client = tms.client
    for rules in (amsterdam(month_in="13"), amsterdam(week_in="6")):
        result = save(client, MARCH, rules)
        assert result.fault_code == TIME_ZONE_RULE_FAULT
    missing = client.call(
        "GetConferenceIdByExternalId", f"{EXT}<RecurrenceIdUTC>{tms_time(MARCH)}</RecurrenceIdUTC>"
    )
    assert missing.fault_code is not None


def test_api_10_client_gets_server_rules_and_no_rules_element(tms12):
    """At API 10 the rules are ignored for expansion (a UTC server's rules) and filtered from responses."""
    tms12.sim.set_knobs({"server_time_zone": "UTC"})
    client = tms12.client
    assert save(client, MARCH, amsterdam(), version=10).status == 200
    conf = occurrence_start(client, MARCH + timedelta(weeks=4), version=10)
    assert conf.find(f"{{{NS}}}StartTimeUTC").text == tms_time(MARCH + timedelta(weeks=4))
    assert conf.find(f"{{{NS}}}ConferenceTimeZoneRules") is None
