"""CmsCallMonitor against the lab CMS, which the TMS simulator drives as TMS 15.x does (cms-api.md §1, §3-4).

Meetings are booked through the TMS adapter; moving the lab clock past a start makes the TMS simulator
open a ``TMS_Scheduled_Meeting_<n>`` pool space and post the call, with or without an owner
(``owner_to_cms``). The monitor never sleeps here: its waits are recorded instead, so retry tests
assert the back-off it chose, and request counts come from the lab's request log.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import requests
from cms_kit import book, closed_port_url, cms_knobs, count, person, tms_knobs, verdict_for

from xesync.adapters.cms import CmsCallMonitor
from xesync.adapters.tms import TmsBookingSink
from xesync.cms_facts import LicensingSnapshot, MeetingOnCms, SpaceMatch
from xesync.config.model import Config
from xesync.errors import CmsHttpError, ServiceUnavailableError
from xesync.licence import OwnerFixup
from xesync.model import LicenceVerdict


@pytest.fixture
def waits() -> list[float]:
    """The monitor's back-off waits, recorded instead of slept."""
    return []


@pytest.fixture
def monitor(lab_config: Config, waits: list[float]) -> Iterator[CmsCallMonitor]:
    """The adapter as the daemon builds it from ``lab serve``'s config, never really sleeping."""
    assert lab_config.cms is not None
    cms = CmsCallMonitor(lab_config.cms, sleep=waits.append)
    yield cms
    cms.close()


@pytest.fixture
def sink(lab_config: Config) -> Iterator[TmsBookingSink]:
    """The TMS adapter, to book meetings that the TMS simulator then runs on CMS."""
    tms = TmsBookingSink(lab_config.tms)
    yield tms
    tms.close()


# ---------------------------------------------------------------------------------- users


def test_users_are_found_by_jid_or_email_with_their_effective_licence(monitor):
    """A PMP+ user's licence comes from the LDAP source's profile, another's from the global SMP+ profile."""
    alice = monitor.find_user(jid="alice@lab.example")
    assert alice is not None
    assert (alice.jid, alice.has_license, alice.profile_from) == ("alice@lab.example", True, "user")
    carol = monitor.find_user(email="CAROL@lab.example")
    assert carol is not None
    assert (carol.jid, carol.has_license, carol.profile_from) == ("carol@lab.example", False, "system")
    assert monitor.find_user(jid="nobody@lab.example", email="nobody@lab.example") is None
    assert monitor.user("00000000-0000-4000-8000-000000000000") is None


# ---------------------------------------------------------------------------------- paging


def test_collections_are_paged_to_total_whatever_the_page_cap(lab, monitor):
    """With a cap of one item per page, every matching space is read and the exact title wins."""
    cms = requests.Session()
    desc = lab.describe()["cms"]
    cms.auth = (desc["username"], desc["password"])
    for name in ("Board review (old)", "Board review draft", "Board review"):
        assert cms.post(desc["url"] + "/coSpaces", data={"name": name}, timeout=5).status_code == 200
    cms.close()
    lab.cms.control("page_cap", "PUT", {"collections": {"coSpaces": 1}})
    before = count(lab, "/coSpaces")
    found = monitor.find_meeting(info_text=None, title="Board review")
    assert found.space is not None
    assert found.space.name == "Board review"
    assert (found.matched_by, found.candidates, found.call) == (SpaceMatch.TITLE, 1, None)
    assert count(lab, "/coSpaces") - before == 3  # three one-item pages up to total=3


def test_active_personal_licences_are_paged(lab, monitor):
    """activePersonalLicenses under a one-item cap still yields every licensed user's calls."""
    lab.cms.control("page_cap", "PUT", {"collections": {"activePersonalLicenses": 1}})
    for jid in ("alice@lab.example", "bob@lab.example"):
        space = monitor.find_user(jid=jid)
        assert space is not None
        lab.cms.control("calls", "POST", {"uri": jid.split("@")[0] + ".space"})
    snap = monitor.licensing()
    users = {u.user_id for u in snap.active}
    assert len(users) == 2
    assert snap.calls_on_licence(user_id=monitor.find_user(jid="bob@lab.example").id, jid=None) == 1
    assert count(lab, "/system/multipartyLicensing/activePersonalLicenses") == 2


