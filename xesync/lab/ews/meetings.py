"""Meetings between mailboxes: invitations, room processing, responses and cancellations.

This is ``ews.md`` §3: an organiser's send lands a copy with the same UID in every attendee mailbox of
the lab; a room's Calendar Attendant and Resource Booking Attendant (RBA) then act per the room's
:class:`RoomPolicy`; responses travel back to the organiser's copy and inbox.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from xesync import events
from xesync.lab.ews.calendar import item_span, live_occurrences
from xesync.lab.ews.settings import RoomPolicy
from xesync.lab.ews.store import (
    STATE_CANCELED,
    STATE_MEETING,
    STATE_RECEIVED,
    Attendee,
    Item,
    Override,
    Person,
    Store,
)

log = structlog.get_logger(__name__)

RESPONSE_CLASS = {
    "Accept": "IPM.Schedule.Meeting.Resp.Pos",
    "Decline": "IPM.Schedule.Meeting.Resp.Neg",
    "Tentative": "IPM.Schedule.Meeting.Resp.Tent",
}
RESPONSE_PREFIX = {"Accept": "Accepted: ", "Decline": "Declined: ", "Tentative": "Tentative: "}


@dataclass(slots=True)
class Pending:
    """A room copy the RBA will decide once the lab clock reaches ``due``."""

    item_id: str
    due: datetime


class Meetings:
    """Meeting traffic between the lab's mailboxes.

    :param store: the mailbox store.
    :param policies: calendar processing per room address (casefolded).
    :param rba_delay_s: seconds of lab time before the RBA decides (0 = at once).
    """

    def __init__(self, store: Store, policies: Mapping[str, RoomPolicy], rba_delay_s: int = 0) -> None:
        self.store = store
        self.policies = policies
        self.rba_delay_s = rba_delay_s
        self.pending: list[Pending] = []
        self.responses: list[dict[str, str]] = []

    # ------------------------------------------------------------------------------- organiser side

    def send(self, org: Item, *, full: bool, recipients: set[str] | None = None) -> None:
        """Deliver the organiser's meeting (new or updated) to every attendee mailbox in the lab.

        :param full: a FullUpdate (time, recurrence) rather than an InformationalUpdate.
        :param recipients: only these attendees (SendToChanged…); ``None`` = all.
        """
        org.is_meeting = True
        org.meeting_request_was_sent = True
        org.appointment_state = STATE_MEETING
        for attendee in org.attendees():
            email = attendee.person.email.casefold()
            if email == org.mailbox or self.store.mailbox(email) is None:
                continue
            if recipients is not None and email not in recipients:
                continue
            self._deliver(org, email, full=full)

    def uninvite(self, org: Item, removed: set[str]) -> None:
        """Attendees taken off the meeting get a cancellation."""
        for email in removed:
            copy = self.store.by_uid(email, org.uid)
            if copy is not None:
                self._cancel_copy(copy, org)

    def cancel(self, org: Item) -> None:
        """The organiser cancels the whole meeting: every attendee copy is cancelled."""
        for attendee in org.attendees():
            copy = self.store.by_uid(attendee.person.email, org.uid)
            if copy is not None and copy.mailbox != org.mailbox:
                self._cancel_copy(copy, org)

    def _deliver(self, org: Item, email: str, *, full: bool) -> None:
        box = self.store.mailbox(email)
        if box is None:
            return
        copy = self.store.by_uid(email, org.uid)
        is_new = copy is None
        if copy is None:
            copy = Item(id=self.store.new_id(), mailbox=box.email.casefold(), folder="calendar")
            mirror(copy, org)
            copy.my_response = "NoResponseReceived"
            copy.free_busy = "Tentative"
            copy.appointment_state = STATE_MEETING | STATE_RECEIVED
            self.store.add(copy)
        else:
            mirror(copy, org)
            if full:
                copy.my_response = "NoResponseReceived"
                copy.free_busy = "Tentative"
            self.store.touch(copy)
        request_type = "NewMeetingRequest" if is_new else ("FullUpdate" if full else "InformationalUpdate")
        policy = self.policies.get(email)
        if policy is not None and policy.automate_processing == "AutoAccept":
            if self.rba_delay_s > 0:
                self.pending.append(Pending(copy.id, self.store.now() + timedelta(seconds=self.rba_delay_s)))
            else:
                self.rba(copy, policy)
            return
        # Calendar Attendant only (AutoUpdate), None, or a person: the request waits in the inbox.
        self._meeting_message(copy, org, "MeetingRequest", "IPM.Schedule.Meeting.Request", request_type)

    def _meeting_message(
        self, copy: Item, org: Item, element: str, item_class: str, kind: str | None
    ) -> None:
        msg = Item(
            id=self.store.new_id(),
            mailbox=copy.mailbox,
            folder="inbox",
            element=element,
            item_class=item_class,
            subject=org.subject,
            body=org.body,
            body_type=org.body_type,
            is_read=False,
        )
        msg.sender = org.organizer
        msg.to = [a.person for a in org.required]
        msg.cc = [a.person for a in org.optional]
        msg.associated_item_id = copy.id
        msg.meeting_request_type = kind
        msg.start, msg.end, msg.location = org.start, org.end, org.location
        msg.organizer = org.organizer
        self.store.add(msg)

    def _cancel_copy(self, copy: Item, org: Item) -> None:
        policy = self.policies.get(copy.mailbox)
        if policy is not None and policy.remove_canceled_meetings:
            self.store.move(copy, "deleteditems")
            return
        copy.is_cancelled = True
        copy.appointment_state |= STATE_CANCELED
        copy.free_busy = "Free"
        prefix = policy.canceled_subject_prefix if policy is not None else "Canceled: "
        if prefix and not copy.subject.startswith(prefix):
            copy.subject = prefix + copy.subject
        self.store.touch(copy)
        if policy is None or policy.automate_processing != "AutoAccept":
            self._meeting_message(copy, org, "MeetingCancellation", "IPM.Schedule.Meeting.Canceled", None)

    # ------------------------------------------------------------------------------- room side

    def tick(self, now: datetime) -> None:
        """Let the RBA decide the copies whose delay has passed (the lab clock's listener)."""
        with self.store.lock:
            due = [p for p in self.pending if p.due <= now]
            self.pending = [p for p in self.pending if p.due > now]
            for p in due:
                item = self.store.items.get(p.item_id)
                policy = self.policies.get(item.mailbox) if item else None
                if item is not None and policy is not None and item.folder == "calendar":
                    self.rba(item, policy)

    def rba(self, copy: Item, policy: RoomPolicy) -> None:
        """The Resource Booking Attendant: accept (and munge) or decline a room copy."""
        reason = self.refusal(copy, policy)
        if reason is not None:
            self.respond(copy, "Decline", body=reason, send=True, save_copy=False)
            return
        org_name = copy.organizer.name if copy.organizer else ""
        if policy.add_organizer_to_subject:
            copy.subject = org_name
        elif policy.delete_subject:
            copy.subject = ""
        if policy.delete_comments:
            copy.body = ""
        if policy.remove_private_property:
            copy.sensitivity = "Normal"
        self.respond(copy, "Accept", body="", send=True, save_copy=False)

    def refusal(self, copy: Item, policy: RoomPolicy) -> str | None:
        """Why the RBA declines ``copy``, or ``None`` to accept."""
        now = self.store.now()
        window_end = now + timedelta(days=policy.booking_window_days)
        if copy.start is None or copy.end is None:
            return "The meeting has no time."
        if copy.recurrence is not None and not policy.allow_recurring_meetings:
            return "Recurring meetings are not allowed in this room."
        if (copy.end - copy.start) > timedelta(minutes=policy.maximum_duration_minutes):
            return "The meeting is longer than this room allows."
        spans = item_span(copy, window_end + timedelta(days=1))
        if not spans:
            return None
        if spans[0][0] > window_end:
            return "The meeting is outside the room's booking window."
        if copy.recurrence is not None and policy.enforce_scheduling_horizon:
            beyond = copy.recurrence.boundary == "NoEndRecurrence" or any(s > window_end for s, _ in spans)
            if beyond:
                return "The recurring meeting extends beyond the room's booking window."
        if not policy.allow_conflicts:
            for other in self.store.items_in(copy.mailbox, "calendar"):
                if other.id == copy.id or other.uid == copy.uid or other.is_cancelled:
                    continue
                if other.free_busy == "Free" or other.my_response not in {"Accept", "Organizer"}:
                    continue
                for s2, e2 in item_span(other, window_end):
                    if any(s < e2 and s2 < e for s, e in spans):
                        who = other.organizer.name if other.organizer else "someone"
                        return f"The room is already booked by {who}."
        return None

    # ------------------------------------------------------------------------------- responses

    def respond(self, copy: Item, response: str, *, body: str, send: bool, save_copy: bool) -> Item | None:
        """An attendee answers: update its copy, tell the organiser, maybe keep a sent copy.

        :returns: the saved copy of the response (SendAndSaveCopy), if any.
        """
        now = self.store.now()
        copy.reply_time = now
        if response == "Decline":
            copy.my_response = "Decline"
            self.store.move(copy, "deleteditems")
        else:
            copy.my_response = response
            copy.free_busy = "Busy" if response == "Accept" else "Tentative"
            self.store.touch(copy)
        for msg in self.store.items_in(copy.mailbox, "inbox"):
            if msg.associated_item_id == copy.id and not msg.has_been_processed:
                msg.has_been_processed = True
                self.store.move(msg, "deleteditems")
        attendee = self.store.person(copy.mailbox)
        self.responses.append(
            {"from": attendee.email, "uid": copy.uid, "response": response, "body": body, "sent": str(send)}
        )
        log.debug(events.LAB_EWS_MEETING_RESPONDED, attendee=attendee.email, uid=copy.uid, response=response)
        if not send or copy.organizer is None:
            return None
        org_email = copy.organizer.email
        subject = RESPONSE_PREFIX[response] + copy.subject
        self.store.record_sent(
            kind="MeetingResponse", sender=attendee.email, to=[org_email], subject=subject, response=response
        )
        org_item = self.store.by_uid(org_email, copy.uid)
        if org_item is not None:
            for a in org_item.attendees():
                if a.person.email.casefold() == copy.mailbox:
                    a.response = response
                    a.last_response = now
            self.store.touch(org_item)
        if self.store.mailbox(org_email) is not None:
            msg = Item(
                id=self.store.new_id(),
                mailbox=org_email.casefold(),
                folder="inbox",
                element="MeetingResponse",
                item_class=RESPONSE_CLASS[response],
                subject=subject,
                body=body,
                is_read=False,
            )
            msg.sender = attendee
            msg.to = [self.store.person(org_email)]
            msg.response_type = response
            msg.associated_item_id = org_item.id if org_item else None
            self.store.add(msg)
        if not save_copy:
            return None
        sent = Item(
            id=self.store.new_id(),
            mailbox=copy.mailbox,
            folder="sentitems",
            element="MeetingResponse",
            item_class=RESPONSE_CLASS[response],
            subject=subject,
            body=body,
        )
        sent.sender = attendee
        sent.to = [self.store.person(org_email)]
        sent.response_type = response
        return self.store.add(sent)


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
    copy.overrides = {
        k: Override(v.start, v.end, v.subject, v.location, v.body) for k, v in org.overrides.items()
    }
    copy.deleted_occurrences = set(org.deleted_occurrences)
    copy.extended = dict(org.extended)


__all__ = ["Meetings", "live_occurrences", "mirror"]
