"""The rules of xesync.licence and xesync.cms_facts, table-driven: the verdict at start, dial-in parsing.

The prediction at booking is in test_licence_prediction.py; the people are in tests/licence_people.py.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from licence_people import ALICE, ALICE_CMS, CAROL, CAROL_CMS, ERIN, GUID

from xesync.cms_facts import (
    CmsCall,
    CmsSpace,
    LicensingSnapshot,
    MeetingOnCms,
    PersonalLicenceUse,
    SpaceMatch,
    dial_in,
)
from xesync.licence import OwnerFixup, StartFacts, decide, owner_is_organiser
from xesync.model import LicenceVerdict

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SPACE = CmsSpace(id="s-1", name="Weekly sync", owner_jid="alice@lab.example", owner_id="u-alice")
CALL = CmsCall(id="c-1", cospace_id="s-1", name="Weekly sync", started_at=START, bridge="http://cb1/api/v1")


def licences(*uses: PersonalLicenceUse, smp_calls: float = 0) -> LicensingSnapshot:
    calls = sum(u.calls_active for u in uses) + smp_calls
    return LicensingSnapshot(
        personal_licenses=2, calls_active=calls, calls_without_personal_licence=smp_calls, active=uses
    )


ALICE_ONE = licences(PersonalLicenceUse(user_id="u-alice", calls_active=1, weighted_calls_active=1.0))


def facts(**overrides) -> StartFacts:
    base = {
        "organiser": ALICE,
        "organiser_user": ALICE_CMS,
        "meeting": MeetingOnCms(space=SPACE, call=CALL, matched_by=SpaceMatch.TITLE, candidates=1),
        "licensing": ALICE_ONE,
    }
    base.update(overrides)
    return StartFacts(**base)


def unowned(space: CmsSpace = SPACE) -> MeetingOnCms:
    return MeetingOnCms(
        space=replace(space, owner_jid=None, owner_id=None), call=CALL, matched_by=SpaceMatch.TITLE
    )


@dataclass(frozen=True)
class Case:
    name: str
    facts: StartFacts
    verdict: LicenceVerdict
    reason_has: tuple[str, ...] = ()
    fixup_in_time: bool | None = None
    calls: int | None = None


CASES = [
    Case(
        "cms down",
        facts(meeting=None, licensing=None, unavailable="cms unavailable: HTTP 503"),
        LicenceVerdict.UNVERIFIABLE,
        ("HTTP 503", "retried later"),
    ),
    Case("nothing asked", facts(meeting=None), LicenceVerdict.UNVERIFIABLE, ("not asked",)),
    Case("no space", facts(meeting=MeetingOnCms()), LicenceVerdict.CALL_NOT_FOUND, ("no CMS space",)),
    Case(
        "space without a call",
        facts(meeting=MeetingOnCms(space=SPACE, matched_by=SpaceMatch.URI, candidates=1)),
        LicenceVerdict.CALL_NOT_FOUND,
        ("s-1", "no active call"),
    ),
    Case(
        "TMS passed no owner",
        facts(meeting=unowned(), licensing=licences(smp_calls=1)),
        LicenceVerdict.SMP_NO_OWNER,
        ("no owner", "TMS passed no owner"),
    ),
    Case(
        "the fix-up's owner is gone again",
        facts(meeting=unowned(), fixup=OwnerFixup(jid="alice@lab.example", at=START - timedelta(minutes=1))),
        LicenceVerdict.SMP_NO_OWNER,
        ("owner xesync set is gone",),
        fixup_in_time=True,
    ),
    Case(
        "stale owner on a reused pool space",
        facts(
            meeting=MeetingOnCms(
                space=replace(SPACE, owner_jid="bob@lab.example", owner_id="u-bob"), call=CALL
            )
        ),
        LicenceVerdict.OWNER_MISMATCH,
        ("owned by bob@lab.example", "alice@lab.example"),
    ),
    Case(
        "external organiser, someone's owner",
        facts(organiser=ERIN, organiser_user=None),
        LicenceVerdict.OWNER_MISMATCH,
        ("erin@partner.example", "not in the directory"),
    ),
    Case(
        "organiser owns it without a licensed profile",
        facts(
            organiser=CAROL,
            organiser_user=CAROL_CMS,
            meeting=MeetingOnCms(
                space=replace(SPACE, owner_jid="carol@lab.example", owner_id="u-carol"), call=CALL
            ),
        ),
        LicenceVerdict.SMP_OWNER_UNLICENSED,
        ("carol@lab.example", "system level", "no hasLicense", "outside the PMP+ group"),
    ),
    Case(
        "organiser owns it but is no CMS user",
        facts(organiser_user=None, meeting=MeetingOnCms(space=replace(SPACE, owner_id=None), call=CALL)),
        LicenceVerdict.SMP_OWNER_UNLICENSED,
        ("not a CMS user",),
    ),
    Case(
        "owner's licence carries this call",
        facts(),
        LicenceVerdict.PMP_CONFIRMED,
        ("alice@lab.example",),
        calls=1,
    ),
    Case(
        "several calls on the licence, some on SMP+",
        facts(
            licensing=licences(
                PersonalLicenceUse(user_id="u-alice", calls_active=2, weighted_calls_active=2.0), smp_calls=1
            )
        ),
        LicenceVerdict.PMP_LIKELY,
        ("2 calls at once",),
        calls=2,
    ),
    Case(
        "several calls on the licence, none on SMP+",
        facts(
            licensing=licences(
                PersonalLicenceUse(user_id="u-alice", calls_active=2, weighted_calls_active=2.0)
            )
        ),
        LicenceVerdict.PMP_CONFIRMED,
        ("no call in the cluster runs on SMP+",),
        calls=2,
    ),
    Case(
        "consumption unreadable",
        facts(licensing=None),
        LicenceVerdict.PMP_LIKELY,
        ("could not be read",),
    ),
    Case(
        "fix-up after the start, no re-evaluation",
        facts(
            licensing=licences(smp_calls=1),
            fixup=OwnerFixup(jid="alice@lab.example", at=START + timedelta(seconds=5)),
        ),
        LicenceVerdict.SMP_NO_OWNER,
        ("owner came too late", "after the call started"),
        fixup_in_time=False,
        calls=0,
    ),
    Case(
        "owner right now, set late by someone else",
        facts(licensing=licences(smp_calls=1)),
        LicenceVerdict.SMP_NO_OWNER,
        ("set after the call started",),
        calls=0,
    ),
    Case(
        "fix-up before the start",
        facts(fixup=OwnerFixup(jid="alice@lab.example", at=START - timedelta(seconds=5))),
        LicenceVerdict.PMP_CONFIRMED,
        ("before the call started",),
        fixup_in_time=True,
        calls=1,
    ),
    Case(
        "fix-up after the start, CMS re-evaluated",
        facts(fixup=OwnerFixup(jid="alice@lab.example", at=START + timedelta(seconds=5))),
        LicenceVerdict.PMP_CONFIRMED,
        ("after the call started",),
        fixup_in_time=False,
        calls=1,
    ),
    Case(
        "activePersonalLicenses names users by JID",
        facts(licensing=licences(PersonalLicenceUse(user_jid="ALICE@lab.example", calls_active=1))),
        LicenceVerdict.PMP_CONFIRMED,
        calls=1,
    ),
    Case(
        "owner given by AD GUID",
        facts(
            meeting=MeetingOnCms(space=CmsSpace(id="s-1", name="x", owner_ad_guid=GUID.upper()), call=CALL)
        ),
        LicenceVerdict.PMP_CONFIRMED,
        calls=1,
    ),
    Case(
        "fix-up time against an unknown call start",
        facts(
            meeting=MeetingOnCms(space=SPACE, call=replace(CALL, started_at=None)),
            fixup=OwnerFixup(jid="alice@lab.example", at=START),
        ),
        LicenceVerdict.PMP_CONFIRMED,
        ("start is unknown",),
        calls=1,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_verdict_table(case):
    """Each combination of facts yields its verdict, with the evidence in the reason."""
    verdict = decide(case.facts)
    assert verdict.verdict is case.verdict
    for part in case.reason_has:
        assert part in verdict.reason
    assert verdict.fixup_in_time is case.fixup_in_time
    assert verdict.calls_on_licence == case.calls


def test_every_verdict_has_a_case():
    """The table reaches every LicenceVerdict member."""
    assert {c.verdict for c in CASES} == set(LicenceVerdict)


def test_owner_found_is_reported():
    """The verdict names the owner it found on the space, or none."""
    assert decide(facts()).owner_found == "alice@lab.example"
    assert decide(facts(meeting=unowned())).owner_found is None
    assert decide(CASES[6].facts).owner_found == "bob@lab.example"


def test_owner_matches_by_id_even_when_the_jid_differs():
    """ownerId equal to the organiser's CMS user id is the organiser, whatever ownerJid says."""
    space = replace(SPACE, owner_jid="a.example@lab.example")
    assert owner_is_organiser(space, ALICE, ALICE_CMS)
    assert not owner_is_organiser(replace(space, owner_id="u-other"), ALICE, ALICE_CMS)


