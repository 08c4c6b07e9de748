"""The licence pre-flight and the per-sitting checker over fakes: schedule, verdicts, retries, fix-up, events.

A real state store (SQLite in a temporary directory) holds the bookings; CMS and the directory are
in-memory fakes defined here. Times are handed in; nothing sleeps.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from structlog.testing import capture_logs

from xesync import events
from xesync.cms_facts import CmsCall, CmsSpace, CmsUser, LicensingSnapshot, MeetingOnCms, PersonalLicenceUse
from xesync.directory import NotInDirectory, Person
from xesync.errors import CmsHttpError, ServiceUnavailableError
from xesync.licence_schedule import sittings
from xesync.licence_service import LicenceChecker, LicencePreflightService
from xesync.meetings import ConferenceRequest, Frequency, OccurrenceChange, Recurrence
from xesync.model import AuditOutcome, Booking, CheckStage, LicenceVerdict, TmsState
from xesync.store import Store

T0 = datetime(2027, 3, 10, 9, 0, tzinfo=UTC)
LEAD = timedelta(minutes=5)
ALICE = CmsUser(id="u-alice", jid="alice@lab.example", email="alice@lab.example", has_license=True,
                user_profile="p-pmp", profile_from="user")  # fmt: skip
CAROL = CmsUser(id="u-carol", jid="carol@lab.example", email="carol@lab.example", has_license=False,
                profile_from="system")  # fmt: skip


def person(name: str, *, pmp: bool) -> Person:
    """A lab user as the directory resolves them."""
    return Person(
        dn=f"uid={name},ou=people,dc=lab,dc=example", username=name, tms_username=f"LAB\\{name}",
        display_name=name, first_name=None, last_name=None, email=f"{name}@lab.example",
        addresses=frozenset({f"{name}@lab.example"}), jid=f"{name}@lab.example", guid=None, pmp=pmp,
        pmp_group="cn=cms-pmp" if pmp else None,
    )  # fmt: skip


class FakeDirectory:
    """The directory port over a dict."""

    def __init__(self, *people: Person) -> None:
        self.people = {p.email: p for p in people}

    def resolve(self, address: str) -> Person | NotInDirectory:
        """The person with this address, else NotInDirectory."""
        return self.people.get(address.lower(), NotInDirectory(address))


@dataclass
class FakeCallMonitor:
    """The CallMonitor port in memory: users, spaces and their calls, licence use; ``down`` fails all."""

    users: dict[str, CmsUser] = field(default_factory=lambda: {"alice": ALICE, "carol": CAROL})
    spaces: dict[str, CmsSpace] = field(default_factory=dict)
    calls: dict[str, CmsCall] = field(default_factory=dict)  # space id -> active call
    reevaluate: bool = False
    licensed: dict[str, int] = field(default_factory=dict)  # user id -> personal-licence calls
    down: bool = False
    refuse_owner: bool = False
    writes: list[tuple[str, str, str]] = field(default_factory=list)

    def _up(self) -> None:
        if self.down:
            raise ServiceUnavailableError("cms", "HTTP 503")

    def run(self, space: CmsSpace, title: str, started: datetime) -> None:
        """TMS opens a pool space for a meeting and starts its call; the licence is chosen now."""
        self.spaces[space.id] = replace(space, name=title)
        self.calls[space.id] = CmsCall(
            id=f"call-{space.id}", cospace_id=space.id, name=title, started_at=started
        )
        owner = self._owner_user(self.spaces[space.id])
        if owner is not None and owner.has_license:
            self.licensed[owner.id] = self.licensed.get(owner.id, 0) + 1

    def end(self, space_id: str) -> None:
        """TMS ends the call and resets the space's name (not its owner)."""
        self.calls.pop(space_id, None)
        self.spaces[space_id] = replace(self.spaces[space_id], name="TMS_Scheduled_Meeting_1")
        self.licensed.clear()

    def _owner_user(self, space: CmsSpace) -> CmsUser | None:
        return next((u for u in self.users.values() if u.jid == space.owner_jid), None)

    def find_user(self, *, jid: str | None = None, email: str | None = None) -> CmsUser | None:
        """By JID, else by e-mail."""
        self._up()
        return next((u for u in self.users.values() if jid and u.jid == jid), None) or next(
            (u for u in self.users.values() if email and u.email == email), None
        )

    def user(self, user_id: str) -> CmsUser | None:
        """By id."""
        self._up()
        return next((u for u in self.users.values() if u.id == user_id), None)

    def find_meeting(
        self, *, info_text: str | None, title: str | None, start: datetime | None = None
    ) -> MeetingOnCms:
        """The space named after the title, with its call."""
        self._up()
        del info_text, start
        for space in self.spaces.values():
            if space.name == title:
                return MeetingOnCms(space=space, call=self.calls.get(space.id), candidates=1)
        return MeetingOnCms()

    def space(self, space_id: str) -> CmsSpace | None:
        """By id."""
        self._up()
        return self.spaces.get(space_id)

    def active_call(self, space_id: str) -> CmsCall | None:
        """The space's call."""
        self._up()
        return self.calls.get(space_id)

    def set_owner(self, space_id: str, jid: str) -> CmsSpace:
        """Set ownerJid (and ownerId); re-assign the licence only when CMS re-evaluates."""
        self._up()
        if self.refuse_owner:
            raise CmsHttpError(400, "userDoesNotExist", f"/coSpaces/{space_id}")
        user = next(u for u in self.users.values() if u.jid == jid)
        self.spaces[space_id] = replace(self.spaces[space_id], owner_jid=jid, owner_id=user.id)
        self.writes.append(("set", space_id, jid))
        if self.reevaluate and space_id in self.calls and user.has_license:
            self.licensed[user.id] = self.licensed.get(user.id, 0) + 1
        return self.spaces[space_id]

    def clear_owner(self, space_id: str, *, only_if: str | None = None) -> bool:
        """Clear ownerJid only while ``only_if`` owns the space."""
        self._up()
        space = self.spaces[space_id]
        if space.owner_jid is None or (only_if is not None and space.owner_jid != only_if):
            return False
        self.spaces[space_id] = replace(space, owner_jid=None, owner_id=None)
        self.writes.append(("clear", space_id, only_if or ""))
        return True

    def licensing(self) -> LicensingSnapshot:
        """The personal-licence calls per user."""
        self._up()
        return LicensingSnapshot(
            calls_active=len(self.calls),
            calls_without_personal_licence=len(self.calls) - sum(self.licensed.values()),
            active=tuple(
                PersonalLicenceUse(user_id=k, calls_active=v) for k, v in self.licensed.items() if v
            ),
        )

    def close(self) -> None:
        """Nothing to close."""