# ---------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("spelling", ["unrecognisedObject", "unrecognizedObject"])
def test_both_unrecognised_spellings_become_one_failure(lab, monitor, spelling):
    """An unknown path's failureDetails code reads as unrecognizedObject in either spelling."""
    cms_knobs(lab, unrecognised_object=spelling)
    with pytest.raises(CmsHttpError) as err:
        monitor._http.get(monitor._http.bridges[0], "/noSuchObjects")
    assert (err.value.status, err.value.failure, err.value.path) == (
        404,
        "unrecognizedObject",
        "/noSuchObjects",
    )


def test_an_unknown_owner_is_a_cms_http_error(lab, monitor):
    """Setting ownerJid to a JID with no CMS user is refused with the failureDetails code."""
    lab.tms.control("cms/pool", "POST", None)
    space = monitor.find_meeting(info_text=None, title="TMS_Scheduled_Meeting_1").space
    with pytest.raises(CmsHttpError) as err:
        monitor.set_owner(space.id, "nobody@lab.example")
    assert (err.value.status, err.value.failure) == (400, "userDoesNotExist")


def test_503_is_retried_after_retry_after_then_succeeds(lab, monitor, waits):
    """Two 503s with Retry-After: 2 are waited out as told, and the third attempt answers."""
    alice = monitor.find_user(jid="alice@lab.example")
    lab.inject(
        service="cms", kind="http_status", status=503, retry_after_s=2, count=2, operation="/users/{id}"
    )
    before = count(lab, "/users/{id}")
    assert monitor.user(alice.id) == alice
    assert waits == [2.0, 2.0]
    assert count(lab, "/users/{id}") - before == 3


def test_a_cms_failure_503_is_retried_with_exponential_back_off(lab, monitor, waits):
    """CMS's own 503 failureDetails (databaseNotReady) without Retry-After backs off 0.5 s, then 1 s."""
    lab.inject(service="cms", kind="failure", count=2, operation="/system/multipartyLicensing")
    assert monitor.licensing().calls_active == 0
    assert waits == [0.5, 1.0]


def test_a_persisting_503_becomes_service_unavailable(lab, monitor, waits):
    """A 503 on every attempt ends in ServiceUnavailableError for CMS after the bounded attempts."""
    lab.inject(service="cms", kind="http_status", status=503, operation="/users")
    with pytest.raises(ServiceUnavailableError) as err:
        monitor.find_user(jid="alice@lab.example")
    assert err.value.service == "cms"
    assert "HTTP 503" in err.value.reason
    assert waits == [0.5, 1.0, 2.0]
    assert count(lab, "/users") == 4


def test_a_retry_after_beyond_the_longest_wait_is_not_waited_for(lab, monitor, waits):
    """A Retry-After longer than max_wait gives up at once and passes the server's wait on."""
    lab.inject(service="cms", kind="http_status", status=503, retry_after_s=3600, operation="/users")
    with pytest.raises(ServiceUnavailableError) as err:
        monitor.find_user(jid="alice@lab.example")
    assert err.value.retry_after == 3600
    assert waits == []
    assert count(lab, "/users") == 1


def test_a_dropped_connection_is_retried(lab, monitor, waits):
    """A connection dropped without an answer is retried like a 503."""
    lab.inject(service="cms", kind="drop_connection", count=1, operation="/system/multipartyLicensing")
    assert monitor.licensing().bridges == 1
    assert waits == [0.5]


# ---------------------------------------------------------------------------------- several bridges


def test_configuration_is_read_from_the_first_bridge_that_answers(lab_config, waits):
    """With the first bridge refusing connections, users come from the second; licences need both."""
    cms = CmsCallMonitor(lab_config.cms, urls=[closed_port_url(), lab_config.cms.url], sleep=waits.append)
    try:
        assert cms.find_user(jid="alice@lab.example") is not None
        with pytest.raises(ServiceUnavailableError) as err:
            cms.licensing()
        assert "ConnectionError" in err.value.reason
    finally:
        cms.close()


