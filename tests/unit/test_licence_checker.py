"""The per-sitting licence checker over fakes: schedule, verdicts, retries, owner fix-up, events.

A real state store (SQLite in a temporary directory) holds the bookings; CMS and the directory are
in-memory fakes (tests/licence_fakes.py). Times are handed in; nothing sleeps.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from licence_fakes import T0, FakeCallMonitor, FakeDirectory, make_booking, person
from structlog.testing import capture_logs

from xesync import events
from xesync.cms_facts import CmsSpace
from xesync.licence_schedule import sittings
from xesync.licence_service import LicenceChecker
from xesync.meetings import ConferenceRequest, Frequency, OccurrenceChange, Recurrence
from xesync.model import AuditOutcome, Booking, CheckStage, LicenceVerdict, TmsState
from xesync.store import Store

LEAD = timedelta(minutes=5)


POOL = CmsSpace(id="pool-1", name="TMS_Scheduled_Meeting_1")


@pytest.fixture
def store(tmp_path):
    """A fresh state store."""
    with Store.open(tmp_path / "state" / "xesync.db") as opened:
        yield opened


@pytest.fixture
def cms():
    """CMS with Alice's meeting's pool space, no call yet, no owner."""
    return FakeCallMonitor(spaces={POOL.id: POOL})


def checker(store, cms, **kwargs) -> LicenceChecker:
    """The checker over the fakes, Alice and Carol in the directory."""
    directory = FakeDirectory(person("alice", pmp=True), person("carol", pmp=False))
    return LicenceChecker(
        store=store, monitor=cms, directory=directory, lead=kwargs.pop("lead", LEAD), **kwargs
    )


def save(store: Store, booking: Booking) -> Booking:
    """Store a booking as the engine would."""
    with store.transaction() as tx:
        tx.upsert_booking(booking)
    return booking


# ---------------------------------------------------------------------------------- schedule


def test_next_due_of_some_bookings_looks_at_those_only(store, cms):
    """Given a pass's changed bookings, next_due answers for them alone (with their own history);
    the full answer is the earliest of all live bookings."""
    early = save(store, make_booking("UID-E", start=T0, end=T0 + timedelta(hours=1)))
    late = save(
        store, make_booking("UID-L", start=T0 + timedelta(days=1), end=T0 + timedelta(days=1, hours=1))
    )
    check = checker(store, cms)
    now = T0 - timedelta(hours=2)
    assert check.next_due(now) == T0 - LEAD
    assert check.next_due(now, [late]) == late.start - LEAD
    assert check.next_due(now, [early, late]) == T0 - LEAD
    check.run_due(T0 - LEAD)  # the early one's before-start look is history now
    assert check.next_due(T0 - LEAD, [early]) == T0 + timedelta(minutes=1)
    assert check.next_due(now, [replace(late, state=TmsState.DELETED)]) is None


def test_a_meeting_is_looked_at_before_its_start_then_judged_a_minute_after(store, cms):
    """Due at start - lead (a before-start look), then at start + 1 min (the verdict), then never again."""
    booking = save(store, make_booking())
    check = checker(store, cms)
    assert check.next_due(T0 - timedelta(hours=1)) == T0 - LEAD
    assert check.due(T0 - timedelta(hours=1)) == []
    assert check.due(T0 - LEAD) == [booking]
    (early,) = check.run_due(T0 - LEAD)
    assert (early.stage, early.verdict) == (CheckStage.BEFORE_START, LicenceVerdict.CALL_NOT_FOUND)
    assert "before the start" in early.reason
    assert check.next_due(T0 - LEAD) == T0 + timedelta(minutes=1)
    cms.run(replace(POOL, owner_jid="alice@lab.example", owner_id="u-alice"), "Weekly", T0)
    (verdict,) = check.run_due(T0 + timedelta(minutes=1))
    assert (verdict.stage, verdict.verdict) == (CheckStage.AT_START, LicenceVerdict.PMP_CONFIRMED)
    assert (verdict.cospace_id, verdict.call_id, verdict.owner_jid) == (
        "pool-1",
        "call-pool-1",
        "alice@lab.example",
    )
    assert check.next_due(T0 + timedelta(minutes=1)) is None
    assert check.run_due(T0 + timedelta(minutes=30)) == []
    assert store.licence_history(uid="UID-1") == [early, verdict]


def test_no_lead_skips_the_look_before_the_start(store, cms):
    """With cms.check_lead = 0 the first step is the verdict a minute after the start."""
    save(store, make_booking())
    assert checker(store, cms, lead=timedelta(0)).next_due(T0 - timedelta(hours=1)) == T0 + timedelta(
        minutes=1
    )


def test_unverifiable_is_retried_while_the_meeting_runs_and_not_after(store, cms):
    """CMS down at the start: unverifiable, due again two minutes later until the end, then left as is."""
    save(store, make_booking())
    cms.down = True
    check = checker(store, cms, lead=timedelta(0))
    (first,) = check.run_due(T0 + timedelta(minutes=1))
    assert first.verdict is LicenceVerdict.UNVERIFIABLE
    assert "ServiceUnavailableError" in first.reason
    assert check.next_due(T0 + timedelta(minutes=1)) == T0 + timedelta(minutes=3)
    (second,) = check.run_due(T0 + timedelta(minutes=59))
    assert second.stage is CheckStage.RETRY
    assert check.next_due(T0 + timedelta(minutes=59)) is None  # the next retry would fall after the end


def test_a_sitting_that_ended_unchecked_is_marked_missed_once(store, cms):
    """A meeting that ran while xesync did not is recorded unverifiable ('missed') once; older ones not."""
    save(store, make_booking())
    save(store, make_booking("UID-OLD", start=T0 - timedelta(days=3), end=T0 - timedelta(days=3, hours=-1)))
    check = checker(store, cms)
    (missed,) = check.run_due(T0 + timedelta(hours=2))
    assert (missed.uid, missed.stage, missed.verdict) == (
        "UID-1",
        CheckStage.MISSED,
        LicenceVerdict.UNVERIFIABLE,
    )
    assert check.run_due(T0 + timedelta(hours=3)) == []


def test_a_series_is_checked_per_occurrence_with_its_exceptions(store, cms):
    """A weekly series is checked per occurrence at its start; a cancelled one never, a moved one moved."""
    oslo = ZoneInfo("Europe/Oslo")
    first = datetime(2027, 3, 15, 9, 0, tzinfo=oslo)
    rid = [first + timedelta(weeks=w) for w in range(4)]
    request = ConferenceRequest(
        external_key="key-S", title="Stand-up", start=first, end=first + timedelta(hours=1),
        time_zone="Europe/Oslo", system_ids=(11,),
        recurrence=Recurrence(
            frequency=Frequency.WEEKLY, weekdays=(1,), start_date=date(2027, 3, 15), count=4
        ),
        exceptions=(OccurrenceChange(recurrence_id=rid[1]),
                    OccurrenceChange(recurrence_id=rid[2], start=rid[2] + timedelta(hours=2),
                                     end=rid[2] + timedelta(hours=3))),
    )  # fmt: skip
    booking = make_booking(
        "UID-S", subject="Stand-up", request=request, start=first, end=first + timedelta(hours=1)
    )
    found = sittings(booking, since=first - timedelta(days=1), until=first + timedelta(weeks=5))
    assert [(s.occurrence, s.start) for s in found] == [
        (rid[0].astimezone(UTC), rid[0].astimezone(UTC)),
        (rid[2].astimezone(UTC), (rid[2] + timedelta(hours=2)).astimezone(UTC)),
        (rid[3].astimezone(UTC), rid[3].astimezone(UTC)),
    ]
    # 09:00 Oslo keeps its local time across the DST change of 2027-03-28: 08:00Z, then 07:00Z.
    assert (found[0].start.hour, found[2].start.hour) == (8, 7)
    save(store, booking)
    check = checker(store, cms, lead=timedelta(0))
    moved = found[1]
    assert check.next_due(moved.start - timedelta(hours=3)) == moved.start + timedelta(minutes=1)
    (verdict,) = check.run_due(moved.start + timedelta(minutes=1))
    assert verdict.occurrence == moved.occurrence
    assert (verdict.start, verdict.end) == (moved.start, moved.end)


def test_a_manual_check_looks_at_one_meeting_now(store, cms):
    """`verify --meeting` during the meeting makes a manual verdict; before the lead there is nothing."""
    save(store, make_booking())
    check = checker(store, cms)
    assert check.check("UID-1", T0 - timedelta(hours=1)) == []
    cms.run(POOL, "Weekly", T0)
    (manual,) = check.check("UID-1", T0 + timedelta(minutes=10))
    assert (manual.stage, manual.verdict) == (CheckStage.MANUAL, LicenceVerdict.SMP_NO_OWNER)


def test_every_verdict_is_one_structured_event(store, cms):
    """Each check emits exactly one cms.call_checked carrying the meeting's chain and the verdict."""
    save(store, make_booking())
    cms.run(POOL, "Weekly", T0)
    with capture_logs() as logs:
        checker(store, cms, lead=timedelta(0)).run_due(T0 + timedelta(minutes=1))
    (event,) = [e for e in logs if e["event"] == events.CMS_CALL_CHECKED]
    assert event["log_level"] == "warning"
    expected = {
        "meeting": "UID-1", "organiser": "alice@lab.example", "rooms": ["room-oslo@lab.example"],
        "conference_id": 4711, "space_id": "pool-1", "call_id": "call-pool-1", "owner_found": None,
        "verdict": "smp_no_owner", "stage": "at_start",
    }  # fmt: skip
    assert {k: event[k] for k in expected} == expected
    assert "TMS passed no owner" in event["reason"]


