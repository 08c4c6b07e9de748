"""Reading request fragments: item shapes, item fields, ids and folder addresses."""

from __future__ import annotations

from dataclasses import dataclass

from xesync.lab.ews.recurrence import parse_recurrence
from xesync.lab.ews.render import ExtendedRequest, Shape
from xesync.lab.ews.store import Attendee, Item, Person, Store
from xesync.lab.ews.xml import Element, child, children, local, parse_bool, parse_dt, text_of

# Changing these makes an organiser's update a FullUpdate (ews.md §3.4).
TIME_FIELDS = frozenset({"Start", "End", "Recurrence", "IsAllDayEvent", "StartTimeZone", "EndTimeZone"})
SENSITIVITIES = frozenset({"Normal", "Personal", "Private", "Confidential"})
FREE_BUSY = frozenset({"Free", "Tentative", "Busy", "OOF", "WorkingElsewhere", "NoData"})


class RequestError(ValueError):
    """A request the simulator answers with an EWS error code."""

    def __init__(self, code: str, text: str) -> None:
        self.code = code
        self.text = text
        super().__init__(f"{code}: {text}")


def parse_extended_uri(el: Element) -> ExtendedRequest:
    """A ``t:ExtendedFieldURI``."""
    return ExtendedRequest(
        set_id=el.get("DistinguishedPropertySetId") or el.get("PropertySetId"),
        prop_tag=el.get("PropertyTag"),
        prop_id=el.get("PropertyId"),
        prop_name=el.get("PropertyName"),
        prop_type=el.get("PropertyType", "String"),
    )


def parse_shape(el: Element | None) -> Shape:
    """``m:ItemShape``: base shape plus additional properties."""
    if el is None:
        return Shape(fields=frozenset(), id_only=True)
    base = text_of(el, "BaseShape", "IdOnly")
    fields: set[str] = set()
    extended: list[ExtendedRequest] = []
    for prop in children(child(el, "AdditionalProperties")):
        name = local(prop)
        if (name == "FieldURI" and prop.get("FieldURI")) or (
            name == "IndexedFieldURI" and prop.get("FieldURI")
        ):
            fields.add(str(prop.get("FieldURI")))
        elif name == "ExtendedFieldURI":
            extended.append(parse_extended_uri(prop))
    if base == "IdOnly":
        return Shape(fields=frozenset(fields), extended=extended, id_only=True)
    return Shape(fields=None if not fields else frozenset(fields), extended=extended, id_only=False)


def parse_person(el: Element | None, store: Store) -> Person | None:
    """A ``t:Mailbox`` (or an element wrapping one)."""
    if el is None:
        return None
    box = el if local(el) == "Mailbox" else child(el, "Mailbox")
    if box is None:
        return None
    email = text_of(box, "EmailAddress") or ""
    if not email:
        return None
    known = store.mailbox(email)
    name = text_of(box, "Name") or (known.name if known else email)
    return Person(email=email, name=name, routing_type=text_of(box, "RoutingType", "SMTP") or "SMTP")


def _attendees(el: Element, store: Store) -> list[Attendee]:
    out = []
    for a in children(el, "Attendee"):
        person = parse_person(a, store)
        if person is not None:
            # The organiser's copy tracks responses itself; what a client sends is not a response.
            out.append(Attendee(person=person, response="Unknown"))
    return out


def _recipients(el: Element, store: Store) -> list[Person]:
    return [p for p in (parse_person(c, store) for c in children(el, "Mailbox")) if p is not None]


def apply_fields(item: Item, el: Element, store: Store) -> set[str]:
    """Set every field present in an item element (``t:CalendarItem``, ``t:Message``) on ``item``.

    :returns: the local names of the fields set.
    :raises RequestError: on a value EWS would refuse.
    """
    changed: set[str] = set()
    for f in children(el):
        name = local(f)
        changed.add(name)
        try:
            _apply(item, name, f, store)
        except ValueError as exc:
            if isinstance(exc, RequestError):
                raise
            raise RequestError("ErrorInvalidValueForProperty", f"{name}: {exc}") from None
    return changed


def _apply(item: Item, name: str, f: Element, store: Store) -> None:
    value = (f.text or "").strip()
    if name == "Subject":
        item.subject = f.text or ""
    elif name == "Body":
        item.body = f.text or ""
        item.body_type = "HTML" if f.get("BodyType") == "HTML" else "Text"
    elif name == "Sensitivity":
        if value not in SENSITIVITIES:
            raise ValueError(f"bad Sensitivity {value!r}")
        item.sensitivity = value
    elif name == "Importance":
        item.importance = value or "Normal"
    elif name == "Categories":
        item.categories = [c.text or "" for c in children(f, "String")]
    elif name == "ReminderIsSet":
        item.reminder_is_set = parse_bool(value)
    elif name == "ReminderMinutesBeforeStart":
        item.reminder_minutes = int(value or "0")
    elif name in {"Start", "End"}:
        parsed = parse_dt(value)
        if parsed is None:
            raise ValueError(f"{name} needs a datetime")
        setattr(item, name.lower(), parsed)
    elif name == "IsAllDayEvent":
        item.is_all_day = parse_bool(value)
    elif name == "LegacyFreeBusyStatus":
        if value not in FREE_BUSY:
            raise ValueError(f"bad LegacyFreeBusyStatus {value!r}")
        item.free_busy = value
    elif name == "Location":
        item.location = f.text or ""
    elif name == "UID":
        item.uid = value
    elif name == "RequiredAttendees":
        item.required = _attendees(f, store)
    elif name == "OptionalAttendees":
        item.optional = _attendees(f, store)
    elif name == "Resources":
        item.resources = _attendees(f, store)
    elif name == "Recurrence":
        item.recurrence = parse_recurrence(f)
    elif name in {"StartTimeZone", "EndTimeZone", "MeetingTimeZone"}:
        tz = f.get("Id") or f.get("Name") or "UTC"
        if name in {"StartTimeZone", "MeetingTimeZone"}:
            item.start_tz = tz
        if name in {"EndTimeZone", "MeetingTimeZone"}:
            item.end_tz = tz
    elif name == "ToRecipients":
        item.to = _recipients(f, store)
    elif name == "CcRecipients":
        item.cc = _recipients(f, store)
    elif name == "IsRead":
        item.is_read = parse_bool(value)
    elif name == "IsResponseRequested":
        item.is_response_requested = parse_bool(value)
    elif name == "ExtendedProperty":
        uri = child(f, "ExtendedFieldURI")
        if uri is not None:
            item.extended[parse_extended_uri(uri).key()] = text_of(f, "Value") or ""


