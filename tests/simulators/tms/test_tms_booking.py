"""Booking operations in both SOAP versions: save, upsert, get, list, delete, end (§6, §7)."""

from __future__ import annotations

import re
from datetime import timedelta

from tms_wire import NS, SCHEMAS, T0, conference_xml, tms_time

SYSTEM_ALREADY_BOOKED = -2147218300
MEETINGNOTFOUND = -2147218302


def save(client, op="SaveConferenceWithMode", mode="Strict", **kw):
    body = conference_xml(**kw) + (f"<BookingMode>{mode}</BookingMode>" if op.endswith("WithMode") else "")
    return client.call(op, body)


def conf_of(result, op):
    base = f"tns:{op}Result"
    return result.find(f"{base}/tns:Conference") if op.endswith("WithMode") else result.find(base)


def field(conf, name):
    found = conf.find(f"{{{NS}}}{name}")
    return None if found is None else found.text


def test_save_conference_legacy_returns_the_conference_directly(tms):
    """SaveConference answers SaveConferenceResult with the Conference children directly (§12.2)."""
    result = save(tms.client, op="SaveConference")
    assert result.status == 200
    conf = result.find("tns:SaveConferenceResult")
    assert int(field(conf, "ConferenceId")) > 0
    assert field(conf, "OwnerUserName") == "LAB\\alice"
    assert field(conf, "StartTimeUTC") == tms_time(T0 + timedelta(hours=1))
    assert conf.find(f"{{{NS}}}ConferenceState/{{{NS}}}Status").text == "Pending"


def test_save_with_mode_wraps_a_conference_with_state_version_and_info(tms):
    """SaveConferenceWithMode answers …Result/Conference with Version, TransactionId and dial-in info."""
    result = save(tms.client)
    conf = conf_of(result, "SaveConferenceWithMode")
    conference_id = field(conf, "ConferenceId")
    pin = field(conf, "Password")
    info = field(conf, "ConferenceInfoText")
    assert re.search(r"\d+@video\.lab\.example", info)
    assert f"PIN: {pin}#" in info
    assert conference_id in info
    assert "Dial in" in field(conf, "ConferenceInfoHtml")
    assert int(field(conf, "Version")) > 0
    assert int(field(conf, "TransactionId")) > 0
    order = [c.tag.split("}")[1] for c in conf]
    assert (
        order.index("OwnerId")
        < order.index("ConferenceType")
        < order.index("Password")
        < order.index("ConferenceInfoText")
        < order.index("ExternalSourceId")
        < order.index("Participants")
        < order.index("ConferenceState")
        < order.index("Version")
        < order.index("TransactionId")
    )


def test_upsert_by_external_key_then_by_conference_id(tms):
    """Saving the same external key updates the conference; ConferenceId without a key updates too."""
    client = tms.client
    first = conf_of(save(client, title="One"), "SaveConferenceWithMode")
    conference_id = field(first, "ConferenceId")
    second = conf_of(
        save(client, title="Two", version=int(field(first, "Version"))), "SaveConferenceWithMode"
    )
    assert field(second, "ConferenceId") == conference_id
    assert field(second, "Title") == "Two"
    third = conf_of(
        save(
            client,
            conference_id=int(conference_id),
            key=None,
            title="Three",
            version=int(field(second, "Version")),
        ),
        "SaveConferenceWithMode",
    )
    assert field(third, "ConferenceId") == conference_id
    assert field(third, "Title") == "Three"
    missing = save(client, conference_id=999999, key=None)
    assert missing.fault_code == MEETINGNOTFOUND


def test_stale_version_is_refused(tms):
    """An update carrying a Version older than the stored one faults with the stale-version code."""
    client = tms.client
    first = conf_of(save(client), "SaveConferenceWithMode")
    old = int(field(first, "Version"))
    assert save(client, title="ok", version=old).status == 200
    stale = save(client, title="late", version=old)
    assert stale.status == 500
    assert stale.fault_code == tms.sim.knobs.code("stale_version")


def test_get_operations_find_the_conference(tms):
    """GetConferenceById, …ByExternalId and GetConferenceIdByExternalId return the saved conference."""
    client = tms.client
    conference_id = field(conf_of(save(client, key="k1"), "SaveConferenceWithMode"), "ConferenceId")
    by_id = client.call("GetConferenceById", f"<ConferenceId>{conference_id}</ConferenceId>")
    assert by_id.value("tns:GetConferenceByIdResult/tns:ExternalPrimaryKey") == "k1"
    ext = "<ExternalSourceId>xesync:lab</ExternalSourceId><ExternalConferenceId>k1</ExternalConferenceId>"
    by_ext = client.call("GetConferenceByExternalId", ext)
    assert by_ext.value("tns:GetConferenceByExternalIdResult/tns:ConferenceId") == conference_id
    id_only = client.call("GetConferenceIdByExternalId", ext)
    assert id_only.value("tns:GetConferenceIdByExternalIdResult") == conference_id
    missing = client.call("GetConferenceById", "<ConferenceId>424242</ConferenceId>")
    assert missing.fault_code == MEETINGNOTFOUND


