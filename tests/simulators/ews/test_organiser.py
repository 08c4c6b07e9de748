"""Organisers create, update and cancel meetings with rooms; the rooms process them (ews.md §3)."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

from exchangelib import UTC, CalendarItem, EWSDateTime, EWSTimeZone, HTMLBody
from exchangelib.items import SEND_TO_ALL_AND_SAVE_COPY, SEND_TO_NONE
from exchangelib.recurrence import Recurrence, WeeklyPattern

ROOM = "room-oslo@lab.example"
ROOM2 = "room-bergen@lab.example"
ROOM_TENTATIVE = "room-tromso@lab.example"
UTC_TZ = EWSTimeZone("UTC")
OSLO = EWSTimeZone("Europe/Oslo")
WINDOW = (EWSDateTime(2026, 3, 1, tzinfo=UTC), EWSDateTime(2026, 5, 1, tzinfo=UTC))
FIELDS = ["subject", "start", "end", "uid", "my_response_type", "is_cancelled", "type", "organizer", "body"]


def send(account, *, start, hours=1, rooms=(ROOM,), **fields):
    """Create and send a meeting from ``account`` with ``rooms`` as resources."""
    item = CalendarItem(
        account=account,
        folder=account.calendar,
        start=start,
        end=start + timedelta(hours=hours),
        resources=list(rooms),
        **fields,
    )
    item.save(send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
    return item


def room_view(service, room=ROOM):
    """The room's calendar view over the test window, via impersonation."""
    return list(service(room).calendar.view(*WINDOW).only(*FIELDS))


def test_created_meeting_lands_accepted_in_the_room_with_the_same_uid(organiser, service):
    """A meeting sent with a room lands in the room calendar, RBA-accepted, with the organiser's UID."""
    alice = organiser()
    sent = send(
        alice, start=EWSDateTime(2026, 3, 2, 9, tzinfo=OSLO), subject="Planning", body=HTMLBody("<p>a</p>")
    )
    mine = alice.calendar.get(id=sent.id)
    (copy,) = room_view(service)
    assert copy.uid == mine.uid
    assert len(mine.uid) > 64
    assert mine.uid.startswith("040000008200E00074C5B7101A82E008")
    assert copy.my_response_type == "Accept"
    assert copy.subject == "Planning"
    assert copy.organizer.email_address == "alice@lab.example"
    assert copy.start == EWSDateTime(2026, 3, 2, 8, tzinfo=UTC)
    mine.refresh()
    room_attendee = next(a for a in mine.resources if a.mailbox.email_address == ROOM)
    assert room_attendee.response_type == "Accept"
    assert mine.my_response_type == "Organizer"


