"""Items as EWS XML: only the requested properties, in schema order, in safe formats.

What is requested is a :class:`Shape` (:mod:`xesync.lab.ews.shape`, re-exported here with
``ExtendedRequest`` and the ``PSETID_Meeting`` names). Datetimes come from :func:`fmt_dt` (no
fractions, trap 1), every ``Body`` carries ``BodyType`` (trap 2), and ``ModifiedOccurrences``/
``DeletedOccurrences`` are left out when empty (exchangelib then reads ``None``, as from a real
server, trap 18).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import timedelta

from xesync.lab.ews.calendar import Occurrence, global_object_id, occurrences
from xesync.lab.ews.recurrence import write_recurrence
from xesync.lab.ews.shape import GOID_PROPS, MEETING_SET, ExtendedRequest, Shape
from xesync.lab.ews.store import Attendee, Item, Person, Store, folder_id
from xesync.lab.ews.xml import Element, fmt_bool, fmt_dt, sub, t

# The operations and the request parser import the shape from here, as before the split.
__all__ = ["GOID_PROPS", "MEETING_SET", "ExtendedRequest", "Shape", "mailbox_el", "render"]


def mailbox_el(parent: Element, tag: str, person: Person) -> Element:
    """``t:<tag>`` holding (or being) a Mailbox with Name, EmailAddress, RoutingType, MailboxType."""
    el = sub(parent, t(tag))
    box = el if tag == "Mailbox" else sub(el, t("Mailbox"))
    sub(box, t("Name"), person.name or person.email)
    sub(box, t("EmailAddress"), person.email)
    sub(box, t("RoutingType"), person.routing_type)
    sub(box, t("MailboxType"), person.mailbox_type)
    return el


def _attendees(parent: Element, tag: str, attendees: list[Attendee], own: dict[str, str]) -> None:
    """Attendees with their responses; ``own`` holds one instance's responses (``ews.md`` §3.5)."""
    if not attendees:
        return
    el = sub(parent, t(tag))
    for a in attendees:
        at = sub(el, t("Attendee"))
        mailbox_el(at, "Mailbox", a.person)
        sub(at, t("ResponseType"), own.get(a.person.email.casefold(), a.response))
        if a.last_response is not None:
            sub(at, t("LastResponseTime"), fmt_dt(a.last_response))


def _recipients(parent: Element, tag: str, people: list[Person]) -> None:
    if not people:
        return
    el = sub(parent, t(tag))
    for p in people:
        mailbox_el(el, "Mailbox", p)


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    out = "P" + (f"{days}D" if days else "")
    clock = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "") + (f"{secs}S" if secs else "")
    return out + ("T" + clock if clock else ("" if days else "T0S"))


class _View:
    """An item or an occurrence of a series, as the renderer sees it."""

    def __init__(self, store: Store, obj: Item | Occurrence) -> None:
        self.store = store
        self.occ = obj if isinstance(obj, Occurrence) else None
        self.item = obj.master if isinstance(obj, Occurrence) else obj
        self.id = obj.id
        self.start = obj.start
        self.end = obj.end
        ov = self.occ.override if self.occ else None
        self.subject = ov.subject if ov and ov.subject is not None else self.item.subject
        self.location = ov.location if ov and ov.location is not None else self.item.location
        body = ov.body if ov and ov.body is not None else (self.item.body, self.item.body_type)
        self.body, self.body_type = body
        self.my_response = ov.my_response if ov and ov.my_response else self.item.my_response
        self.responses = ov.responses if ov else {}

    @property
    def is_calendar(self) -> bool:
        return self.item.element == "CalendarItem"

    @property
    def is_meeting_message(self) -> bool:
        return self.item.element.startswith("Meeting")

    @property
    def is_message(self) -> bool:
        return self.item.element != "CalendarItem"

    def calendar_type(self) -> str:
        if self.occ is not None:
            return self.occ.type
        return "RecurringMaster" if self.item.recurrence is not None else "Single"


Emit = Callable[[Element, _View], None]


def _folder(parent: Element, v: _View) -> None:
    box = v.store.mailboxes.get(v.item.mailbox)
    email = box.email if box else v.item.mailbox
    sub(parent, t("ParentFolderId"), Id=folder_id(email, v.item.folder), ChangeKey="AQAAAA==")