# ---------------------------------------------------------------------------------- owner fix-up


def test_fix_up_sets_the_owner_in_time_before_the_call_and_clears_it_after(store, cms):
    """Space identified before the start: the owner is set in time (PMP+ at start), cleared after the end."""
    cms.spaces[POOL.id] = replace(POOL, name="Weekly")  # TMS named the space early (not what 15.x does)
    save(store, make_booking())
    check = checker(store, cms, enforce_owner=True)
    with capture_logs() as logs:
        check.run_due(T0 - LEAD)
    assert cms.writes == [("set", "pool-1", "alice@lab.example")]
    assert events.CMS_OWNER_SET in [e["event"] for e in logs]
    cms.run(cms.spaces[POOL.id], "Weekly", T0)
    (verdict,) = check.run_due(T0 + timedelta(minutes=1))
    assert (verdict.verdict, verdict.fixup_in_time) == (LicenceVerdict.PMP_CONFIRMED, True)
    assert check.next_due(T0 + timedelta(minutes=1)) == T0 + timedelta(hours=1)
    cms.end(POOL.id)
    assert check.run_due(T0 + timedelta(hours=1)) == []
    assert cms.spaces[POOL.id].owner_jid is None
    actions = [(e.action, e.outcome) for e in store.audit(uid="UID-1")]
    assert actions == [("set_cms_owner", AuditOutcome.APPLIED), ("clear_cms_owner", AuditOutcome.APPLIED)]
    assert check.next_due(T0 + timedelta(hours=1)) is None