FIELD_URI_TO_ELEMENT = {
    "item:Subject": "Subject",
    "item:Body": "Body",
    "item:Sensitivity": "Sensitivity",
    "item:Categories": "Categories",
    "item:Importance": "Importance",
    "item:ReminderIsSet": "ReminderIsSet",
    "item:ReminderMinutesBeforeStart": "ReminderMinutesBeforeStart",
    "calendar:Start": "Start",
    "calendar:End": "End",
    "calendar:IsAllDayEvent": "IsAllDayEvent",
    "calendar:LegacyFreeBusyStatus": "LegacyFreeBusyStatus",
    "calendar:Location": "Location",
    "calendar:RequiredAttendees": "RequiredAttendees",
    "calendar:OptionalAttendees": "OptionalAttendees",
    "calendar:Resources": "Resources",
    "calendar:Recurrence": "Recurrence",
    "calendar:StartTimeZone": "StartTimeZone",
    "calendar:EndTimeZone": "EndTimeZone",
    "calendar:UID": "UID",
    "calendar:IsResponseRequested": "IsResponseRequested",
    "message:ToRecipients": "ToRecipients",
    "message:CcRecipients": "CcRecipients",
    "message:IsRead": "IsRead",
}


def delete_field(item: Item, uri_el: Element) -> str:
    """``t:DeleteItemField``: clear one field; returns its element name."""
    if local(uri_el) == "ExtendedFieldURI":
        item.extended.pop(parse_extended_uri(uri_el).key(), None)
        return "ExtendedProperty"
    uri = uri_el.get("FieldURI", "")
    name = FIELD_URI_TO_ELEMENT.get(uri)
    if name is None:
        raise RequestError("ErrorInvalidPropertyDelete", f"{uri} cannot be deleted")
    if name in {"Start", "End", "UID"}:
        raise RequestError("ErrorInvalidPropertyDelete", f"{uri} is required")
    defaults: dict[str, object] = {
        "Subject": "",
        "Sensitivity": "Normal",
        "Categories": [],
        "Importance": "Normal",
        "ReminderIsSet": False,
        "IsAllDayEvent": False,
        "LegacyFreeBusyStatus": "Busy",
        "Location": "",
        "RequiredAttendees": [],
        "OptionalAttendees": [],
        "Resources": [],
        "Recurrence": None,
        "ToRecipients": [],
        "CcRecipients": [],
        "IsRead": False,
        "IsResponseRequested": False,
    }
    attr = {
        "Subject": "subject",
        "Sensitivity": "sensitivity",
        "Categories": "categories",
        "Importance": "importance",
        "ReminderIsSet": "reminder_is_set",
        "IsAllDayEvent": "is_all_day",
        "LegacyFreeBusyStatus": "free_busy",
        "Location": "location",
        "RequiredAttendees": "required",
        "OptionalAttendees": "optional",
        "Resources": "resources",
        "Recurrence": "recurrence",
        "ToRecipients": "to",
        "CcRecipients": "cc",
        "IsRead": "is_read",
        "IsResponseRequested": "is_response_requested",
    }
    if name == "Body":
        item.body = ""
    elif name in attr:
        setattr(item, attr[name], defaults[name])
    return name


@dataclass(frozen=True, slots=True)
class ItemRef:
    """A parsed ``t:ItemId``, ``t:OccurrenceItemId`` or ``t:RecurringMasterItemId``."""

    kind: str  # ItemId | OccurrenceItemId | RecurringMasterItemId
    id: str
    changekey: str | None = None
    instance_index: int | None = None


def parse_item_ref(el: Element) -> ItemRef:
    """Any of the three id forms (``ews.md`` §2.8.4)."""
    kind = local(el)
    if kind == "OccurrenceItemId":
        try:
            index = int(el.get("InstanceIndex", "0"))
        except ValueError:
            index = 0
        return ItemRef(kind, el.get("RecurringMasterId", ""), el.get("ChangeKey"), index)
    if kind == "RecurringMasterItemId":
        return ItemRef(kind, el.get("OccurrenceId", ""), el.get("ChangeKey"))
    return ItemRef("ItemId", el.get("Id", ""), el.get("ChangeKey"))