def test_weighted_calls_are_summed_across_bridges():
    """Weighted counts from two bridges add up to distinct calls; plain counts stand in without weights."""
    snap = licences(
        PersonalLicenceUse(user_id="u-alice", calls_active=1, weighted_calls_active=0.5),
        PersonalLicenceUse(user_jid="alice@lab.example", calls_active=1, weighted_calls_active=0.5),
        PersonalLicenceUse(user_id="u-bob", calls_active=3),
    )
    assert snap.calls_on_licence(user_id="u-alice", jid="alice@lab.example") == 1
    assert snap.calls_on_licence(user_id="u-bob", jid=None) == 3
    assert snap.calls_on_licence(user_id="u-nobody", jid="nobody@lab.example") == 0


LAB_INFO = """Title: Weekly sync
Start: 2026-12-01 09:00:00Z
End: 2026-12-01 10:00:00Z
Conference ID: 1001
Rooms: Oslo

To join the video meeting:
Dial in: 990001@video.lab.example
PIN: 1234#
Numeric ID: 990001"""


@pytest.mark.parametrize(
    ("text", "uris", "call_ids"),
    [
        (LAB_INFO, ("990001",), ("990001",)),
        ("Video: sip:Meet.Alice@cms.example.com\nCall ID: 4455667", ("meet.alice",), ("4455667",)),
        ("Conference ID: 1001 only", (), ()),
        ("", (), ()),
        (None, (), ()),
    ],
    ids=["lab", "sip-uri-and-call-id", "tms-id-ignored", "empty", "none"],
)
def test_dial_in_addresses(text, uris, call_ids):
    """URIs and labelled numeric ids are taken from ConferenceInfoText; TMS's own Conference ID is not."""
    found = dial_in(text)
    assert found.uris == uris
    assert found.call_ids == call_ids


def test_naive_times_are_refused():
    """A fix-up or call start without a time zone is a ValueError, as everywhere in the model."""
    with pytest.raises(ValueError, match="timezone-aware"):
        OwnerFixup(jid="a@b.example", at=datetime(2026, 12, 1, 9, 0))  # noqa: DTZ001
    with pytest.raises(ValueError, match="timezone-aware"):
        CmsCall(id="c", started_at=datetime(2026, 12, 1, 9, 0))  # noqa: DTZ001
