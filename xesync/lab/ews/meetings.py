"""Meetings between mailboxes: invitations, room processing, responses and cancellations.

This is ``ews.md`` §3: an organiser's send lands a copy with the same UID in every attendee mailbox of
the lab; a room's Calendar Attendant and Resource Booking Attendant (RBA) then act per the room's
:class:`RoomPolicy`; responses travel back to the organiser's copy and inbox.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from xesync import events
from xesync.lab.ews.calendar import Occurrence, live_occurrences
from xesync.lab.ews.copies import mirror, refresh
from xesync.lab.ews.rba import decide, instance_refusal
from xesync.lab.ews.settings import RoomPolicy
from xesync.lab.ews.store import (
    STATE_CANCELED,
    STATE_MEETING,
    STATE_RECEIVED,
    Item,
    Override,
    Store,
    occurrence_id,
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

    def send_occurrence(self, org: Item, original: datetime, *, full: bool) -> None:
        """Deliver the organiser's change to one instance (``ews.md`` §3.4, §3.5).

        An AutoAccept room re-checks only that instance of its accepted series: declined alone if it
        now conflicts (AllowConflicts false), else accepted. Other attendees get a series update.
        """
        for attendee in org.attendees():
            email = attendee.person.email.casefold()
            copy = self.store.by_uid(email, org.uid)
            policy = self.policies.get(email)
            if (
                copy is None
                or policy is None
                or policy.automate_processing != "AutoAccept"
                or not full
                or self.rba_delay_s > 0
            ):
                self.send(org, full=full, recipients={email})
                continue
            if original in org.overrides:  # a changed instance is a new question to the room
                org.overrides[original].responses.pop(email, None)
            refresh(copy, org, full=False)
            if original not in org.deleted_occurrences:
                copy.deleted_occurrences.discard(original)
            self.store.touch(copy)
            until = original + timedelta(days=1)
            occ = next((o for o in live_occurrences(copy, until) if o.original_start == original), None)
            if occ is None:
                continue
            reason = instance_refusal(self.store, copy, (occ.start, occ.end), policy)
            response = "Accept" if reason is None else "Decline"
            self.respond_occurrence(occ, response, body=reason or "", send=True, save_copy=False)

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
            refresh(copy, org, full=full)
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
        """The Resource Booking Attendant: accept (and munge) or decline a room copy.

        A series accepted with conflicting instances loses those instances (DeletedOccurrences on the
        room's copy) and the organiser is told their dates (``ews.md`` §3.5).
        """
        verdict = decide(self.store, copy, policy)
        if verdict.refusal is not None:
            self.respond(copy, "Decline", body=verdict.refusal, send=True, save_copy=False)
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
        for original in verdict.declined:
            copy.deleted_occurrences.add(original)
            copy.overrides.pop(original, None)
        body = ""
        if verdict.declined:
            dates = ", ".join(d.strftime("%Y-%m-%d %H:%M UTC") for d in verdict.declined)
            body = f"Accepted, except these occurrences, which conflict with other bookings: {dates}."
        self.respond(copy, "Accept", body=body, send=True, save_copy=False, declined=verdict.declined)

    # ------------------------------------------------------------------------------- responses

    def respond(
        self,
        copy: Item,
        response: str,
        *,
        body: str,
        send: bool,
        save_copy: bool,
        declined: Sequence[datetime] = (),
    ) -> Item | None:
        """An attendee answers a whole meeting: update its copy, tell the organiser, maybe keep a sent copy.

        :param declined: original starts of instances declined with an accepted series.
        :returns: the saved copy of the response (SendAndSaveCopy), if any.
        """
        copy.reply_time = self.store.now()
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
        return self._reply(copy, response, body, send=send, save_copy=save_copy, declined=declined)

    def respond_occurrence(
        self, occ: Occurrence, response: str, *, body: str, send: bool, save_copy: bool
    ) -> Item | None:
        """An attendee answers one instance only (``ews.md`` §3.5).

        A decline deletes the instance from the attendee's series (a DeletedOccurrence); an accept or a
        tentative makes it an Exception with its own response. The rest of the series is untouched.
        """
        master = occ.master
        master.reply_time = self.store.now()
        if response == "Decline":
            master.deleted_occurrences.add(occ.original_start)
            master.overrides.pop(occ.original_start, None)
        else:
            override = master.overrides.get(occ.original_start) or Override(occ.start, occ.end)
            override.my_response = response
            master.overrides[occ.original_start] = override
        self.store.touch(master)
        return self._reply(master, response, body, send=send, save_copy=save_copy, only=occ.original_start)

    def _reply(
        self,
        copy: Item,
        response: str,
        body: str,
        *,
        send: bool,
        save_copy: bool,
        declined: Sequence[datetime] = (),
        only: datetime | None = None,
    ) -> Item | None:
        """Record the response and deliver it to the organiser; ``only`` names one instance."""
        now = self.store.now()
        attendee = self.store.person(copy.mailbox)
        self.responses.append(
            {
                "from": attendee.email,
                "uid": copy.uid,
                "response": response,
                "body": body,
                "sent": str(send),
                "occurrence": only.isoformat() if only else "",
            }
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
        associated = org_item.id if org_item else None
        if org_item is not None:
            if only is None:
                for a in org_item.attendees():
                    if a.person.email.casefold() == copy.mailbox:
                        a.response = response
                        a.last_response = now
            else:
                associated = _track(org_item, copy.mailbox, only, response) or associated
            for original in declined:
                _track(org_item, copy.mailbox, original, "Decline")
            self.store.touch(org_item)
        if self.store.mailbox(org_email) is not None:
            msg = self._response_item(
                org_email.casefold(), "inbox", response, subject=subject, body=body, to=org_email
            )
            msg.sender = attendee
            msg.is_read = False
            msg.associated_item_id = associated
            self.store.add(msg)
        if not save_copy:
            return None
        sent = self._response_item(
            copy.mailbox, "sentitems", response, subject=subject, body=body, to=org_email
        )
        sent.sender = attendee
        return self.store.add(sent)

    def _response_item(
        self, mailbox: str, folder: str, response: str, *, subject: str, body: str, to: str
    ) -> Item:
        item = Item(
            id=self.store.new_id(),
            mailbox=mailbox,
            folder=folder,
            element="MeetingResponse",
            item_class=RESPONSE_CLASS[response],
            subject=subject,
            body=body,
        )
        item.response_type = response
        item.to = [self.store.person(to)]
        return item


def _track(org: Item, attendee: str, original: datetime, response: str) -> str | None:
    """The organiser's copy records ``attendee``'s answer to one instance (making it an Exception).

    :returns: that instance's id, or ``None`` if the organiser's series has no such live instance.
    """
    occ = next(
        (o for o in live_occurrences(org, original + timedelta(days=1)) if o.original_start == original), None
    )
    if occ is None:
        return None
    override = org.overrides.get(original) or Override(occ.start, occ.end)
    override.responses[attendee] = response
    org.overrides[original] = override
    return occurrence_id(org.id, original)


__all__ = ["Meetings", "live_occurrences", "mirror"]
