"""Answers to one occurrence of a series, and the RBA's per-occurrence decisions (ews.md §3.5, §3.1)."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

import pytest
from exchangelib import UTC, CalendarItem, EWSDateTime, EWSTimeZone
from exchangelib.items import SEND_ONLY, SEND_TO_ALL_AND_SAVE_COPY
from exchangelib.recurrence import Recurrence, WeeklyPattern

ROOM = "room-oslo@lab.example"
ROOM_TENTATIVE = "room-tromso@lab.example"
UTC_TZ = EWSTimeZone("UTC")
WINDOW = (EWSDateTime(2026, 3, 1, tzinfo=UTC), EWSDateTime(2026, 5, 1, tzinfo=UTC))
MONDAYS = [EWSDateTime(2026, 3, d, 9, tzinfo=UTC) for d in (9, 16, 23, 30)]


def send_weekly(account, room=ROOM, count=4, subject="Weekly"):
    """Send a weekly Monday 09:00 UTC series of ``count`` instances with ``room`` as a resource."""
    item = CalendarItem(
        account=account,
        folder=account.calendar,
        start=MONDAYS[0],
        end=MONDAYS[0] + timedelta(hours=1),
        subject=subject,
        resources=[room],
        recurrence=Recurrence(
            pattern=WeeklyPattern(interval=1, weekdays=["Monday"]), start=date(2026, 3, 9), number=count
        ),
    )
    item.save(send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
    return item


def send_single(account, start, subject, room=ROOM):
    """Send a one-hour single meeting with ``room`` as a resource."""
    item = CalendarItem(
        account=account,
        folder=account.calendar,
        start=start,
        end=start + timedelta(hours=1),
        subject=subject,
        resources=[room],
    )
    item.save(send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
    return item


def view(account, *fields):
    """``account``'s calendar view over the test window."""
    return list(account.calendar.view(*WINDOW).only("subject", "start", "type", *fields))


def room_master(service, room=ROOM, subject="Weekly"):
    """The room's RecurringMaster of the series."""
    (master,) = (
        service(room)
        .calendar.filter(subject=subject)
        .only("type", "my_response_type", "deleted_occurrences", "modified_occurrences")
    )
    assert master.type == "RecurringMaster"
    return master


def inbox(account):
    """``(subject, response_type)`` of ``account``'s inbox, sorted (the lab clock is frozen)."""
    return sorted((m.subject, m.response_type) for m in account.inbox.all().only("subject", "response_type"))


def resource_responses(account):
    """The room's response per instance as the organiser's calendar view shows it."""
    return [o.resources[0].response_type for o in view(account, "resources")]


def test_declining_one_occurrence_removes_only_that_instance(organiser, service):
    """Declining a room-view occurrence deletes only that instance and tells the organiser about it alone."""
    alice = organiser()
    send_weekly(alice)
    second = view(service(ROOM))[1]
    second.decline(message_disposition=SEND_ONLY, body="Busy in TMS")
    master = room_master(service)
    assert master.my_response_type == "Accept"
    assert [d.start for d in master.deleted_occurrences] == [MONDAYS[1]]
    assert [o.start for o in view(service(ROOM))] == [MONDAYS[0], MONDAYS[2], MONDAYS[3]]
    assert inbox(alice) == [("Accepted: Weekly", "Accept"), ("Declined: Weekly", "Decline")]
    (declined,) = alice.inbox.filter(subject="Declined: Weekly").only("associated_calendar_item_id", "body")
    assert declined.associated_calendar_item_id.id == view(alice)[1].id
    assert declined.body == "Busy in TMS"
    assert resource_responses(alice) == ["Accept", "Decline", "Accept", "Accept"]
    (org_master,) = alice.calendar.filter(subject="Weekly").only("resources")
    assert org_master.resources[0].response_type == "Accept"


def test_accepting_one_occurrence_makes_it_an_exception(organiser, service):
    """Accepting one instance of a tentative series makes it an Exception with its own response."""
    alice = organiser()
    send_weekly(alice, room=ROOM_TENTATIVE)
    room = service(ROOM_TENTATIVE)
    view(room)[2].accept(message_disposition=SEND_ONLY)
    after = view(room, "my_response_type")
    assert [o.type for o in after] == ["Occurrence", "Occurrence", "Exception", "Occurrence"]
    assert [o.my_response_type for o in after] == ["NoResponseReceived"] * 2 + [
        "Accept",
        "NoResponseReceived",
    ]
    master = room_master(service, ROOM_TENTATIVE)
    assert master.my_response_type == "NoResponseReceived"
    assert [o.original_start for o in master.modified_occurrences] == [MONDAYS[2]]
    assert [r.subject for r in room.inbox.all().only("subject")] == ["Weekly"]
    assert inbox(alice) == [("Accepted: Weekly", "Accept")]
    assert resource_responses(alice) == ["Unknown", "Unknown", "Accept", "Unknown"]