def test_a_late_fix_up_counts_only_if_cms_re_evaluates(store, cms):
    """Owner set after the call started: too late without re-evaluation (smp_no_owner), PMP+ with it."""
    save(store, make_booking())
    cms.run(POOL, "Weekly", T0)
    (late,) = checker(store, cms, lead=timedelta(0), enforce_owner=True).run_due(T0 + timedelta(minutes=1))
    assert (late.verdict, late.fixup_in_time) == (LicenceVerdict.SMP_NO_OWNER, False)
    assert "too late" in late.reason


def test_an_extended_meeting_keeps_its_owner_and_another_owner_is_left_alone(store, cms):
    """The clear waits while the meeting's own call runs on; a space someone else owns by then is left."""
    save(store, make_booking())
    cms.run(POOL, "Weekly", T0)
    check = checker(store, cms, lead=timedelta(0), enforce_owner=True)
    check.run_due(T0 + timedelta(minutes=1))
    assert check.run_due(T0 + timedelta(hours=1)) == []  # the call still runs (TMS extended it)
    assert cms.spaces[POOL.id].owner_jid == "alice@lab.example"
    assert check.next_due(T0 + timedelta(hours=1)) == T0 + timedelta(hours=1, minutes=2)
    cms.end(POOL.id)
    cms.spaces[POOL.id] = replace(cms.spaces[POOL.id], owner_jid="carol@lab.example", owner_id="u-carol")
    check.run_due(T0 + timedelta(hours=1, minutes=2))
    assert cms.spaces[POOL.id].owner_jid == "carol@lab.example"
    assert store.audit(uid="UID-1")[-1].outcome is AuditOutcome.SKIPPED


def test_a_refused_fix_up_is_an_event_and_the_verdict_goes_on(store, cms):
    """CMS refusing the owner (userDoesNotExist) is logged and audited; the verdict is still made."""
    save(store, make_booking())
    cms.run(POOL, "Weekly", T0)
    cms.refuse_owner = True
    with capture_logs() as logs:
        (verdict,) = checker(store, cms, lead=timedelta(0), enforce_owner=True).run_due(
            T0 + timedelta(minutes=1)
        )
    assert verdict.verdict is LicenceVerdict.SMP_NO_OWNER
    assert events.CMS_OWNER_FIXUP_FAILED in [e["event"] for e in logs]
    assert [e.outcome for e in store.audit(uid="UID-1")] == [AuditOutcome.FAILED]


def test_a_meeting_moved_after_its_verdict_is_checked_again_at_its_new_time(store, cms):
    """The verdict belongs to the sitting's time: moved to the next day, the meeting is due again then."""
    booking = save(store, make_booking())
    check = checker(store, cms, lead=timedelta(0))
    check.run_due(T0 + timedelta(minutes=1))
    moved = save(store, replace(booking, start=T0 + timedelta(days=1), end=T0 + timedelta(days=1, hours=1)))
    assert check.next_due(T0 + timedelta(minutes=2)) == moved.start + timedelta(minutes=1)
