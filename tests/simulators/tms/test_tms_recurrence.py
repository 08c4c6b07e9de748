"""Recurrent conferences: patterns, exceptions, instance operations and series limits (§6.3, §8.3, §11)."""

from __future__ import annotations

from datetime import timedelta

from tms_wire import NS, T0, conference_xml, tms_time, weekly

START = T0 + timedelta(hours=1)  # Tuesday 2026-12-01 09:00Z
EXT = "<ExternalSourceId>xesync:lab</ExternalSourceId><ExternalConferenceId>series</ExternalConferenceId>"


def book_series(client, pattern=None, **kw):
    body = conference_xml(key="series", start=START, pattern=pattern or weekly(4), **kw)
    return client.call("SaveConferenceWithMode", body + "<BookingMode>Strict</BookingMode>")


def occurrence_id(client, week):
    rid = tms_time(START + timedelta(weeks=week))
    result = client.call("GetConferenceIdByExternalId", f"{EXT}<RecurrenceIdUTC>{rid}</RecurrenceIdUTC>")
    return int(result.value("tns:GetConferenceIdByExternalIdResult"))


def test_series_is_saved_with_pattern_and_per_occurrence_ids(tms):
    """A weekly series of 4 has its pattern in GetRecurrentConferenceById and one id per occurrence."""
    client = tms.client
    saved = book_series(client)
    assert saved.status == 200
    series_id = saved.value("tns:SaveConferenceWithModeResult/tns:Conference/tns:ConferenceId")
    series = client.call("GetRecurrentConferenceById", f"<ConferenceId>{series_id}</ConferenceId>")
    pattern = series.find("tns:GetRecurrentConferenceByIdResult/tns:RecurrencePattern")
    assert pattern.find(f"{{{NS}}}FrequencyType").text == "Weekly"
    assert pattern.find(f"{{{NS}}}PatternInstances").text == "4"
    ids = [occurrence_id(client, w) for w in range(4)]
    assert len(set(ids)) == 4
    third = client.call("GetConferenceById", f"<ConferenceId>{ids[2]}</ConferenceId>")
    conf = third.find("tns:GetConferenceByIdResult")
    assert conf.find(f"{{{NS}}}StartTimeUTC").text == tms_time(START + timedelta(weeks=2))
    assert conf.find(f"{{{NS}}}RecurrenceInstanceIdUTC").text == tms_time(START + timedelta(weeks=2))
    assert conf.find(f"{{{NS}}}FirstOccurrenceRecInstanceIdUTC").text == tms_time(START)


def test_conflicts_are_checked_across_all_occurrences(tms):
    """A single meeting on the room in week 3 conflicts with the series, and vice versa."""
    client = tms.client
    book_series(client)
    clash = conference_xml(key="single", start=START + timedelta(weeks=2, minutes=30))
    result = client.call("SaveConferenceWithMode", clash + "<BookingMode>Strict</BookingMode>")
    assert result.fault_code == -2147218300
    free = conference_xml(key="single", start=START + timedelta(weeks=2, hours=2))
    assert client.call("SaveConferenceWithMode", free + "<BookingMode>Strict</BookingMode>").status == 200


def test_one_occurrence_is_moved_with_save_rec_instance(tms):
    """SaveConferenceRecInstance moves one occurrence, recorded as a MODIFY exception of the series."""
    client = tms.client
    book_series(client)
    second = occurrence_id(client, 1)
    moved = START + timedelta(weeks=1, hours=3)
    body = conference_xml(conference_id=second, key=None, start=moved, title="Moved")
    result = client.call("SaveConferenceRecInstance", body)
    assert result.status == 200
    conf = result.find("tns:SaveConferenceRecInstanceResult")
    assert conf.find(f"{{{NS}}}StartTimeUTC").text == tms_time(moved)
    assert conf.find(f"{{{NS}}}RecurrenceInstanceType").text == "modify"
    series = client.call("GetConferenceByExternalId", EXT)
    exc = series.find(
        "tns:GetConferenceByExternalIdResult/tns:RecurrencePattern/tns:Exceptions/tns:RecurrenceException"
    )
    assert exc.find(f"{{{NS}}}ExceptionType").text == "MODIFY"
    assert exc.find(f"{{{NS}}}RecurrenceIdUTC").text == tms_time(START + timedelta(weeks=1))


def test_with_mode_instance_save_and_instance_lookup_by_external_id(tms):
    """SaveConferenceRecInstanceWithMode takes the external key plus RecurrenceInstanceIdUTC."""
    client = tms.client
    book_series(client)
    rid = START + timedelta(weeks=3)
    body = conference_xml(
        key="series", instance=rid, start=rid + timedelta(minutes=15), end=rid + timedelta(minutes=75)
    )
    result = client.call("SaveConferenceRecInstanceWithMode", body + "<BookingMode>Strict</BookingMode>")
    assert result.status == 200
    got = client.call(
        "GetConferenceInstanceByExternalId", f"{EXT}<RecurrenceIdUTC>{tms_time(rid)}</RecurrenceIdUTC>"
    )
    assert got.value("tns:GetConferenceInstanceByExternalIdResult/tns:StartTimeUTC") == tms_time(
        rid + timedelta(minutes=15)
    )
    missing = client.call(
        "GetConferenceInstanceByExternalId",
        f"{EXT}<RecurrenceIdUTC>{tms_time(rid + timedelta(days=1))}</RecurrenceIdUTC>",
    )
    assert missing.fault_code == -2147218252