def test_get_conferences_for_systems_and_for_user(tms):
    """Listings return summaries in the window, filtered by system, owner and status."""
    client = tms.client
    save(client, key="a", systems=(11,), owner="LAB\\alice")
    save(client, key="b", systems=(12,), owner="LAB\\bob")
    window = (
        f"<StartTime>{(T0).strftime('%Y-%m-%dT%H:%M:%S')}</StartTime>"
        f"<EndTime>{(T0 + timedelta(days=1)).strftime('%Y-%m-%dT%H:%M:%S')}</EndTime>"
    )
    systems = client.call(
        "GetConferencesForSystems",
        f"<SystemIds>11</SystemIds>{window}<ConferenceStatus>All</ConferenceStatus>",
    )
    found = systems.findall("tns:GetConferencesForSystemsResult/tns:Conference")
    assert [field(c, "ExternalPrimaryKey") for c in found] == ["a"]
    assert found[0].find(f"{{{NS}}}Participants") is None  # summaries only
    user = client.call(
        "GetConferencesForUser",
        f"<UserName>LAB\\bob</UserName>{window}<ConferenceStatus>Pending</ConferenceStatus>",
    )
    assert [
        field(c, "ExternalPrimaryKey") for c in user.findall("tns:GetConferencesForUserResult/tns:Conference")
    ] == ["b"]
    none = client.call(
        "GetConferencesForUser",
        f"<UserName>LAB\\bob</UserName>{window}<ConferenceStatus>Ongoing</ConferenceStatus>",
    )
    assert none.findall("tns:GetConferencesForUserResult/tns:Conference") == []


def test_conflict_strict_faults_and_best_effort_saves_defective(tms):
    """A busy room faults SYSTEM_ALREADY_BOOKED in Strict and saves Defective in BestEffortForced."""
    client = tms.client
    save(client, key="first")
    strict = save(client, key="second", start=T0 + timedelta(minutes=90))
    assert strict.fault_code == SYSTEM_ALREADY_BOOKED
    legacy = save(client, op="SaveConference", key="legacy", start=T0 + timedelta(minutes=90))
    assert legacy.fault_code == SYSTEM_ALREADY_BOOKED
    forced = conf_of(
        save(client, key="second", mode="BestEffortForced", start=T0 + timedelta(minutes=90)),
        "SaveConferenceWithMode",
    )
    assert forced.find(f"{{{NS}}}ConferenceState/{{{NS}}}Status").text == "Defective"
    # A defective conference holds no resources on an endpoint conflict (§7.2): the slot stays the first's.
    other_room = save(client, key="third", systems=(12,), start=T0 + timedelta(minutes=90))
    assert other_room.status == 200


def test_booking_limits_return_their_codes(tms):
    """End in the past, the booking window and unknown/unbookable systems fault with their codes."""
    client = tms.client
    past = save(client, key="p", start=T0 - timedelta(hours=2), end=T0 - timedelta(hours=1))
    assert past.fault_code == -2147218269
    far = save(client, key="f", start=T0 + timedelta(days=400))
    assert far.fault_code == -2147218265
    unknown = save(client, key="u", systems=(999,))
    assert unknown.fault_code == -2147218301
    tms.sim.control("systems", "POST", {"system_id": 77, "name": "Closet", "allow_bookings": False})
    closed = save(client, key="c", systems=(77,))
    assert closed.fault_code == -2147218262


def test_unknown_owner_is_auto_created_unless_disabled(tms):
    """Book-on-behalf creates an unknown owner (seen in GetUsers); without auto-create: ERR_USER_NOT_FOUND."""
    client = tms.client
    created = conf_of(
        save(client, key="e", owner="LAB\\erin", owner_email="erin@partner.example"), "SaveConferenceWithMode"
    )
    assert field(created, "OwnerUserName") == "LAB\\erin"
    users = client.call("GetUsers", service="remote")
    assert "LAB\\erin" in users.text
    tms.sim.control("knobs", "POST", {"auto_create_users": False})
    refused = save(client, key="z", owner="LAB\\zed", start=T0 + timedelta(hours=3))
    assert refused.fault_code == -2147218255
    known = save(client, key="k", owner="LAB\\carol", start=T0 + timedelta(hours=5))
    assert known.status == 200


def test_owner_resolves_by_email_when_no_user_name(tms12):
    """Without OwnerUserName the owner is found by OwnerEmailAddress."""
    conf = conf_of(save(tms12.client, owner=None, owner_email="bob@lab.example"), "SaveConferenceWithMode")
    assert field(conf, "OwnerUserName") == "LAB\\bob"