def test_organiser_update_moves_the_room_copy_in_place(organiser, service):
    """An organiser's time change updates the same room item: same id, new changekey, new time."""
    alice = organiser()
    sent = send(alice, start=EWSDateTime(2026, 3, 3, 9, tzinfo=UTC_TZ), subject="Review")
    (before,) = room_view(service)
    sent.start = EWSDateTime(2026, 3, 3, 13, tzinfo=UTC_TZ)
    sent.end = EWSDateTime(2026, 3, 3, 14, tzinfo=UTC_TZ)
    sent.save(update_fields=["start", "end"], send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
    (after,) = room_view(service)
    assert after.id == before.id
    assert after.changekey != before.changekey
    assert after.start == EWSDateTime(2026, 3, 3, 13, tzinfo=UTC)
    assert after.my_response_type == "Accept"


def test_update_sent_to_none_does_not_reach_the_room(organiser, service):
    """SendToNone changes only the organiser's copy."""
    alice = organiser()
    sent = send(alice, start=EWSDateTime(2026, 3, 3, 9, tzinfo=UTC_TZ), subject="Review")
    sent.subject = "Private rename"
    sent.save(update_fields=["subject"], send_meeting_invitations=SEND_TO_NONE)
    (copy,) = room_view(service)
    assert copy.subject == "Review"


def test_cancelled_meeting_is_kept_cancelled_in_the_room(organiser, service):
    """Cancelling keeps the room copy, marked cancelled (RemoveCanceledMeetings off)."""
    alice = organiser()
    sent = send(alice, start=EWSDateTime(2026, 3, 4, 9, tzinfo=UTC_TZ), subject="Retro")
    sent.cancel()
    (copy,) = room_view(service)
    assert copy.is_cancelled is True
    assert copy.subject == "Canceled: Retro"
    assert list(alice.calendar.view(*WINDOW)) == []


def test_cancelled_meeting_is_removed_when_the_room_removes_cancellations(ews, organiser, service):
    """With remove_canceled_meetings the room copy disappears, and sync reports a delete."""
    ews.ews.policies[ROOM2] = dataclasses.replace(ews.ews.policies[ROOM2], remove_canceled_meetings=True)
    try:
        alice = organiser()
        sent = send(alice, start=EWSDateTime(2026, 3, 4, 9, tzinfo=UTC_TZ), rooms=(ROOM2,), subject="Retro")
        cal = service(ROOM2).calendar
        assert [c for c, _ in cal.sync_items(only_fields=["uid"])] == ["create"]
        sent.delete(send_meeting_cancellations=SEND_TO_ALL_AND_SAVE_COPY)
        assert [c for c, _ in cal.sync_items(only_fields=["uid"])] == ["delete"]
        assert room_view(service, ROOM2) == []
    finally:
        ews.ews.policies[ROOM2] = dataclasses.replace(ews.ews.policies[ROOM2], remove_canceled_meetings=False)


def test_conflicting_meeting_is_declined_and_the_organiser_told(organiser, service):
    """A second meeting overlapping an accepted one is declined; the organiser's inbox gets the decline."""
    alice, bob = organiser(), organiser("bob@lab.example")
    send(alice, start=EWSDateTime(2026, 3, 5, 9, tzinfo=UTC_TZ), subject="First")
    second = send(bob, start=EWSDateTime(2026, 3, 5, 9, 30, tzinfo=UTC_TZ), subject="Second")
    assert [c.subject for c in room_view(service)] == ["First"]
    second.refresh()
    assert second.resources[0].response_type == "Decline"
    responses = [m.subject for m in bob.inbox.all().only("subject")]
    assert responses == ["Declined: Second"]


def test_auto_update_room_keeps_the_meeting_tentative(organiser, service):
    """A Calendar-Attendant-only room keeps the copy tentative with a request in its inbox."""
    alice = organiser()
    send(alice, start=EWSDateTime(2026, 3, 6, 9, tzinfo=UTC_TZ), rooms=(ROOM_TENTATIVE,), subject="Ops")
    (copy,) = room_view(service, ROOM_TENTATIVE)
    assert copy.my_response_type == "NoResponseReceived"
    requests = list(service(ROOM_TENTATIVE).inbox.all().only("subject", "associated_calendar_item_id"))
    assert [r.subject for r in requests] == ["Ops"]
    assert requests[0].associated_calendar_item_id.id == copy.id


def test_meeting_beyond_the_booking_window_is_declined(organiser, service):
    """The RBA declines a meeting that starts after BookingWindowInDays."""
    alice = organiser()
    sent = send(alice, start=EWSDateTime(2026, 12, 1, 9, tzinfo=UTC_TZ), subject="Far")
    sent.refresh()
    assert sent.resources[0].response_type == "Decline"
    assert list(service(ROOM).calendar.all()) == []


def weekly(start_date, count=4):
    """A weekly-on-Monday recurrence of ``count`` instances."""
    return Recurrence(pattern=WeeklyPattern(interval=1, weekdays=["Monday"]), start=start_date, number=count)


def test_recurring_meeting_expands_in_the_room_view(organiser, service):
    """A weekly series shows as occurrences in the view and as one master in sync."""
    alice = organiser()
    send(
        alice,
        start=EWSDateTime(2026, 3, 9, 9, tzinfo=OSLO),
        subject="Weekly",
        recurrence=weekly(date(2026, 3, 9)),
    )
    view = room_view(service)
    assert [v.type for v in view] == ["Occurrence"] * 4
    assert len({v.uid for v in view}) == 1
    assert len({v.id for v in view}) == 4
    # 09:00 Oslo is 08:00 UTC before the DST change on 29 March and 07:00 UTC after it.
    assert [v.start.hour for v in view] == [8, 8, 8, 7]
    changes = list(service(ROOM).calendar.sync_items(only_fields=["type", "is_recurring", "uid"]))
    assert [(c, i.type, i.is_recurring) for c, i in changes] == [("create", "RecurringMaster", False)]


def test_moving_one_occurrence_updates_the_room_master(organiser, service):
    """Moving one instance makes it an Exception in the room view and an Update of the room master."""
    alice = organiser()
    master = send(
        alice,
        start=EWSDateTime(2026, 3, 9, 9, tzinfo=UTC_TZ),
        subject="Weekly",
        recurrence=weekly(date(2026, 3, 9)),
    )
    cal = service(ROOM).calendar
    list(cal.sync_items(only_fields=["uid"]))
    occurrence = master.occurrence(2)
    occurrence.refresh()
    occurrence.start = EWSDateTime(2026, 3, 17, 9, tzinfo=UTC_TZ)
    occurrence.end = EWSDateTime(2026, 3, 17, 10, tzinfo=UTC_TZ)
    occurrence.save(update_fields=["start", "end"], send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
    changes = list(cal.sync_items(only_fields=["type", "modified_occurrences", "deleted_occurrences"]))
    assert [(c, i.type) for c, i in changes] == [("update", "RecurringMaster")]
    (moved,) = changes[0][1].modified_occurrences
    assert moved.start == EWSDateTime(2026, 3, 17, 9, tzinfo=UTC)
    assert moved.original_start == EWSDateTime(2026, 3, 16, 9, tzinfo=UTC)
    assert changes[0][1].deleted_occurrences is None
    view = room_view(service)
    assert [v.type for v in view] == ["Occurrence", "Exception", "Occurrence", "Occurrence"]


def test_cancelling_one_occurrence_deletes_it_from_the_room_series(organiser, service):
    """Cancelling one instance adds a DeletedOccurrence to the room master and drops it from the view."""
    alice = organiser()
    master = send(
        alice,
        start=EWSDateTime(2026, 3, 9, 9, tzinfo=UTC_TZ),
        subject="Weekly",
        recurrence=weekly(date(2026, 3, 9)),
    )
    third = master.occurrence(3)
    third.refresh()
    third.delete(send_meeting_cancellations=SEND_TO_ALL_AND_SAVE_COPY)
    (room_master,) = service(ROOM).calendar.filter(subject="Weekly").only("deleted_occurrences", "type")
    assert room_master.type == "RecurringMaster"
    assert [d.start for d in room_master.deleted_occurrences] == [EWSDateTime(2026, 3, 23, 9, tzinfo=UTC)]
    assert len(room_view(service)) == 3