def test_one_occurrence_is_deleted_and_the_series_shows_the_exception(tms):
    """DeleteConferenceRecInstanceById removes one occurrence; the series keeps the others."""
    client = tms.client
    series_id = book_series(client).value("tns:SaveConferenceWithModeResult/tns:Conference/tns:ConferenceId")
    third = occurrence_id(client, 2)
    assert (
        client.call("DeleteConferenceRecInstanceById", f"<ConferenceId>{third}</ConferenceId>").status == 200
    )
    series = client.call("GetRecurrentConferenceById", f"<ConferenceId>{series_id}</ConferenceId>")
    kinds = [e.text for e in series.findall(".//tns:RecurrenceException/tns:ExceptionType")]
    assert kinds == ["DELETE"]
    # The freed slot can be booked by someone else now.
    single = conference_xml(key="single", start=START + timedelta(weeks=2))
    assert client.call("SaveConferenceWithMode", single + "<BookingMode>Strict</BookingMode>").status == 200


def test_instance_delete_by_external_id_accepts_both_spellings(tms):
    """DeleteConferenceInstanceByExternalId and the guide's DeleteConferenceInstanceByExternaId both work."""
    client = tms.client
    book_series(client)
    for week, op in ((1, "DeleteConferenceInstanceByExternalId"), (2, "DeleteConferenceInstanceByExternaId")):
        rid = tms_time(START + timedelta(weeks=week))
        assert client.call(op, f"{EXT}<RecurrenceIdUTC>{rid}</RecurrenceIdUTC>").status == 200
    series = client.call("GetConferenceByExternalId", EXT)
    assert len(series.findall(".//tns:RecurrenceException")) == 2


def test_pattern_exceptions_in_a_save_skip_occurrences(tms):
    """A DELETE exception sent with the pattern leaves that occurrence out of the listings."""
    client = tms.client
    pattern = weekly(3).replace(
        "</RecurrencePattern>",
        "<Exceptions><RecurrenceException><ExceptionType>DELETE</ExceptionType>"
        f"<RecurrenceIdUTC>{tms_time(START + timedelta(weeks=1))}"
        "</RecurrenceIdUTC><RecurrenceIdRange>None</RecurrenceIdRange><ModifiedMask>0</ModifiedMask></RecurrenceException>"
        "</Exceptions></RecurrencePattern>",
    )
    body = conference_xml(key="series", start=START, pattern=pattern)
    assert client.call("SaveConference", body).status == 200
    until = (T0 + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%S")
    window = f"<StartTime>{T0.strftime('%Y-%m-%dT%H:%M:%S')}</StartTime><EndTime>{until}</EndTime>"
    listed = client.call(
        "GetConferencesForSystems",
        f"<SystemIds>11</SystemIds>{window}<ConferenceStatus>AllExceptDeleted</ConferenceStatus>",
    )
    starts = [
        c.find(f"{{{NS}}}StartTimeUTC").text
        for c in listed.findall("tns:GetConferencesForSystemsResult/tns:Conference")
    ]
    assert starts == [tms_time(START), tms_time(START + timedelta(weeks=2))]


def test_series_limits_return_their_codes(tms):
    """Never-ending, more than 100 occurrences and yearly series are declined with their codes."""
    client = tms.client
    never = book_series(client, weekly(None, end_type="EndNever"))
    assert never.fault_code == -2147218264
    too_many = book_series(client, weekly(101))
    assert too_many.fault_code == tms.sim.knobs.code("too_many_occurrences")
    yearly = book_series(client, weekly(3, frequency="Yearly"))
    assert yearly.fault_code == tms.sim.knobs.code("yearly_recurrence")
    hundred = book_series(client, weekly(50, frequency="Daily"))
    assert hundred.status == 200


def test_series_beyond_the_booking_window_is_declined(tms12):
    """An occurrence after the booking window declines the whole series."""
    tms12.sim.control("knobs", "POST", {"booking_window_days": 14})
    result = book_series(tms12.client, weekly(4))
    assert result.fault_code == -2147218265


def test_end_by_external_id_ends_the_ongoing_occurrence(tms):
    """EndConferenceByExternalId with a RecurrenceIdUTC ends that sitting while it runs."""
    client = tms.client
    book_series(client)
    tms.clock.advance(3600 + 60)
    rid = tms_time(START)
    assert (
        client.call("EndConferenceByExternalId", f"{EXT}<RecurrenceIdUTC>{rid}</RecurrenceIdUTC>").status
        == 200
    )
    got = client.call("GetConferenceInstanceByExternalId", f"{EXT}<RecurrenceIdUTC>{rid}</RecurrenceIdUTC>")
    assert (
        got.value("tns:GetConferenceInstanceByExternalIdResult/tns:ConferenceState/tns:Status") == "Finished"
    )


def test_single_meeting_turned_into_a_series_keeps_its_id(tms12):
    """Saving a pattern onto a single meeting's key makes it a series with distinct occurrence ids."""
    client = tms12.client
    single = client.call("SaveConference", conference_xml(key="series", start=START))
    series_id = single.value("tns:SaveConferenceResult/tns:ConferenceId")
    result = book_series(client, weekly(3))
    assert result.value("tns:SaveConferenceWithModeResult/tns:Conference/tns:ConferenceId") == series_id
    ids = [occurrence_id(client, w) for w in range(3)]
    assert len({*ids, int(series_id)}) == 4
    shorter = book_series(client, weekly(2))
    assert shorter.status == 200
    gone = client.call("GetConferenceById", f"<ConferenceId>{ids[2]}</ConferenceId>")
    assert gone.fault_code == -2147218302
