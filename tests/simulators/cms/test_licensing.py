"""The PMP+/SMP+ licence engine, table-driven (cms-api.md §3): a call's licence and the counters."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest


@dataclass(frozen=True)
class Case:
    """One row: how the space is set up, what happens, and what CMS must report afterwards."""

    owner: dict[str, str] = field(default_factory=dict)
    members: tuple[str, ...] = ()
    joined_at_start: tuple[str, ...] = ()
    knobs: dict[str, object] = field(default_factory=dict)
    owner_mid_call: str | None = None
    joins_mid_call: tuple[str, ...] = ()
    licence: str = "smp"
    licensee: str | None = None


CASES = {
    "owner licensed": Case(
        owner={"ownerJid": "alice@lab.example"}, licence="pmp", licensee="alice@lab.example"
    ),
    "owner licensed through a nested group": Case(
        owner={"ownerJid": "bob@lab.example"}, licence="pmp", licensee="bob@lab.example"
    ),
    "owner licensed by AD GUID": Case(
        owner={"ownerAdGuid": "00000000-0000-4000-8000-000000000000"},
        licence="pmp",
        licensee="alice@lab.example",
    ),
    "owner unlicensed": Case(owner={"ownerJid": "carol@lab.example"}),
    "no owner": Case(),
    "owner set mid-call, no re-evaluation": Case(owner_mid_call="alice@lab.example"),
    "owner set mid-call, re-evaluated": Case(
        owner_mid_call="alice@lab.example",
        knobs={"reevaluate_on_owner_change": True},
        licence="pmp",
        licensee="alice@lab.example",
    ),
    "owner cleared mid-call, re-evaluated": Case(
        owner={"ownerJid": "alice@lab.example"}, owner_mid_call="", knobs={"reevaluate_on_owner_change": True}
    ),
    "licensed member joined at start": Case(
        members=("bob@lab.example",),
        joined_at_start=("bob@lab.example",),
        owner={"ownerJid": "alice@lab.example"},
        licence="pmp",
        licensee="bob@lab.example",
    ),
    "licensed member joins mid-call, no upgrade": Case(
        members=("alice@lab.example",), joins_mid_call=("alice@lab.example",)
    ),
    "licensed member joins mid-call, upgrade": Case(
        members=("alice@lab.example",),
        joins_mid_call=("alice@lab.example",),
        knobs={"member_join_upgrades": True},
        licence="pmp",
        licensee="alice@lab.example",
    ),
    "licensed non-member joins": Case(
        joins_mid_call=("alice@lab.example",), knobs={"member_join_upgrades": True}
    ),
    "unlicensed member joined at start": Case(
        members=("carol@lab.example",), joined_at_start=("carol@lab.example",)
    ),
}


def _jid_of(api, user_id):
    return api.text(api.xml(f"/users/{user_id}"), "userJid")


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_licence_engine(cms, api, case):
    """The call gets the licence of the rule that applies; activePersonalLicenses and the counters agree."""
    if case.knobs:
        cms.knobs(**case.knobs)
    space = api.create("/coSpaces", name="Meeting", **case.owner)
    for jid in case.members:
        api.create(f"/coSpaces/{space}/coSpaceUsers", userJid=jid)
    started = cms.control(
        "calls", "POST", {"coSpace": space, "participants": [{"userJid": j} for j in case.joined_at_start]}
    )
    call = started["id"]
    api.create(f"/calls/{call}/callLegs", remoteParty="sip:room-oslo@lab.example")
    if case.owner_mid_call is not None:
        api.ok(api.put(f"/coSpaces/{space}", ownerJid=case.owner_mid_call))
    for jid in case.joins_mid_call:
        cms.control(f"calls/{call}/participants", "POST", {"userJid": jid})

    view = cms.control(f"calls/{call}")
    assert (view["licence"], view["user_jid"]) == (case.licence, case.licensee)
    active = api.xml("/system/multipartyLicensing/activePersonalLicenses")
    licensed = [(_jid_of(api, u.get("id")), api.text(u, "callsActive")) for u in active]
    assert licensed == ([(case.licensee, "1")] if case.licensee else [])
    counters = api.xml("/system/multipartyLicensing")
    assert api.text(counters, "callsActive") == "1"
    assert api.text(counters, "callsWithoutPersonalLicense") == ("0" if case.licence == "pmp" else "1")

    api.ok(api.delete(f"/calls/{call}"))
    assert api.xml("/system/multipartyLicensing/activePersonalLicenses").get("total") == "0"
    counters = api.xml("/system/multipartyLicensing")
    assert (api.text(counters, "callsActive"), api.text(counters, "callsWithoutPersonalLicense")) == (
        "0",
        "0",
    )


def test_owner_with_two_calls_counts_two(api):
    """Two PMP calls of one owner show as one user with callsActive=2 (the ambiguity §3.4 warns about)."""
    for name in ("one", "two"):
        api.create("/calls", coSpace=api.create("/coSpaces", name=name, ownerJid="alice@lab.example"))
    active = api.xml("/system/multipartyLicensing/activePersonalLicenses")
    assert [(api.text(u, "callsActive"), api.text(u, "weightedCallsActive")) for u in active] == [
        ("2", "2.000")
    ]


def test_active_licenses_user_attribute_is_a_knob(cms, api):
    """activePersonalLicenses names the user by id by default, or by jid with the knob."""
    api.create("/calls", coSpace=api.create("/coSpaces", name="x", ownerJid="alice@lab.example"))
    alice = api.xml("/users", emailFilter="alice@lab.example")[0].get("id")
    assert api.xml("/system/multipartyLicensing/activePersonalLicenses")[0].attrib == {"id": alice}
    cms.knobs(active_licenses_user_attr="jid")
    assert api.xml("/system/multipartyLicensing/activePersonalLicenses")[0].attrib == {
        "jid": "alice@lab.example"
    }


def test_licence_is_decided_at_start_not_by_later_profile_changes(api):
    """Taking hasLicense away mid-call leaves the running call on PMP; the next call is SMP."""
    space = api.create("/coSpaces", name="x", ownerJid="alice@lab.example")
    call = api.create("/calls", coSpace=space)
    alice = api.xml("/users", emailFilter="alice@lab.example")[0].get("id")
    profile = api.text(api.xml(f"/users/{alice}"), "userProfile")
    api.ok(api.put(f"/userProfiles/{profile}", hasLicense="false"))
    counters = api.xml("/system/multipartyLicensing")
    # the PMP profile is shared by alice and bob: nobody holds PMP any more, yet the call keeps it
    assert (api.text(counters, "callsWithoutPersonalLicense"), api.text(counters, "personalLicenses")) == (
        "0",
        "0",
    )
    api.ok(api.delete(f"/calls/{call}"))
    api.create("/calls", coSpace=space)
    assert api.text(api.xml("/system/multipartyLicensing"), "callsWithoutPersonalLicense") == "1"


def test_tms_pool_space_keeps_its_owner_after_the_reset(api):
    """The traced end-of-meeting reset PUT has no ownerJid=, so the owner survives into the next meeting."""
    pool = api.create("/coSpaces", name="TMS_Scheduled_Meeting_1", nonMemberAccess="false")
    api.ok(api.put(f"/coSpaces/{pool}", name="Board", nonMemberAccess="true", ownerJid="alice@lab.example"))
    call = api.create("/calls", coSpace=pool)
    api.ok(
        api.put(
            f"/coSpaces/{pool}",
            name="TMS_Scheduled_Meeting_1",
            nonMemberAccess="false",
            regenerateSecret="true",
        )
    )
    api.ok(api.delete(f"/calls/{call}"))
    api.create("/calls", coSpace=pool)
    assert api.text(api.xml(f"/coSpaces/{pool}"), "ownerJid") == "alice@lab.example"
    assert api.text(api.xml("/system/multipartyLicensing"), "callsWithoutPersonalLicense") == "0"
