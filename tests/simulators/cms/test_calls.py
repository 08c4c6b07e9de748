"""Calls, legs, participants, profiles and bulk pools, driven the way TMS 15.x drives CMS (§2.4-2.8, §4.1)."""

from __future__ import annotations

import re

GUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def _pool(api, start=1, end=3):
    """Build a TMS pool as traced: profiles, a parameter set, a bulk sync polled to complete."""
    call_profile = api.create("/callProfiles", participantLimit="1000", messageBoardEnabled="false")
    leg_profile = api.create(
        "/callLegProfiles",
        defaultLayout="telepresence",
        changeLayoutAllowed="true",
        presentationContributionAllowed="true",
        presentationViewingAllowed="true",
        muteSelfAllowed="true",
        videoMuteSelfAllowed="true",
    )
    pset = api.create(
        "/cospaceBulkParameterSets",
        startIndex=str(start),
        endIndex=str(end),
        coSpaceNameMapping="TMS_Scheduled_Meeting_$index$",
        coSpaceUriMapping="",
        coSpaceCallIdMapping="",
        nonMemberAccess="false",
        callProfile=call_profile,
        callLegProfile=leg_profile,
    )
    response = api.post("/cospaceBulkSyncs", cospaceBulkParameterSet=pset)
    assert response.status_code == 200
    assert re.fullmatch(rf"/api/v1/cospaceBulkSyncs/{GUID}", response.headers["Location"])
    sync = response.headers["Location"].rsplit("/", 1)[1]
    statuses = [api.text(api.xml(f"/cospacebulksyncs/{sync}"), "status") for _ in range(3)]
    return pset, statuses


def test_bulk_sync_builds_the_tms_pool_and_is_polled_to_complete(api):
    """A bulk sync is pending, then complete, and made TMS_Scheduled_Meeting_<n> with no access."""
    _pset, statuses = _pool(api)
    assert statuses == ["pending", "complete", "complete"]
    pool = api.all("/coSpaces", filter="TMS_Scheduled_Meeting_")
    assert sorted(api.text(s, "name") for s in pool) == [f"TMS_Scheduled_Meeting_{n}" for n in (1, 2, 3)]
    detail = api.xml(f"/coSpaces/{pool[0].get('id')}")
    assert api.text(detail, "nonMemberAccess") == "false"
    assert detail.find("ownerJid") is None


def test_bulk_sync_reports_range_and_missing_set_failures(api):
    """A bulk sync reports failedIndexRangeInvalid and failedNoSuchParameterSet in its status."""
    pset = api.create(
        "/cospaceBulkParameterSets", startIndex="5", endIndex="2", coSpaceNameMapping="P$index$"
    )
    bad = api.create("/cospaceBulkSyncs", cospaceBulkParameterSet=pset)
    ghost = api.create("/cospaceBulkSyncs", cospaceBulkParameterSet="00000000-0000-0000-0000-000000000000")
    for sync in (bad, ghost):
        api.xml(f"/cospaceBulkSyncs/{sync}")  # the pending poll
    assert api.text(api.xml(f"/cospaceBulkSyncs/{bad}"), "status") == "failedIndexRangeInvalid"
    assert api.text(api.xml(f"/cospaceBulkSyncs/{ghost}"), "status") == "failedNoSuchParameterSet"


def test_bulk_sync_uri_conflict_applies_nothing(api):
    """A pool whose URIs clash with a space fails with failedCoSpaceUriConflict, creating nothing."""
    api.create("/coSpaces", name="squatter", uri="pool2")
    pset = api.create(
        "/cospaceBulkParameterSets", startIndex="1", endIndex="3", coSpaceUriMapping="pool$index$"
    )
    sync = api.create("/cospaceBulkSyncs", cospaceBulkParameterSet=pset)
    api.xml(f"/cospaceBulkSyncs/{sync}")
    assert api.text(api.xml(f"/cospaceBulkSyncs/{sync}"), "status") == "failedCoSpaceUriConflict"
    assert [api.text(s, "uri") for s in api.all("/coSpaces", filter="pool")] == ["pool2"]


def test_bulk_sync_remove_all_removes_the_pool(api):
    """removeAll=true deletes the parameter set's spaces."""
    pset, _ = _pool(api)
    api.create("/cospaceBulkSyncs", cospaceBulkParameterSet=pset, removeAll="true")
    assert api.all("/coSpaces", filter="TMS_Scheduled_Meeting_") == []