def _body(tag: str) -> Emit:
    def emit(parent: Element, v: _View) -> None:
        body_type = "Text" if tag == "TextBody" else v.body_type
        sub(parent, t(tag), v.body, BodyType=body_type)

    return emit


def _extended(parent: Element, v: _View, shape: Shape) -> None:
    for req in shape.extended:
        value: str | None = None
        if (req.set_id or "").lower() == MEETING_SET.lower() and req.prop_id in GOID_PROPS and v.item.uid:
            value = base64.b64encode(global_object_id(v.item.uid)).decode()
        else:
            value = v.item.extended.get(req.key())
        if value is None:
            continue
        ep = sub(parent, t("ExtendedProperty"))
        attrs = {"PropertyType": req.prop_type}
        if req.set_id:
            attrs["DistinguishedPropertySetId"] = req.set_id
        if req.prop_id:
            attrs["PropertyId"] = req.prop_id
        if req.prop_name:
            attrs["PropertyName"] = req.prop_name
        if req.prop_tag:
            attrs["PropertyTag"] = req.prop_tag
        sub(ep, t("ExtendedFieldURI"), **attrs)
        sub(ep, t("Value"), value)


def _occurrence_el(parent: Element, tag: str, occ: Occurrence) -> None:
    el = sub(parent, t(tag))
    sub(el, t("ItemId"), Id=occ.id, ChangeKey=occ.master.changekey)
    sub(el, t("Start"), fmt_dt(occ.start))
    sub(el, t("End"), fmt_dt(occ.end))
    sub(el, t("OriginalStart"), fmt_dt(occ.original_start))


def _series(parent: Element, v: _View, shape: Shape) -> None:
    """Recurrence, FirstOccurrence, LastOccurrence, ModifiedOccurrences, DeletedOccurrences."""
    item = v.item
    if v.occ is not None or item.recurrence is None:
        return
    occs = occurrences(item)
    live = [o for o in occs if not o.deleted]
    if shape.wants("calendar:Recurrence"):
        write_recurrence(parent, item.recurrence)
    if live and shape.wants("calendar:FirstOccurrence"):
        _occurrence_el(parent, "FirstOccurrence", live[0])
    if live and shape.wants("calendar:LastOccurrence") and item.recurrence.boundary != "NoEndRecurrence":
        _occurrence_el(parent, "LastOccurrence", live[-1])
    modified = [o for o in live if o.override is not None]
    if modified and shape.wants("calendar:ModifiedOccurrences"):
        el = sub(parent, t("ModifiedOccurrences"))
        for o in modified:
            _occurrence_el(el, "Occurrence", o)
    deleted = [o for o in occs if o.deleted]
    if deleted and shape.wants("calendar:DeletedOccurrences"):
        el = sub(parent, t("DeletedOccurrences"))
        for o in deleted:
            sub(sub(el, t("DeletedOccurrence")), t("Start"), fmt_dt(o.original_start))