def test_licence_counters_are_summed_over_bridges(lab, lab_config, monitor):
    """Two bridges reporting the same call count it twice in the sum (weights are per bridge)."""
    alice = monitor.find_user(jid="alice@lab.example")
    lab.cms.control("calls", "POST", {"uri": "alice.space"})
    twice = CmsCallMonitor(lab_config.cms, urls=[lab_config.cms.url, lab_config.cms.url + "/"])
    try:
        snap: LicensingSnapshot = twice.licensing()
    finally:
        twice.close()
    assert (snap.bridges, snap.calls_active) == (2, 2)
    assert snap.calls_on_licence(user_id=alice.id, jid=alice.jid) == 2
    assert monitor.licensing().calls_on_licence(user_id=alice.id, jid=alice.jid) == 1


# ---------------------------------------------------------------------------------- owner fix-up


def test_owner_is_set_and_cleared_on_a_pool_space(lab, monitor):
    """ownerJid set on a TMS pool space resolves to the user; it is cleared only while it is still ours."""
    lab.tms.control("cms/pool", "POST", None)
    pool = monitor.find_meeting(info_text=None, title="TMS_Scheduled_Meeting_3").space
    assert pool is not None
    assert pool.owner is None
    owned = monitor.set_owner(pool.id, "alice@lab.example")
    alice = monitor.find_user(jid="alice@lab.example")
    assert (owned.owner_jid, owned.owner_id) == ("alice@lab.example", alice.id)
    assert monitor.clear_owner(pool.id, only_if="bob@lab.example") is False
    assert monitor.space(pool.id).owner_jid == "alice@lab.example"
    assert monitor.clear_owner(pool.id, only_if="ALICE@lab.example") is True
    cleared = monitor.space(pool.id)
    assert (cleared.owner_jid, cleared.owner_id) == (None, None)
    assert monitor.clear_owner(pool.id) is False
    assert monitor.space("00000000-0000-4000-8000-000000000000") is None


# ---------------------------------------------------------------------------------- TMS-driven calls


def test_owner_passed_by_tms_gives_pmp_confirmed(lab, monitor, sink):
    """owner_to_cms=ownerJid: the running call's space is found by title, owned by Alice, on her licence."""
    tms_knobs(lab, owner_to_cms="ownerJid")
    info, start, _ = book(sink, lab, "uid-pmp", "alice", "Quarterly review")
    assert monitor.find_meeting(info_text=info, title="Quarterly review").call is None
    lab.clock.set(start + timedelta(minutes=1))
    meeting = monitor.find_meeting(info_text=info, title="Quarterly review", start=start)
    assert meeting.matched_by is SpaceMatch.TITLE
    assert meeting.space.owner_jid == "alice@lab.example"
    assert meeting.call is not None
    assert meeting.call.cospace_id == meeting.space.id
    assert start <= meeting.call.started_at <= lab.clock.now()
    verdict = verdict_for(monitor, person("alice", pmp=True), meeting)
    assert verdict.verdict is LicenceVerdict.PMP_CONFIRMED
    assert verdict.owner_found == "alice@lab.example"


def test_no_owner_from_tms_gives_smp_no_owner(lab, monitor, sink):
    """owner_to_cms=none (TMS 15.3 as traced): no owner, the call counts as SMP+."""
    tms_knobs(lab, owner_to_cms="none")
    info, start, _ = book(sink, lab, "uid-smp", "alice", "Stand-up")
    lab.clock.set(start + timedelta(minutes=1))
    meeting = monitor.find_meeting(info_text=info, title="Stand-up")
    assert meeting.space.owner is None
    assert monitor.licensing().calls_without_personal_licence == 1
    verdict = verdict_for(monitor, person("alice", pmp=True), meeting)
    assert verdict.verdict is LicenceVerdict.SMP_NO_OWNER


