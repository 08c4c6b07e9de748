"""An attendee's copy of an organiser's meeting, and how an update refreshes it (``ews.md`` §3.3, §3.4)."""

from __future__ import annotations

from xesync.lab.ews.store import Attendee, Item, Override, Person


def refresh(copy: Item, org: Item, *, full: bool) -> None:
    """Bring an existing copy up to date with the organiser's.

    A full update asks again, so the attendee's answers to single instances no longer count; an
    informational one keeps the instances this attendee declined out of its series.
    """
    mirror(copy, org)
    if full:
        _forget_instance_answers(org, copy)
    else:
        copy.deleted_occurrences |= {
            k for k, v in org.overrides.items() if v.responses.get(copy.mailbox) == "Decline"
        }


def mirror(copy: Item, org: Item) -> None:
    """Copy what an attendee's item shares with the organiser's (``ews.md`` §3.3)."""
    copy.element = "CalendarItem"
    copy.item_class = "IPM.Appointment"
    copy.uid = org.uid
    copy.subject = org.subject
    copy.body, copy.body_type = org.body, org.body_type
    copy.sensitivity = org.sensitivity
    copy.importance = org.importance
    copy.location = org.location
    copy.start, copy.end = org.start, org.end
    copy.start_tz, copy.end_tz = org.start_tz, org.end_tz
    copy.is_all_day = org.is_all_day
    copy.is_meeting = True
    copy.is_cancelled = org.is_cancelled
    copy.is_response_requested = True
    copy.meeting_request_was_sent = False
    copy.organizer = org.organizer
    copy.required = [Attendee(Person(a.person.email, a.person.name), a.response) for a in org.required]
    copy.optional = [Attendee(Person(a.person.email, a.person.name), a.response) for a in org.optional]
    copy.resources = [Attendee(Person(a.person.email, a.person.name), a.response) for a in org.resources]
    copy.sequence = org.sequence
    copy.recurrence = org.recurrence
    own = {k: v for k, v in copy.overrides.items() if v.my_response}
    copy.overrides = {
        # The attendee keeps its own answer to an instance the organiser's copy also overrides.
        k: Override(v.start, v.end, v.subject, v.location, v.body, own[k].my_response if k in own else None)
        for k, v in org.overrides.items()
    }
    for k, v in own.items():
        copy.overrides.setdefault(k, Override(v.start, v.end, my_response=v.my_response))
    copy.deleted_occurrences = set(org.deleted_occurrences)
    copy.extended = dict(org.extended)


def _forget_instance_answers(org: Item, copy: Item) -> None:
    """A full update asks again: one attendee's answers to single instances no longer count."""
    copy.overrides = {k: v for k, v in copy.overrides.items() if k in org.overrides}
    for override in copy.overrides.values():
        override.my_response = None
    for override in org.overrides.values():
        override.responses.pop(copy.mailbox, None)