def render(parent: Element, store: Store, obj: Item | Occurrence, shape: Shape) -> Element:
    """Append the item element (``t:CalendarItem``, ``t:Message``, ...) for ``obj``."""
    v = _View(store, obj)
    item = v.item
    el = sub(parent, t(item.element))
    sub(el, t("ItemId"), Id=v.id, ChangeKey=item.changekey)
    w = shape.wants
    if w("item:ParentFolderId"):
        _folder(el, v)
    if w("item:ItemClass"):
        sub(el, t("ItemClass"), item.item_class)
    if w("item:Subject"):
        sub(el, t("Subject"), v.subject)
    if w("item:Sensitivity"):
        sub(el, t("Sensitivity"), item.sensitivity)
    if w("item:Body"):
        _body("Body")(el, v)
    if w("item:DateTimeReceived"):
        sub(el, t("DateTimeReceived"), fmt_dt(item.created))
    if w("item:Size"):
        sub(el, t("Size"), str(200 + len(v.body) + len(v.subject)))
    if w("item:Categories") and item.categories:
        cats = sub(el, t("Categories"))
        for c in item.categories:
            sub(cats, t("String"), c)
    if w("item:Importance"):
        sub(el, t("Importance"), item.importance)
    for uri, tag, value in (
        ("item:IsSubmitted", "IsSubmitted", False),
        ("item:IsDraft", "IsDraft", item.folder == "drafts"),
        ("item:IsFromMe", "IsFromMe", False),
        ("item:IsResend", "IsResend", False),
        ("item:IsUnmodified", "IsUnmodified", item.version == 1),
    ):
        if w(uri):
            sub(el, t(tag), fmt_bool(value))
    if w("item:DateTimeSent"):
        sub(el, t("DateTimeSent"), fmt_dt(item.created))
    if w("item:DateTimeCreated"):
        sub(el, t("DateTimeCreated"), fmt_dt(item.created))
    if w("item:ReminderIsSet"):
        sub(el, t("ReminderIsSet"), fmt_bool(item.reminder_is_set))
    if w("item:ReminderMinutesBeforeStart"):
        sub(el, t("ReminderMinutesBeforeStart"), str(item.reminder_minutes))
    if w("item:DisplayCc"):
        sub(el, t("DisplayCc"), "; ".join(a.person.name for a in item.optional) if v.is_calendar else "")
    if w("item:DisplayTo"):
        people = [a.person.name for a in item.required] if v.is_calendar else [p.name for p in item.to]
        sub(el, t("DisplayTo"), "; ".join(people))
    if w("item:HasAttachments"):
        sub(el, t("HasAttachments"), "false")
    _extended(el, v, shape)
    if w("item:Culture"):
        sub(el, t("Culture"), "en-US")
    if w("item:LastModifiedName"):
        sub(el, t("LastModifiedName"), store.person(item.mailbox).name)
    if w("item:LastModifiedTime"):
        sub(el, t("LastModifiedTime"), fmt_dt(item.modified))
    if w("item:IsAssociated"):
        sub(el, t("IsAssociated"), "false")
    if w("item:UniqueBody"):
        sub(el, t("UniqueBody"), v.body, BodyType=v.body_type)
    if w("item:TextBody"):
        _body("TextBody")(el, v)
    if v.is_calendar:
        _calendar_fields(el, v, shape)
    else:
        _message_fields(el, v, shape)
    return el


def _calendar_fields(el: Element, v: _View, shape: Shape) -> None:
    item, w = v.item, shape.wants
    if w("calendar:UID") and item.uid:
        sub(el, t("UID"), item.uid)
    if w("calendar:RecurrenceId") and v.occ is not None:
        sub(el, t("RecurrenceId"), fmt_dt(v.occ.original_start))
    if w("calendar:DateTimeStamp"):
        sub(el, t("DateTimeStamp"), fmt_dt(item.modified))
    if w("calendar:Start") and v.start is not None:
        sub(el, t("Start"), fmt_dt(v.start))
    if w("calendar:End") and v.end is not None:
        sub(el, t("End"), fmt_dt(v.end))
    if w("calendar:OriginalStart") and v.occ is not None:
        sub(el, t("OriginalStart"), fmt_dt(v.occ.original_start))
    if w("calendar:IsAllDayEvent"):
        sub(el, t("IsAllDayEvent"), fmt_bool(item.is_all_day))
    if w("calendar:LegacyFreeBusyStatus"):
        sub(el, t("LegacyFreeBusyStatus"), item.free_busy)
    if w("calendar:Location"):
        sub(el, t("Location"), v.location)
    for uri, tag, value in (
        ("calendar:IsMeeting", "IsMeeting", item.is_meeting),
        ("calendar:IsCancelled", "IsCancelled", item.is_cancelled),
        # ews.md §3.5: False on the RecurringMaster, True on occurrences and exceptions (trap 18).
        ("calendar:IsRecurring", "IsRecurring", v.occ is not None),
        ("calendar:MeetingRequestWasSent", "MeetingRequestWasSent", item.meeting_request_was_sent),
        ("calendar:IsResponseRequested", "IsResponseRequested", item.is_response_requested),
    ):
        if w(uri):
            sub(el, t(tag), fmt_bool(value))
    if w("calendar:CalendarItemType"):
        sub(el, t("CalendarItemType"), v.calendar_type())
    if w("calendar:MyResponseType"):
        sub(el, t("MyResponseType"), v.my_response)
    if w("calendar:Organizer") and item.organizer is not None:
        mailbox_el(el, "Organizer", item.organizer)
    if w("calendar:RequiredAttendees"):
        _attendees(el, "RequiredAttendees", item.required, v.responses)
    if w("calendar:OptionalAttendees"):
        _attendees(el, "OptionalAttendees", item.optional, v.responses)
    if w("calendar:Resources"):
        _attendees(el, "Resources", item.resources, v.responses)
    if w("calendar:ConflictingMeetingCount"):
        sub(el, t("ConflictingMeetingCount"), "0")
    if w("calendar:AdjacentMeetingCount"):
        sub(el, t("AdjacentMeetingCount"), "0")
    if w("calendar:Duration") and v.start is not None and v.end is not None:
        sub(el, t("Duration"), _duration(v.end - v.start))
    if w("calendar:AppointmentReplyTime") and item.reply_time is not None:
        sub(el, t("AppointmentReplyTime"), fmt_dt(item.reply_time))
    if w("calendar:AppointmentSequenceNumber"):
        sub(el, t("AppointmentSequenceNumber"), str(item.sequence))
    if w("calendar:AppointmentState"):
        sub(el, t("AppointmentState"), str(item.appointment_state))
    _series(el, v, shape)
    if w("calendar:StartTimeZone"):
        sub(el, t("StartTimeZone"), Id=item.start_tz, Name=item.start_tz)
    if w("calendar:EndTimeZone"):
        sub(el, t("EndTimeZone"), Id=item.end_tz, Name=item.end_tz)
    if w("calendar:ConferenceType"):
        sub(el, t("ConferenceType"), "0")
    if w("calendar:AllowNewTimeProposal"):
        sub(el, t("AllowNewTimeProposal"), "true")
    if w("calendar:IsOnlineMeeting"):
        sub(el, t("IsOnlineMeeting"), "false")