def test_tentatively_accepting_an_occurrence_item_id_answers_that_instance(organiser, service):
    """Tentatively accepting an occurrence fetched by OccurrenceItemId leaves the rest of the series alone."""
    alice = organiser()
    send_weekly(alice, room=ROOM_TENTATIVE)
    master = room_master(service, ROOM_TENTATIVE)
    fourth = master.occurrence(4)
    fourth.refresh()
    fourth.tentatively_accept(message_disposition=SEND_ONLY)
    after = view(service(ROOM_TENTATIVE), "my_response_type")
    assert [o.my_response_type for o in after] == ["NoResponseReceived"] * 3 + ["Tentative"]
    assert room_master(service, ROOM_TENTATIVE).my_response_type == "NoResponseReceived"
    assert inbox(alice) == [("Tentative: Weekly", "Tentative")]


def test_informational_update_keeps_the_rooms_answer_to_one_occurrence(organiser, service):
    """An organiser's informational update keeps the room's accepted exception's own response."""
    alice = organiser()
    sent = send_weekly(alice, room=ROOM_TENTATIVE)
    view(service(ROOM_TENTATIVE))[0].accept(message_disposition=SEND_ONLY)
    sent.location = "Floor 2"
    sent.save(update_fields=["location"], send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
    after = view(service(ROOM_TENTATIVE), "my_response_type", "location")
    assert [o.location for o in after] == ["Floor 2"] * 4
    assert after[0].my_response_type == "Accept"


def test_room_decline_of_one_occurrence_survives_an_informational_update(organiser, service):
    """An instance the room declined stays out of its series when the organiser changes only the location."""
    alice = organiser()
    sent = send_weekly(alice)
    view(service(ROOM))[3].decline(message_disposition=SEND_ONLY)
    sent.location = "Floor 2"
    sent.save(update_fields=["location"], send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
    assert [o.start for o in view(service(ROOM))] == MONDAYS[:3]


@pytest.fixture
def conflict_limits(ews):
    """``conflict_limits(percent, count)`` sets the Oslo room's conflict limits for one test."""
    before = ews.ews.policies[ROOM]

    def set_limits(percent, count):
        ews.ews.policies[ROOM] = dataclasses.replace(
            before, conflict_percentage_allowed=percent, maximum_conflict_instances=count
        )

    yield set_limits
    ews.ews.policies[ROOM] = before


def test_series_within_the_conflict_limits_is_accepted_without_the_conflicts(
    organiser, service, conflict_limits
):
    """Within both limits the RBA accepts the series, deletes the conflicting instance and names its date."""
    conflict_limits(25, 1)
    alice, bob = organiser(), organiser("bob@lab.example")
    send_single(bob, MONDAYS[1] + timedelta(minutes=30), "Bob's")
    send_weekly(alice)
    master = room_master(service)
    assert master.my_response_type == "Accept"
    assert [d.start for d in master.deleted_occurrences] == [MONDAYS[1]]
    assert [o.subject for o in view(service(ROOM))] == ["Weekly", "Bob's", "Weekly", "Weekly"]
    assert inbox(alice) == [("Accepted: Weekly", "Accept")]
    (accepted,) = alice.inbox.all().only("body")
    assert "2026-03-16 09:00 UTC" in accepted.body
    assert resource_responses(alice) == ["Accept", "Decline", "Accept", "Accept"]


def test_series_beyond_the_conflict_count_is_declined_whole(organiser, service, conflict_limits):
    """Two conflicts against MaximumConflictInstances 1 decline the whole series."""
    conflict_limits(100, 1)
    alice, bob = organiser(), organiser("bob@lab.example")
    send_single(bob, MONDAYS[1], "Bob's 1")
    send_single(bob, MONDAYS[2], "Bob's 2")
    send_weekly(alice)
    assert [o.subject for o in view(service(ROOM))] == ["Bob's 1", "Bob's 2"]
    assert inbox(alice) == [("Declined: Weekly", "Decline")]


def test_series_beyond_the_conflict_percentage_is_declined_whole(organiser, service, conflict_limits):
    """Two conflicts in four instances (50%) against ConflictPercentageAllowed 25 decline the whole series."""
    conflict_limits(25, 5)
    alice, bob = organiser(), organiser("bob@lab.example")
    send_single(bob, MONDAYS[0], "Bob's 1")
    send_single(bob, MONDAYS[3], "Bob's 2")
    send_weekly(alice)
    assert [o.subject for o in view(service(ROOM))] == ["Bob's 1", "Bob's 2"]
    assert inbox(alice) == [("Declined: Weekly", "Decline")]


def test_default_limits_decline_a_series_with_one_conflict(organiser, service):
    """With the default limits (0 and 0) a single conflicting instance declines the whole series."""
    alice, bob = organiser(), organiser("bob@lab.example")
    send_single(bob, MONDAYS[2], "Bob's")
    sent = send_weekly(alice)
    sent.refresh()
    assert sent.resources[0].response_type == "Decline"
    assert [o.subject for o in view(service(ROOM))] == ["Bob's"]


def test_single_meeting_conflict_ignores_the_series_limits(organiser, service, conflict_limits):
    """The conflict limits apply to series only: a conflicting single meeting is still declined."""
    conflict_limits(100, 10)
    alice, bob = organiser(), organiser("bob@lab.example")
    send_single(bob, MONDAYS[0], "Bob's")
    send_single(alice, MONDAYS[0], "Alice's")
    assert [o.subject for o in view(service(ROOM))] == ["Bob's"]
    assert inbox(alice) == [("Declined: Alice's", "Decline")]


def move_second(series, start):
    """The organiser moves the series' second instance to ``start`` and sends the update."""
    occurrence = series.occurrence(2)
    occurrence.refresh()
    occurrence.start, occurrence.end = start, start + timedelta(hours=1)
    occurrence.save(update_fields=["start", "end"], send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)


def test_moved_occurrence_that_now_conflicts_is_declined_alone(organiser, service):
    """An instance moved onto another booking is declined in the room; the rest of the series stays."""
    alice, bob = organiser(), organiser("bob@lab.example")
    tuesday = MONDAYS[1] + timedelta(days=1)
    send_single(bob, tuesday, "Bob's")
    move_second(send_weekly(alice), tuesday)
    master = room_master(service)
    assert master.my_response_type == "Accept"
    assert [d.start for d in master.deleted_occurrences] == [MONDAYS[1]]
    assert [o.subject for o in view(service(ROOM))] == ["Weekly", "Bob's", "Weekly", "Weekly"]
    assert inbox(alice) == [("Accepted: Weekly", "Accept"), ("Declined: Weekly", "Decline")]
    assert resource_responses(alice) == ["Accept", "Decline", "Accept", "Accept"]


def test_moved_occurrence_to_a_free_slot_stays_accepted(organiser, service):
    """An instance moved to a free slot becomes an accepted Exception in the room at its new time."""
    alice = organiser()
    tuesday = MONDAYS[1] + timedelta(days=1)
    move_second(send_weekly(alice), tuesday)
    after = view(service(ROOM), "my_response_type")
    assert [(o.start, o.type) for o in after] == [
        (MONDAYS[0], "Occurrence"),
        (tuesday, "Exception"),
        (MONDAYS[2], "Occurrence"),
        (MONDAYS[3], "Occurrence"),
    ]
    assert {o.my_response_type for o in after} == {"Accept"}
    assert room_master(service).deleted_occurrences is None


def test_moved_occurrence_may_conflict_when_the_room_allows_conflicts(ews, organiser, service):
    """With AllowConflicts the moved instance is kept even though it overlaps another booking."""
    before = ews.ews.policies[ROOM]
    ews.ews.policies[ROOM] = dataclasses.replace(before, allow_conflicts=True)
    try:
        alice, bob = organiser(), organiser("bob@lab.example")
        tuesday = MONDAYS[1] + timedelta(days=1)
        send_single(bob, tuesday, "Bob's")
        move_second(send_weekly(alice), tuesday)
        assert [o.subject for o in view(service(ROOM))] == ["Weekly", "Bob's", "Weekly", "Weekly", "Weekly"]
        assert room_master(service).deleted_occurrences is None
    finally:
        ews.ews.policies[ROOM] = before