def test_state_follows_the_lab_clock_and_end_only_while_ongoing(tms):
    """Pending → Ongoing → Finished on the clock; EndConferenceById works only while ongoing."""
    client = tms.client
    conference_id = field(conf_of(save(client), "SaveConferenceWithMode"), "ConferenceId")

    def status():
        got = client.call("GetConferenceById", f"<ConferenceId>{conference_id}</ConferenceId>")
        return got.value("tns:GetConferenceByIdResult/tns:ConferenceState/tns:Status")

    assert status() == "Pending"
    early = client.call("EndConferenceById", f"<ConferenceId>{conference_id}</ConferenceId>")
    assert early.fault_code == -2147218272
    tms.clock.advance(3600 + 60)
    assert status() == "Ongoing"
    moved = save(client, start=T0 + timedelta(hours=1, minutes=30))
    assert moved.fault_code == -2147218270  # MEETINGACTIVE
    ended = client.call("EndConferenceById", f"<ConferenceId>{conference_id}</ConferenceId>")
    assert ended.status == 200
    assert ended.find("tns:EndConferenceByIdResult") is None
    assert status() == "Finished"
    changed = save(client, title="after")
    assert changed.fault_code == -2147218269


def test_delete_by_id_and_by_external_id(tms):
    """Deleting leaves the conference readable as Deleted; ending a deleted one is MEETINGISDELETED."""
    client = tms.client
    one = field(conf_of(save(client, key="d1"), "SaveConferenceWithMode"), "ConferenceId")
    save(client, key="d2", systems=(12,))
    assert client.call("DeleteConferenceById", f"<ConferenceId>{one}</ConferenceId>").status == 200
    got = client.call("GetConferenceById", f"<ConferenceId>{one}</ConferenceId>")
    assert got.value("tns:GetConferenceByIdResult/tns:ConferenceState/tns:Status") == "Deleted"
    assert client.call("EndConferenceById", f"<ConferenceId>{one}</ConferenceId>").fault_code == -2147218271
    ext = "<ExternalSourceId>xesync:lab</ExternalSourceId><ExternalConferenceId>d2</ExternalConferenceId>"
    assert client.call("DeleteConferenceByExternalId", ext, validate=False).status == 200
    assert client.call("GetConferenceIdByExternalId", ext).fault_code == MEETINGNOTFOUND
    # The slot is free again after the delete.
    assert save(client, key="d3").status == 200


def test_old_client_versions_get_only_wsdl_elements(tms12):
    """A client below API 14 gets the old WSDL's Conference (no ConferenceState, Version, TransactionId)."""
    client = tms12.client
    save(client, key="v")
    result = client.call("GetConferenceById", "<ConferenceId>1001</ConferenceId>", version=9)
    conf = result.find("tns:GetConferenceByIdResult")
    names = {c.tag.split("}")[1] for c in conf}
    assert "ConferenceId" in names
    assert not names & {"ConferenceState", "Version", "TransactionId", "ConferenceLanguage"}
    SCHEMAS["booking"].validate(result.body())


def test_save_conferences_is_all_or_nothing(tms):
    """SaveConferences saves every conference, or none when one of them faults."""
    client = tms.client
    two = (
        conference_xml(key="m1")
        .replace("<Conference>", "<Conferences>")
        .replace("</Conference>", "</Conferences>")
    )
    two += (
        conference_xml(key="m2", systems=(12,))
        .replace("<Conference>", "<Conferences>")
        .replace("</Conference>", "</Conferences>")
    )
    ok = client.call("SaveConferences", f"{two}<oneTransaction>true</oneTransaction>")
    assert len(ok.findall("tns:SaveConferencesResult/tns:Conference")) == 2
    clash = conference_xml(key="m3", systems=(13,)) + conference_xml(key="m4", systems=(11,))
    clash = clash.replace("<Conference>", "<Conferences>").replace("</Conference>", "</Conferences>")
    failed = client.call("SaveConferences", f"{clash}<oneTransaction>true</oneTransaction>")
    assert failed.fault_code == SYSTEM_ALREADY_BOOKED
    ext = "<ExternalSourceId>xesync:lab</ExternalSourceId><ExternalConferenceId>m3</ExternalConferenceId>"
    assert client.call("GetConferenceIdByExternalId", ext).fault_code == MEETINGNOTFOUND


def test_participant_without_id_is_ignored_as_asmx_does(tms12):
    """A TMS participant without ParticipantId still books (CAP leniency) and names no system."""
    body = conference_xml(systems=(11,)).replace("<ParticipantId>11</ParticipantId>", "")
    result = tms12.client.call(
        "SaveConferenceWithMode", body + "<BookingMode>Strict</BookingMode>", validate=False
    )
    assert result.status == 200
    assert (
        result.findall("tns:SaveConferenceWithModeResult/tns:Conference/tns:Participants/tns:Participant")
        == []
    )