def test_tms_meeting_start_extend_end_sequence(api):
    """Rename the pool space, POST /calls coSpace=, dial legs, extend, reset and DELETE the call."""
    _pool(api)
    space = next(s for s in api.all("/coSpaces") if api.text(s, "name") == "TMS_Scheduled_Meeting_1").get(
        "id"
    )
    start = {
        "name": "Quarterly review",
        "nonMemberAccess": "true",
        "passcode": "4242",
        "secret": "guid-secret",
    }
    api.ok(api.put(f"/cospaces/{space}", **start))
    response = api.post("/calls", coSpace=space)
    assert response.status_code == 200
    assert response.content == b""
    assert re.fullmatch(rf"/api/v1/calls/{GUID}", response.headers["Location"])
    call = response.headers["Location"].rsplit("/", 1)[1]
    got = api.xml(f"/calls/{call}")
    assert (api.text(got, "name"), api.text(got, "coSpace")) == ("Quarterly review", space)
    assert re.fullmatch(GUID, api.text(got, "callCorrelator"))
    legs = []
    for room in ("sip:room-oslo@lab.example", "sip:room-bergen@lab.example"):
        response = api.post(f"/calls/{call}/calllegs", remoteParty=room)
        assert re.fullmatch(rf"/api/v1/callLegs/{GUID}", response.headers["Location"])
        legs.append(response.headers["Location"].rsplit("/", 1)[1])
    assert api.text(api.xml(f"/calls/{call}"), "numCallLegs") == "2"
    leg = api.xml(f"/callLegs/{legs[0]}")
    assert (api.text(leg, "remoteParty"), api.text(leg, "call")) == ("sip:room-oslo@lab.example", call)
    assert leg.find("status/state").text == "connected"
    assert [p.find("userJid") for p in api.all("/participants")] == [None, None]
    api.ok(api.put(f"/cospaces/{space}", **start))  # extend: the same fields again
    reset = {
        "name": "TMS_Scheduled_Meeting_1",
        "nonMemberAccess": "false",
        "regenerateSecret": "true",
        "passcode": "",
    }
    api.ok(api.put(f"/cospaces/{space}", **reset))
    api.ok(api.delete(f"/calls/{call}"))
    assert api.failure(api.get(f"/calls/{call}"))[:2] == (404, "callDoesNotExist")
    assert api.all("/callLegs") == []
    assert api.text(api.xml(f"/coSpaces/{space}"), "name") == "TMS_Scheduled_Meeting_1"


def test_call_owner_name_follows_the_scheduler_then_the_owner(api):
    """ownerName is meetingScheduler, else the owner's name (2.2+)."""
    by_owner = api.create("/coSpaces", name="Owned", ownerJid="alice@lab.example")
    by_scheduler = api.create(
        "/coSpaces", name="Sched", ownerJid="alice@lab.example", meetingScheduler="PA to Alice"
    )
    first = api.create("/calls", coSpace=by_owner)
    second = api.create("/calls", coSpace=by_scheduler)
    assert api.text(api.xml(f"/calls/{first}"), "ownerName") == "Alice Example"
    assert api.text(api.xml(f"/calls/{second}"), "ownerName") == "PA to Alice"


def test_call_list_fields_and_filters(api):
    """GET /calls items carry name, coSpace, callCorrelator; coSpaceFilter selects one space's call."""
    a = api.create("/coSpaces", name="A")
    b = api.create("/coSpaces", name="B")
    api.create("/calls", coSpace=a)
    call_b = api.create("/calls", coSpace=b)
    items = api.all("/calls", coSpaceFilter=b)
    assert [i.get("id") for i in items] == [call_b]
    assert [c.tag for c in items[0]] == ["name", "coSpace", "callCorrelator"]


def test_a_space_has_one_call(api):
    """POST /calls for a space that already has a call answers the running call."""
    space = api.create("/coSpaces", name="Once")
    assert api.create("/calls", coSpace=space) == api.create("/calls", coSpace=space)


def test_call_errors(api):
    """POST /calls with a missing space is 400 coSpaceDoesNotExist; with neither field, parameterError."""
    missing = "00000000-0000-0000-0000-000000000000"
    assert api.failure(api.post("/calls", coSpace=missing)) == (400, "coSpaceDoesNotExist", {})
    assert api.failure(api.post("/calls"))[:2] == (400, "parameterError")
    assert api.failure(api.post(f"/calls/{missing}/callLegs", remoteParty="sip:x@y"))[:2] == (
        404,
        "callDoesNotExist",
    )
    assert api.failure(api.delete(f"/calls/{missing}"))[:2] == (404, "callDoesNotExist")