def _message_fields(el: Element, v: _View, shape: Shape) -> None:
    item, w = v.item, shape.wants
    if w("message:Sender") and item.sender is not None:
        mailbox_el(el, "Sender", item.sender)
    if w("message:ToRecipients"):
        _recipients(el, "ToRecipients", item.to)
    if w("message:CcRecipients"):
        _recipients(el, "CcRecipients", item.cc)
    if w("message:IsReadReceiptRequested"):
        sub(el, t("IsReadReceiptRequested"), "false")
    if w("message:IsDeliveryReceiptRequested"):
        sub(el, t("IsDeliveryReceiptRequested"), "false")
    if w("message:From") and item.sender is not None:
        mailbox_el(el, "From", item.sender)
    if w("message:InternetMessageId"):
        sub(el, t("InternetMessageId"), f"<{item.id[-16:]}@lab.example>")
    if w("message:IsRead"):
        sub(el, t("IsRead"), fmt_bool(item.is_read))
    if w("message:IsResponseRequested"):
        sub(el, t("IsResponseRequested"), "false")
    if not v.is_meeting_message:
        return
    if w("meeting:AssociatedCalendarItemId") and item.associated_item_id:
        sub(el, t("AssociatedCalendarItemId"), Id=item.associated_item_id, ChangeKey="")
    if w("meeting:HasBeenProcessed"):
        sub(el, t("HasBeenProcessed"), fmt_bool(item.has_been_processed))
    if w("meeting:ResponseType") and item.response_type:
        sub(el, t("ResponseType"), item.response_type)
    if item.element == "MeetingRequest":
        if w("meetingRequest:MeetingRequestType") and item.meeting_request_type:
            sub(el, t("MeetingRequestType"), item.meeting_request_type)
        if w("meetingRequest:IntendedFreeBusyStatus"):
            sub(el, t("IntendedFreeBusyStatus"), "Busy")
        if w("calendar:Start") and item.start is not None:
            sub(el, t("Start"), fmt_dt(item.start))
        if w("calendar:End") and item.end is not None:
            sub(el, t("End"), fmt_dt(item.end))
        if w("calendar:Location"):
            sub(el, t("Location"), item.location)
        if w("calendar:Organizer") and item.organizer is not None:
            mailbox_el(el, "Organizer", item.organizer)
