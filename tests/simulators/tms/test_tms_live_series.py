"""Changing or deleting a series while one of its occurrences is live (tms-booking-api.md §11)."""

from __future__ import annotations

from datetime import timedelta

from tms_wire import NS, T0, conference_xml, tms_time, weekly

START = T0 + timedelta(hours=1)  # Tuesday 2026-12-01 09:00Z
EXT = "<ExternalSourceId>xesync:lab</ExternalSourceId><ExternalConferenceId>series</ExternalConferenceId>"
MEETINGNOTFOUND = -2147218302


def book_series(client, start=START, title="Weekly sync"):
    body = conference_xml(key="series", start=start, title=title, pattern=weekly(4))
    return client.call("SaveConferenceWithMode", body + "<BookingMode>Strict</BookingMode>")


def occurrence_id(client, rid):
    result = client.call(
        "GetConferenceIdByExternalId", f"{EXT}<RecurrenceIdUTC>{tms_time(rid)}</RecurrenceIdUTC>"
    )
    return None if result.fault_code else int(result.value("tns:GetConferenceIdByExternalIdResult"))


def conference(client, conf_id):
    return client.call("GetConferenceById", f"<ConferenceId>{conf_id}</ConferenceId>")


def last_transaction(client):
    result = client.call("GetTransactionsSince", "<CurrentTransactionId>0</CurrentTransactionId>")
    return int(
        result.findall("tns:GetTransactionsSinceResult/tns:Transaction")[-1].findtext(
            f"{{{NS}}}TransactionId"
        )
    )


def changes_since(client, since):
    result = client.call("GetTransactionsSince", f"<CurrentTransactionId>{since}</CurrentTransactionId>")
    return [
        (int(t.findtext(f"{{{NS}}}ConferenceId")), t.findtext(f"{{{NS}}}TransType"))
        for t in result.findall("tns:GetTransactionsSinceResult/tns:Transaction")
    ]


def live_in_week_one(tms):
    """Book 4 weekly sittings, then move the clock into the second one; returns (series id, old ids)."""
    saved = book_series(tms.client)
    series_id = int(saved.value("tns:SaveConferenceWithModeResult/tns:Conference/tns:ConferenceId"))
    ids = [occurrence_id(tms.client, START + timedelta(weeks=w)) for w in range(4)]
    tms.clock.advance(int((timedelta(weeks=1, hours=1, minutes=10)).total_seconds()))
    return series_id, ids


def test_modifying_a_series_detaches_the_live_occurrence_and_renumbers_pending_ones(tms):
    """A live modify keeps the past sitting, detaches the live one, and gives pending sittings new ids."""
    client = tms.client
    series_id, ids = live_in_week_one(tms)
    since = last_transaction(client)
    assert book_series(client, title="Renamed").status == 200
    past = conference(client, ids[0]).find("tns:GetConferenceByIdResult")
    assert past.findtext(f"{{{NS}}}StartTimeUTC") == tms_time(START)
    assert past.findtext(f"{{{NS}}}ConferenceState/{{{NS}}}Status") == "Finished"
    live = conference(client, ids[1]).find("tns:GetConferenceByIdResult")
    assert live.findtext(f"{{{NS}}}ConferenceState/{{{NS}}}Status") == "Ongoing"
    assert live.findtext(f"{{{NS}}}Title") == "Weekly sync"
    assert live.find(f"{{{NS}}}RecurrencePattern") is None
    assert live.find(f"{{{NS}}}RecurrenceInstanceIdUTC") is None
    assert live.findtext(f"{{{NS}}}DetachedFromExternalPrimaryKey") == "series"
    assert occurrence_id(client, START + timedelta(weeks=1)) is None  # conflicts with the live one: skipped
    pending = [occurrence_id(client, START + timedelta(weeks=w)) for w in (2, 3)]
    assert None not in pending
    assert not set(pending) & set(ids)
    assert conference(client, ids[2]).fault_code == MEETINGNOTFOUND
    renamed = conference(client, pending[0]).find("tns:GetConferenceByIdResult")
    assert renamed.findtext(f"{{{NS}}}Title") == "Renamed"
    assert changes_since(client, since) == [
        (ids[1], "Updated"),
        (series_id, "Updated"),
        (ids[2], "Deleted"),
        (ids[3], "Deleted"),
    ]


def test_moved_future_occurrences_that_overlap_the_live_one_are_skipped(tms12):
    """Moving the series 30 minutes later skips the sitting that would overlap the live one, not the rest."""
    client = tms12.client
    _, ids = live_in_week_one(tms12)
    moved = START + timedelta(minutes=30)
    assert book_series(client, start=moved).status == 200
    assert occurrence_id(client, moved + timedelta(weeks=1)) is None
    live = conference(client, ids[1]).find("tns:GetConferenceByIdResult")
    assert live.findtext(f"{{{NS}}}StartTimeUTC") == tms_time(START + timedelta(weeks=1))
    later = [occurrence_id(client, moved + timedelta(weeks=w)) for w in (2, 3)]
    assert None not in later
    assert occurrence_id(client, START) == ids[0]  # the past sitting is left as it was


def test_modifying_without_a_live_occurrence_keeps_pending_ids(tms12):
    """Before any sitting is live, a series edit keeps the occurrences' conference ids."""
    client = tms12.client
    book_series(client)
    ids = [occurrence_id(client, START + timedelta(weeks=w)) for w in range(4)]
    assert book_series(client, title="Renamed").status == 200
    assert [occurrence_id(client, START + timedelta(weeks=w)) for w in range(4)] == ids


def test_deleting_a_series_during_a_live_occurrence_ends_that_occurrence(tms):
    """DeleteConferenceById on the series ends the live sitting (Finished) and deletes the pending ones."""
    client = tms.client
    series_id, ids = live_in_week_one(tms)
    since = last_transaction(client)
    assert client.call("DeleteConferenceById", f"<ConferenceId>{series_id}</ConferenceId>").status == 200
    live = conference(client, ids[1]).find("tns:GetConferenceByIdResult")
    assert live.findtext(f"{{{NS}}}ConferenceState/{{{NS}}}Status") == "Finished"
    pending = conference(client, ids[2]).find("tns:GetConferenceByIdResult")
    assert pending.findtext(f"{{{NS}}}ConferenceState/{{{NS}}}Status") == "Deleted"
    assert changes_since(client, since) == [(ids[1], "Updated"), (series_id, "Deleted")]
    assert client.call("EndConferenceById", f"<ConferenceId>{ids[1]}</ConferenceId>").fault_code is not None
