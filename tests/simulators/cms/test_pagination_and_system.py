"""Collections under the server's page cap, and the system/cluster endpoints (cms-api.md §1.3, §2.9)."""

from __future__ import annotations

import pytest


@pytest.fixture
def twenty_profiles(api):
    """Twenty callProfiles (default cap 10)."""
    return [api.create("/callProfiles", participantLimit=str(n)) for n in range(20)]


def test_page_cap_is_below_limit_and_total_counts_everything(api, twenty_profiles):
    """limit=50 gets 10 items (the cap) with total=20; the client loop gets all 20 in order."""
    root = api.xml("/callProfiles", limit=50)
    assert (root.get("total"), len(root)) == ("20", 10)
    assert [p.get("id") for p in api.all("/callProfiles", limit=50)] == twenty_profiles


def test_one_collection_has_a_smaller_cap(api):
    """The fixture caps coSpaces at 8: limit=10 returns 8 (Cisco's own example)."""
    for n in range(12):
        api.create("/coSpaces", name=f"s{n}")
    root = api.xml("/coSpaces", limit=10)
    assert (root.get("total"), len(root)) == ("16", 8)  # 12 + the four personal spaces
    assert len(api.all("/coSpaces", limit=10)) == 16


def test_small_limit_and_offset(api, twenty_profiles):
    """limit below the cap is honoured; offset skips; offset beyond total gives an empty page."""
    root = api.xml("/callProfiles", offset=18, limit=5)
    assert [p.get("id") for p in root] == twenty_profiles[18:]
    assert len(api.xml("/callProfiles", limit=3)) == 3
    beyond = api.xml("/callProfiles", offset=25)
    assert (beyond.get("total"), len(beyond)) == ("20", 0)


@pytest.mark.parametrize(("name", "value"), [("limit", "ten"), ("offset", "-1")])
def test_bad_paging_parameters(api, name, value):
    """A non-numeric or negative offset/limit answers parameterError."""
    assert api.failure(api.get("/callProfiles", **{name: value})) == (
        400,
        "parameterError",
        {"parameter": name, "error": "invalidValue"},
    )


def test_page_cap_is_steerable_through_the_control_api(cms, api, twenty_profiles):
    """PUT /lab/cms/page_cap changes the default and per-collection caps."""
    caps = cms.control("page_cap", "PUT", {"default": 4, "collections": {"callProfiles": 3}})
    assert caps == {"default": 4, "collections": {"coSpaces": 8, "callProfiles": 3}}
    assert len(api.xml("/callProfiles", limit=50)) == 3
    assert len(api.xml("/users", limit=50)) == 4


def test_system_status(cms, api):
    """/system/status carries softwareVersion, uptime on the lab clock, hostId and cdrTime."""
    cms.clock.advance(90)
    got = api.xml("/system/status")
    assert got.tag == "status"
    assert api.text(got, "softwareVersion") == "2.6.1"
    assert api.text(got, "uptimeSeconds") == "90"
    assert api.text(got, "hostId") == cms.sim.knobs.host_id
    assert api.text(got, "cdrTime") == "2026-12-01T09:01:30Z"
    cms.knobs(cms_version="3.0")
    got = api.xml("/system/status")
    assert (api.text(got, "softwareVersion"), got.find("activated")) == ("3.0.1", None)


def test_call_bridges(api):
    """/callBridges lists this bridge by name; the detail has address and sipDomain."""
    bridges = api.all("/callBridges")
    assert [api.text(b, "name") for b in bridges] == ["lab-callbridge"]
    got = api.xml(f"/callbridges/{bridges[0].get('id')}")
    assert api.text(got, "sipDomain") == "lab.example"


def test_system_licensing(api):
    """/system/licensing lists features with status, expiry and limits for personal and shared."""
    got = api.xml("/system/licensing")
    assert got.find("features/personal/status").text == "activated"
    assert got.find("features/personal/limit").text == "100"
    assert got.find("features/shared/expiry").text == "2027-Dec-01"


def test_multiparty_licensing_shape(cms, api):
    """/system/multipartyLicensing has Cisco's elements; *Limit fields are gone in 3.0."""
    got = api.xml("/system/multipartyLicensing")
    assert [c.tag for c in got][:5] == [
        "timestamp",
        "personalLicenseLimit",
        "sharedLicenseLimit",
        "capacityUnitLimit",
        "users",
    ]
    assert (api.text(got, "users"), api.text(got, "personalLicenses"), api.text(got, "callsActive")) == (
        "4",
        "2",
        "0",
    )
    assert api.text(got, "timestamp") == "2026-12-01T09:00:00Z"
    cms.knobs(cms_version="3.0")
    assert api.xml("/system/multipartyLicensing").find("personalLicenseLimit") is None


def test_active_personal_licenses_empty(api):
    """With no calls, activePersonalLicenses is <activePersonalLicenses total="0"/>."""
    response = api.get("/system/multipartyLicensing/activePersonalLicenses")
    assert response.content.endswith(b'<activePersonalLicenses total="0" />')


def test_mp_license_usage_snapshots_follow_the_lab_clock(cms, api):
    """Snapshots come every 5 lab minutes, newest first, counting pmp and smpFull per interval."""
    alice_space = api.create("/coSpaces", name="A", ownerJid="alice@lab.example")
    carol_space = api.create("/coSpaces", name="C", ownerJid="carol@lab.example")
    cms.clock.advance(60)
    api.create("/calls", coSpace=alice_space)
    api.create("/calls", coSpace=carol_space)
    cms.clock.advance(14 * 60)  # 09:15
    root = api.xml("/system/MPLicenseUsage")
    assert root.get("total") == "3"
    assert [e.get("time") for e in root] == [
        "2026-12-01T09:15:00Z",
        "2026-12-01T09:10:00Z",
        "2026-12-01T09:05:00Z",
    ]
    assert (api.text(root[0], "pmp"), api.text(root[0], "smpFull")) == ("1.00", "1.00")
    window = api.xml(
        "/system/MPLicenseUsage", startTime="2026-12-01T09:10:00Z", endTime="2026-12-01T09:10:00Z"
    )
    assert [e.get("time") for e in window] == ["2026-12-01T09:10:00Z"]
    assert api.xml("/system/MPLicenseUsage", hostId="someone-else").get("total") == "0"
    hosts = api.xml("/system/MPLicenseUsage/knownHosts")
    assert [h.get("id") for h in hosts] == [cms.sim.knobs.host_id]


def test_mp_license_usage_idle_entry_is_empty_and_needs_2_6(cms, api):
    """An idle interval is an empty <entry/>; before 2.6 the endpoint does not exist."""
    cms.clock.advance(5 * 60)
    root = api.xml("/system/MPLicenseUsage")
    assert [(e.get("time"), len(e)) for e in root] == [("2026-12-01T09:05:00Z", 0)]
    assert api.failure(api.get("/system/MPLicenseUsage", startTime="yesterday"))[:2] == (
        400,
        "parameterError",
    )
    cms.knobs(cms_version="2.2")
    assert api.failure(api.get("/system/MPLicenseUsage")) == (404, "unrecognisedObject", {})