@pytest.mark.parametrize(
    ("reevaluate", "expected"),
    [(True, LicenceVerdict.PMP_CONFIRMED), (False, LicenceVerdict.SMP_NO_OWNER)],
    ids=["cms-re-evaluates", "licence-fixed-at-start"],
)
def test_a_late_owner_fix_up_counts_only_if_cms_re_evaluates(lab, monitor, sink, reevaluate, expected):
    """An owner set after the call started gives PMP+ only with re-evaluation; it is cleared after the end."""
    tms_knobs(lab, owner_to_cms="none")
    cms_knobs(lab, reevaluate_on_owner_change=reevaluate)
    info, start, end = book(sink, lab, "uid-fix", "alice", "Design crit")
    lab.clock.set(start + timedelta(minutes=1))
    meeting = monitor.find_meeting(info_text=info, title="Design crit")
    monitor.set_owner(meeting.space.id, "alice@lab.example")
    fixup = OwnerFixup(jid="alice@lab.example", at=lab.clock.now())
    meeting = monitor.find_meeting(info_text=info, title="Design crit")
    verdict = verdict_for(monitor, person("alice", pmp=True), meeting, fixup)
    assert verdict.verdict is expected
    assert verdict.fixup_in_time is False
    if not reevaluate:
        assert "too late" in verdict.reason
    lab.clock.set(end + timedelta(minutes=1))
    assert monitor.space(meeting.space.id).owner_jid == "alice@lab.example"  # TMS's reset keeps it
    assert monitor.clear_owner(meeting.space.id, only_if="alice@lab.example")
    assert monitor.space(meeting.space.id).owner is None


def test_an_organiser_outside_the_pmp_group_is_unlicensed(lab, monitor, sink):
    """Carol owns the space TMS opened, but her CMS profile has no licence: smp_owner_unlicensed."""
    tms_knobs(lab, owner_to_cms="ownerJid")
    info, start, _ = book(sink, lab, "uid-carol", "carol", "Budget")
    lab.clock.set(start + timedelta(minutes=1))
    verdict = verdict_for(
        monitor, person("carol", pmp=False), monitor.find_meeting(info_text=info, title="Budget")
    )
    assert verdict.verdict is LicenceVerdict.SMP_OWNER_UNLICENSED


def test_a_stale_owner_on_a_reused_pool_space_is_a_mismatch(lab, monitor, sink):
    """Bob's owner survives TMS's reset of pool space 1, so Alice's next meeting there is owner_mismatch."""
    tms_knobs(lab, owner_to_cms="ownerJid", reset_clears_owner=False)
    _, start, end = book(sink, lab, "uid-bob", "bob", "Bob's sync")
    lab.clock.set(start + timedelta(minutes=1))
    lab.clock.set(end + timedelta(minutes=1))
    tms_knobs(lab, owner_to_cms="none")
    info, start, _ = book(sink, lab, "uid-alice", "alice", "Alice's sync")
    lab.clock.set(start + timedelta(minutes=1))
    meeting = monitor.find_meeting(info_text=info, title="Alice's sync")
    assert meeting.space.name == "Alice's sync"
    verdict = verdict_for(monitor, person("alice", pmp=True), meeting)
    assert verdict.verdict is LicenceVerdict.OWNER_MISMATCH
    assert verdict.owner_found == "bob@lab.example"


def test_the_space_is_found_by_dial_in_uri_when_tms_sets_it(lab, monitor, sink):
    """With the numeric id PUT as uri and callId at start, the space is matched from ConferenceInfoText."""
    tms_knobs(lab, owner_to_cms="ownerJid", set_uri_at_start=True)
    info, start, _ = book(sink, lab, "uid-uri", "alice", "Renamed later")
    lab.clock.set(start + timedelta(minutes=1))
    meeting = monitor.find_meeting(info_text=info, title="some other title")
    assert meeting.matched_by is SpaceMatch.URI
    assert meeting.call is not None
    assert meeting.space.uri in info


def test_a_meeting_that_has_not_started_has_no_call(lab, monitor, sink):
    """Before TMS starts it, nothing on CMS carries the meeting's title: call_not_found."""
    info, _, _ = book(sink, lab, "uid-later", "alice", "Tomorrow's plan")
    meeting = monitor.find_meeting(info_text=info, title="Tomorrow's plan")
    assert meeting == MeetingOnCms()
    assert verdict_for(monitor, person("alice", pmp=True), meeting).verdict is LicenceVerdict.CALL_NOT_FOUND
