"""End to end in the lab: a booked conference starts on the lab clock and TMS drives CMS (cms-api.md §4.1).

Only the CMS REST API is used to observe CMS (``GET /api/v1/coSpaces``, ``/calls``, ``/callLegs``, Basic
``api``/``lab-cms-secret``), as an outside client would.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
import requests
from tms_wire import T0, TmsClient, conference_xml

from xesync.lab import Lab
from xesync.lab.fixture import load_fixture
from xesync.xmlsafe import parse

START = T0 + timedelta(hours=1)
POOL = "TMS_Scheduled_Meeting_"


@pytest.fixture(scope="module")
def lab():
    """One lab with TMS and CMS (and the directory CMS syncs its users from), frozen at T0."""
    base = load_fixture()
    # The LDIF on ldap3's mock strategy: deterministic and quick; CMS cannot tell it from slapd.
    directory = replace(base.directory, serve="mock") if base.directory else None
    fixture = replace(base, clock_start=T0, clock_frozen=True, directory=directory)
    with Lab(fixture, only=("tms", "cms")) as running:
        yield running


@pytest.fixture
def env(lab):
    """The lab back at the fixture, a raw TMS client and a CMS API session."""
    lab.reset()
    desc = lab.describe()
    tms = TmsClient(desc["tms"]["url"].split("/tms/")[0], 12)
    cms = requests.Session()
    cms.auth = (desc["cms"]["username"], desc["cms"]["password"])
    yield lab, tms, cms, desc["cms"]["url"]
    tms.http.close()
    cms.close()


def cms_get(cms, url, path, **params):
    resp = cms.get(url + path, params=params, timeout=5)
    assert resp.status_code == 200, resp.text
    return parse(resp.content)


def cms_all(cms, url, path):
    items, offset = [], 0
    while True:
        root = cms_get(cms, url, path, offset=offset, limit=50)
        page = list(root)
        items.extend(page)
        offset += len(page)
        if not page or offset >= int(root.get("total")):
            return items


def text(el, name):
    found = el.find(name)
    return None if found is None else found.text


def book(tms, **kw):
    body = conference_xml(start=START, **kw) + "<BookingMode>Strict</BookingMode>"
    result = tms.call("SaveConferenceWithMode", body)
    assert result.status == 200, result.text
    return result


def start_meeting(lab):
    lab.clock.set(START + timedelta(minutes=1))


def the_call(cms, url):
    calls = cms_all(cms, url, "/calls")
    assert len(calls) == 1
    call = calls[0]
    space = cms_get(cms, url, f"/coSpaces/{text(call, 'coSpace')}")
    return call, space


def test_call_appears_in_a_pool_space_with_owner_jid(env):
    """owner_to_cms=ownerJid: at start the lowest pool space is renamed, owned by the organiser, called."""
    lab, tms, cms, url = env
    lab.tms.control("knobs", "POST", {"owner_to_cms": "ownerJid"})
    book(tms, title="Quarterly review", owner="LAB\\alice")
    assert cms_all(cms, url, "/calls") == []
    start_meeting(lab)
    call, space = the_call(cms, url)
    assert text(space, "name") == "Quarterly review"
    assert text(space, "ownerJid") == "alice@lab.example"
    assert text(space, "nonMemberAccess") == "true"
    names = [text(s, "name") for s in cms_all(cms, url, "/coSpaces")]
    assert f"{POOL}1" not in names  # the lowest pool space is the one in use
    assert f"{POOL}2" in names
    legs = cms_all(cms, url, "/callLegs")
    assert [text(leg, "remoteParty") for leg in legs] == ["room-oslo@lab.example"]
    assert text(call, "name") == "Quarterly review"


def test_call_appears_in_a_pool_space_without_owner(env):
    """owner_to_cms=none (TMS 15.3 as traced): the pool space has no owner, so CMS would use SMP+."""
    lab, tms, cms, url = env
    lab.tms.control("knobs", "POST", {"owner_to_cms": "none"})
    book(tms, owner="LAB\\alice")
    start_meeting(lab)
    _, space = the_call(cms, url)
    assert text(space, "ownerJid") is None
    assert text(space, "ownerId") is None


def test_end_resets_the_space_keeps_owner_jid_and_deletes_the_call(env):
    """At the end TMS renames the space back and deletes the call; ownerJid survives the reset, as traced."""
    lab, tms, cms, url = env
    lab.tms.control("knobs", "POST", {"owner_to_cms": "ownerJid"})
    book(tms, owner="LAB\\bob")
    start_meeting(lab)
    _, space = the_call(cms, url)
    space_id = space.get("id")
    lab.clock.set(START + timedelta(hours=1, minutes=1))
    assert cms_all(cms, url, "/calls") == []
    after = cms_get(cms, url, f"/coSpaces/{space_id}")
    assert text(after, "name") == f"{POOL}1"
    assert text(after, "nonMemberAccess") == "false"
    assert text(after, "ownerJid") == "bob@lab.example"


def test_reset_can_clear_the_owner(env):
    """With reset_clears_owner the end-of-meeting PUT also clears ownerJid."""
    lab, tms, cms, url = env
    lab.tms.control("knobs", "POST", {"owner_to_cms": "ownerJid", "reset_clears_owner": True})
    book(tms, owner="LAB\\alice")
    start_meeting(lab)
    _, space = the_call(cms, url)
    lab.clock.set(START + timedelta(hours=1, minutes=1))
    after = cms_get(cms, url, f"/coSpaces/{space.get('id')}")
    assert text(after, "ownerJid") is None


def test_two_meetings_use_two_pool_spaces(env):
    """Concurrent meetings take the lowest free pool spaces, one each."""
    lab, tms, cms, url = env
    book(tms, key="a", owner="LAB\\alice", systems=(11,))
    book(tms, key="b", owner="LAB\\carol", systems=(12,))
    start_meeting(lab)
    calls = cms_all(cms, url, "/calls")
    assert len(calls) == 2
    assert len({text(c, "coSpace") for c in calls}) == 2


def test_external_owner_unknown_to_cms_still_gets_a_call(env):
    """An owner CMS does not know (the external organiser) gets the meeting without an owner."""
    lab, tms, cms, url = env
    lab.tms.control("knobs", "POST", {"owner_to_cms": "ownerJid"})
    book(tms, owner="LAB\\erin", owner_email="erin@partner.example")
    start_meeting(lab)
    _, space = the_call(cms, url)
    assert text(space, "ownerJid") is None


def test_ended_early_conference_ends_its_call(env):
    """EndConferenceById ends the CMS call at the next tick."""
    lab, tms, cms, url = env
    result = book(tms, owner="LAB\\alice")
    conference_id = result.value("tns:SaveConferenceWithModeResult/tns:Conference/tns:ConferenceId")
    start_meeting(lab)
    assert len(cms_all(cms, url, "/calls")) == 1
    assert tms.call("EndConferenceById", f"<ConferenceId>{conference_id}</ConferenceId>").status == 200
    lab.clock.tick()
    assert cms_all(cms, url, "/calls") == []


def test_owner_ad_guid_is_passed_when_tms_knows_the_guid(env):
    """owner_to_cms=ownerAdGuid sends the organiser's directory GUID; CMS resolves it to the LDAP user."""
    lab, tms, cms, url = env
    # TMS learns GUIDs from the lab directory, as a real TMS does from its AD sync; CMS imported the same.
    guid = next(u.guid for u in lab.cms.db.users.values() if u.jid == "alice@lab.example")
    lab.tms.control("knobs", "POST", {"owner_to_cms": "ownerAdGuid"})
    book(tms, owner="LAB\\alice")
    start_meeting(lab)
    _, space = the_call(cms, url)
    assert text(space, "ownerAdGuid") == guid
    assert text(space, "ownerJid") == "alice@lab.example"