def test_spaceless_call_and_flags(api):
    """name= alone makes a space-less call; PUT changes flags; activeWhenEmpty defaults to true."""
    call = api.create("/calls", name="Ad hoc", locked="true")
    got = api.xml(f"/calls/{call}")
    assert (api.text(got, "name"), api.text(got, "locked"), api.text(got, "activeWhenEmpty")) == (
        "Ad hoc",
        "true",
        "true",
    )
    api.ok(api.put(f"/calls/{call}", locked="false", messageText="Welcome"))
    got = api.xml(f"/calls/{call}")
    assert (api.text(got, "locked"), api.text(got, "messageText")) == ("false", "Welcome")


def test_participants_dial_out_and_leave(api):
    """POST /calls/<id>/participants answers Location /api/v1/participants/<id>; DELETE removes it."""
    call = api.create("/calls", name="Dial", activeWhenEmpty="false")
    response = api.post(f"/calls/{call}/participants", remoteParty="sip:room-tromso@lab.example")
    assert re.fullmatch(rf"/api/v1/participants/{GUID}", response.headers["Location"])
    participant = response.headers["Location"].rsplit("/", 1)[1]
    got = api.xml(f"/participants/{participant}")
    assert (api.text(got, "call"), api.text(got, "uri"), api.text(got, "numCallLegs")) == (
        call,
        "sip:room-tromso@lab.example",
        "1",
    )
    assert [p.get("id") for p in api.all(f"/calls/{call}/participants")] == [participant]
    api.ok(api.delete(f"/participants/{participant}"))
    # activeWhenEmpty=false: the call ends with its last participant
    assert api.get(f"/calls/{call}").status_code == 404


def test_call_leg_filters_and_delete(api):
    """GET /callLegs filters by text and participant; DELETE /callLegs/<id> hangs up that leg."""
    call = api.create("/calls", name="Legs")
    keep = api.create(f"/calls/{call}/callLegs", remoteParty="sip:keep@lab.example", ownerId="tms-42")
    drop = api.create(f"/calls/{call}/callLegs", remoteParty="sip:drop@lab.example")
    assert [leg.get("id") for leg in api.all("/callLegs", filter="KEEP")] == [keep]
    assert [leg.get("id") for leg in api.all("/callLegs", ownerIdSet="true")] == [keep]
    participant = api.xml(f"/participants/{api.all('/participants', filter='drop')[0].get('id')}")
    assert [leg.get("id") for leg in api.all("/callLegs", participantFilter=participant.get("id"))] == [drop]
    api.ok(api.delete(f"/callLegs/{drop}"))
    assert [leg.get("id") for leg in api.all(f"/calls/{call}/callLegs")] == [keep]
    assert api.text(api.xml("/system/status"), "callLegsCompleted") == "1"


def test_profiles_crud_and_usage_filter(api):
    """callProfiles/callLegProfiles/userProfiles support CRUD and usageFilter=referenced|unreferenced."""
    used = api.create("/callProfiles", participantLimit="10", recordingMode="manual")
    unused = api.create("/callProfiles", participantLimit="20")
    api.create("/coSpaces", name="uses", callProfile=used)
    assert [p.get("id") for p in api.all("/callProfiles", usageFilter="referenced")] == [used]
    assert [p.get("id") for p in api.all("/callProfiles", usageFilter="unreferenced")] == [unused]
    assert api.failure(api.get("/callProfiles", usageFilter="sometimes"))[:2] == (400, "parameterError")
    api.ok(api.put(f"/callProfiles/{unused}", participantLimit="", locked="true"))
    got = api.xml(f"/callProfiles/{unused}")
    assert (got.find("participantLimit"), api.text(got, "locked")) == (None, "true")
    api.ok(api.delete(f"/callProfiles/{unused}"))
    assert api.failure(api.get(f"/callProfiles/{unused}"))[:2] == (404, "callProfileDoesNotExist")
    leg = api.create("/callLegProfiles", defaultLayout="speakerOnly", muteSelfAllowed="false")
    assert api.text(api.xml(f"/callLegProfiles/{leg}"), "defaultLayout") == "speakerOnly"
    assert api.failure(api.post("/callLegProfiles", defaultLayout="diagonal"))[:2] == (400, "parameterError")