POOL = CmsSpace(id="pool-1", name="TMS_Scheduled_Meeting_1")


def make_booking(uid: str = "UID-1", **changes: object) -> Booking:
    """A live single meeting from T0 for an hour, by Alice in Oslo."""
    base: dict[str, object] = {
        "uid": uid, "external_key": f"key-{uid}", "conference_id": 4711, "version": 1, "owner": "LAB\\alice",
        "organiser": "alice@lab.example", "rooms": ("room-oslo@lab.example",), "subject": "Weekly",
        "start": T0, "end": T0 + timedelta(hours=1), "content_hash": "h", "state": TmsState.SAVED,
        "info_text": "Dial in: 990001@video.lab.example", "updated_at": T0 - timedelta(days=1),
        "predicted_licence": "pmp",
    }  # fmt: skip
    base.update(changes)
    return Booking(**base)  # type: ignore[arg-type]


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


# ---------------------------------------------------------------------------------- pre-flight


def test_preflight_predicts_pmp_for_a_licensed_cms_user():
    """Alice, in the PMP+ group and a licensed CMS user, is predicted PMP+ with no note for her."""
    prediction = LicencePreflightService(FakeCallMonitor()).predict(make_booking(), person("alice", pmp=True))
    assert (prediction.licence, prediction.note) == ("pmp", "")
    assert "alice@lab.example" in prediction.reason


def test_preflight_predicts_smp_and_says_what_to_ask_it_for():
    """Carol, outside the group and unlicensed, is predicted SMP+; her note names what to ask IT for."""
    service = LicencePreflightService(FakeCallMonitor(), pmp_groups=("cn=cms-pmp",))
    prediction = service.predict(make_booking(organiser="carol@lab.example"), person("carol", pmp=False))
    assert prediction.licence == "smp"
    assert "ask IT for membership of cn=cms-pmp" in prediction.note


def test_preflight_without_advice_leaves_the_confirmation_alone():
    """With advise_organiser off, an SMP+ prediction carries no note."""
    service = LicencePreflightService(FakeCallMonitor(), advise_organiser=False)
    assert service.predict(make_booking(), person("carol", pmp=False)).note == ""


def test_preflight_never_raises_when_cms_is_down():
    """CMS down: licence unknown, the reason says so and what the directory suggests; an event is logged."""
    with capture_logs() as logs:
        prediction = LicencePreflightService(FakeCallMonitor(down=True)).predict(
            make_booking(), person("alice", pmp=True)
        )
    assert prediction.licence is None
    assert "CMS could not be asked" in prediction.reason
    assert "the directory alone suggests PMP+" in prediction.reason
    assert [e["event"] for e in logs] == [events.LICENCE_PREDICTION_FAILED]


def test_preflight_turns_a_bug_into_an_unknown_prediction():
    """An unexpected error in the adapter gives licence=None instead of breaking the sync."""
    monitor = FakeCallMonitor()
    monitor.find_user = lambda **_: 1 / 0  # type: ignore[method-assign]
    with capture_logs():
        prediction = LicencePreflightService(monitor).predict(make_booking(), person("alice", pmp=True))
    assert prediction.licence is None
    assert "ZeroDivisionError" in prediction.reason


def test_preflight_without_a_directory_asks_cms_by_e_mail():
    """No directory: the organiser's CMS user is found by e-mail and its licence decides."""
    service = LicencePreflightService(FakeCallMonitor())
    assert service.predict(make_booking(), None).licence == "pmp"
    assert service.predict(make_booking(organiser="carol@lab.example"), None).licence == "smp"
    assert service.predict(make_booking(organiser="erin@partner.example"), None).licence == "smp"


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