def test_owner_ad_guid_unknown_to_tms_sends_no_owner(env):
    """An organiser TMS knows no directory GUID for (external, auto-created) gets no owner on CMS."""
    lab, tms, cms, url = env
    lab.tms.control("knobs", "POST", {"owner_to_cms": "ownerAdGuid"})
    book(tms, owner="LAB\\erin")
    start_meeting(lab)
    _, space = the_call(cms, url)
    assert text(space, "ownerAdGuid") is None
    assert text(space, "ownerJid") is None


def test_control_api_seeds_steers_and_counts_over_http(env):
    """The control API seeds systems and users, sets knobs, injects faults and counts requests over HTTP."""
    lab, tms, _, _ = env
    control = lab.control_url
    http = tms.http
    seeded = http.post(f"{control}/tms/systems", json={"system_id": 31, "name": "Annex"}, timeout=5)
    assert seeded.status_code == 200
    assert http.post(f"{control}/tms/users", json={"username": "LAB\\gus"}, timeout=5).status_code == 200
    knobs = http.post(f"{control}/tms/knobs", json={"owner_to_cms": "none"}, timeout=5).json()
    assert knobs["owner_to_cms"] == "none"
    assert knobs["password"] == "***"
    bad = http.post(f"{control}/tms/knobs", json={"owner_to_cms": "owner"}, timeout=5)
    assert bad.status_code == 400
    assert tms.call("GetSystemById", "<TMSSystemId>31</TMSSystemId>", service="remote").status == 200
    fault = {"service": "tms", "kind": "database_down", "operation": "GetUsers", "count": 1}
    assert http.post(f"{control}/faults", json=fault, timeout=5).status_code == 200
    assert tms.call("GetUsers", service="remote").fault_code == -2147219500
    users = tms.call("GetUsers", service="remote")
    assert "LAB\\gus" in users.text
    counts = http.get(f"{control}/requests", params={"service": "tms"}, timeout=5).json()
    assert counts["tms"]["operations"]["GetUsers"] == 2
    assert lab.describe()["tms"]["url"].endswith("/tms/external/booking/bookingservice.asmx")
    assert http.get(f"{control}/state", timeout=5).json()["tms"]["systems"] == 4


def test_extending_a_running_meeting_puts_the_space_fields_again(env):
    """A later end saved while the meeting runs re-PUTs the same space fields once and keeps the call."""
    lab, tms, cms, url = env
    book(tms, title="Stand-up", key="ext")
    start_meeting(lab)
    _, space = the_call(cms, url)
    lab.cms.control("requests", "DELETE", None)
    book(tms, title="Stand-up", key="ext", end=START + timedelta(hours=2))
    lab.clock.set(START + timedelta(minutes=2))
    puts = {
        k: v for k, v in lab.cms.control("requests", "GET", None)["operations"].items() if k.startswith("PUT")
    }
    assert list(puts.values()) == [1], puts
    assert all("cospaces" in k.lower() for k in puts)
    again = cms_get(cms, url, f"/coSpaces/{space.get('id')}")
    assert text(again, "name") == "Stand-up"
    assert text(again, "secret") == text(space, "secret")
    lab.clock.set(START + timedelta(hours=1, minutes=1))
    assert len(cms_all(cms, url, "/calls")) == 1  # still running past the old end
    lab.clock.set(START + timedelta(hours=2, minutes=1))
    assert cms_all(cms, url, "/calls") == []
