"""The TMS ``Conference`` between our port values and XML (tms-booking-api.md §5, §8).

:func:`conference_element` turns a :class:`~xesync.meetings.ConferenceRequest` into the
``Conference`` of ``SaveConferenceWithMode``; :func:`parse_conference` turns any ``Conference`` TMS
answers into a :class:`~xesync.meetings.SavedConference`. Decisions:

- **Element order** is the XmlSerializer order of §8.1 (and §8.2 to §8.5 for the nested types), and
  every ``minOccurs=1`` element is sent explicitly: TMS silently defaults a missing one to a value
  the spec cannot name (§8.1). The enumerations go as ``Default`` ("saving Default changes
  nothing", §4), except ``ConferenceType``, which is One Button To Push as TMSXE books it (§9).
- **Times** go in the space form ``YYYY-MM-DD HH:MM:SSZ``; both the space and ``T`` forms are read (§5).
- **Series** are sent in the meeting's time zone (``ConferenceTimeZoneRules``,
  :mod:`xesync.adapters.tms_timezones`), so TMS keeps the local start across DST. ``DaysOfWeek``
  are UTC days (API >= 8, §4): a 00:30 Oslo Monday meeting is a Sunday in UTC.
- **Title** is cut to 255 characters with a visible mark (``product.md`` L7).
"""

from __future__ import annotations

import html
import math
import re
from datetime import UTC, date, datetime, time
from typing import Any

from lxml import etree

from xesync.adapters.tms_timezones import Change, TimeZoneRule, time_zone_rules, zone
from xesync.meetings import ConferenceRequest, Frequency, OccurrenceChange, Recurrence, SavedConference

NS = "http://tandberg.net/2004/02/tms/external/booking/"
MAX_TITLE = 255
TITLE_MARK = "…"
CONFERENCE_TYPE = "One Button To Push"
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
FREQUENCIES = {
    Frequency.DAILY: "Daily",
    Frequency.WEEKLY: "Weekly",
    Frequency.MONTHLY: "Monthly",
    Frequency.YEARLY: "Yearly",  # TMS declines it (L5); the planner should not send one
}
# Elements of a read Conference that TMS fills in itself and a save must not carry back (§8.1).
READ_ONLY = frozenset(
    {
        "RecurrenceInstanceType",
        "FirstOccurrenceRecInstanceIdUTC",
        "RecurrencePattern",  # not valid with SaveConferenceRecInstance (§8.1 item 8)
        "ConferenceInfoText",
        "ConferenceInfoHtml",
        "RecordedConferenceUri",
        "WebConferencePresenterUri",
        "WebConferenceAttendeeUri",
        "ConferenceState",
        "TransactionId",
    }
)
# Without a series end TMS needs no more than this many occurrences' worth of rules (L4: 100).
_MAX_OCCURRENCES = 100


def q(name: str) -> str:
    """A tag in the booking namespace."""
    return f"{{{NS}}}{name}"


def default_ns() -> Any:
    """An ``nsmap`` with the booking namespace as default (lxml-stubs cannot type a ``None`` prefix)."""
    return {None: NS}


# Characters XML 1.0 cannot carry (control characters but tab, LF, CR; lone surrogates; U+FFFE/F).
# A subject may hold them (Outlook pastes them from terminals); lxml refuses them outright.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(value: str) -> str:
    """``value`` without the characters XML 1.0 cannot carry."""
    return _NOT_XML.sub("", value)


def sub(parent: etree._Element, name: str, value: str | None = None) -> etree._Element:
    """Append ``<name>value</name>`` in the booking namespace (``value`` made XML-safe)."""
    child = etree.SubElement(parent, q(name))
    if value is not None:
        child.text = xml_text(value)
    return child


def fmt_time(value: datetime) -> str:
    """A UTC time in the form TMS documents (§5): ``2025-03-04 09:00:00Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def parse_time(raw: str) -> datetime:
    """A TMS UTC time in the space or ``T`` form, with or without ``Z``.

    :raises ValueError: for anything else.
    """
    text = raw.strip().removesuffix("Z").replace("T", " ")
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def cut_title(title: str) -> str:
    """``title`` within TMS's 255 characters, the cut marked with an ellipsis (L7)."""
    if len(title) <= MAX_TITLE:
        return title
    return title[: MAX_TITLE - len(TITLE_MARK)] + TITLE_MARK


# ---------------------------------------------------------------------------------- building


def conference_element(
    request: ConferenceRequest, *, source_id: str, tag: str = "Conference"
) -> etree._Element:
    """The ``Conference`` for ``SaveConferenceWithMode``, in §8.1 order.

    :raises xesync.adapters.tms_timezones.UnknownTimeZoneError: ``request.time_zone`` is not an IANA zone.
    """
    el = etree.Element(q(tag), nsmap=default_ns())
    conference_id = request.conference_id if request.conference_id is not None else -1
    sub(el, "ConferenceId", str(conference_id))
    sub(el, "Title", cut_title(request.title))
    sub(el, "StartTimeUTC", fmt_time(request.start))
    sub(el, "EndTimeUTC", fmt_time(request.end))
    if request.recurrence is not None:
        _pattern(el, request)
    # spec: tms-booking-api.md §7.4: which owner field TMS looks up first is [unconfirmed]; OwnerId -1
    # plus the names asks TMS to resolve (or create) the user by name. Without an owner, TMS books
    # for the authenticated service user.
    sub(el, "OwnerId", "-1")
    if request.owner is not None:
        sub(el, "OwnerUserName", request.owner.username)
        sub(el, "OwnerFirstName", request.owner.first_name)
        sub(el, "OwnerLastName", request.owner.last_name)
        sub(el, "OwnerEmailAddress", request.owner.email)
    _required_settings(el)
    sub(el, "ExternalSourceId", source_id)
    sub(el, "ExternalPrimaryKey", request.external_key)
    participants = sub(el, "Participants")
    for system_id in request.system_ids:
        part = sub(participants, "Participant")
        sub(part, "ParticipantId", str(system_id))
        sub(part, "ParticipantCallType", "TMS")
    rules_element(el, time_zone_rules(request.time_zone, *_rule_years(request)))
    if request.version is not None:
        sub(el, "Version", str(request.version))
    return el


def _required_settings(el: etree._Element) -> None:
    """The minOccurs=1 enumerations and ``ISDNRestrict`` (§8.1 items 14 to 19, 22)."""
    sub(el, "ConferenceType", CONFERENCE_TYPE)
    for name in ("Bandwidth", "PictureMode", "Encrypted", "DataConference", "ShowExtendOption"):
        sub(el, name, "Default")
    sub(el, "ISDNRestrict", "false")


def _rule_years(request: ConferenceRequest) -> tuple[int, int]:
    """The years the conference's occurrences can fall in: the rules TMS needs to expand it."""
    first = request.start.year
    rec = request.recurrence
    if rec is None:
        return first, request.end.year
    if rec.end_date is not None and request.occurrence_limit is None:
        return first, rec.end_date.year
    count = request.occurrence_limit or rec.count or _MAX_OCCURRENCES
    unit_days = {Frequency.DAILY: 1, Frequency.WEEKLY: 7, Frequency.MONTHLY: 31, Frequency.YEARLY: 366}
    span = count * rec.interval * unit_days[rec.frequency]
    return first, first + math.ceil(span / 365)


def _pattern(parent: etree._Element, request: ConferenceRequest) -> None:
    """``RecurrencePattern`` in §8.3 order, with the exceptions (§8.4)."""
    rec = request.recurrence
    if rec is None:  # pragma: no cover - guarded by the caller
        return
    tz = zone(request.time_zone)
    local_start = request.start.astimezone(tz)
    # API >= 8: DayOfWeek values are UTC days (§4), so shift them by the start's local-to-UTC day change.
    shift = (request.start.astimezone(UTC).date() - local_start.date()).days
    el = sub(parent, "RecurrencePattern")
    sub(el, "FrequencyType", FREQUENCIES[rec.frequency])
    sub(el, "Interval", str(rec.interval))
    days = sub(el, "DaysOfWeek")
    weekdays = rec.weekdays
    if rec.frequency is Frequency.WEEKLY and not weekdays:
        weekdays = (local_start.isoweekday(),)
    if rec.frequency is not Frequency.DAILY:
        for iso in weekdays:
            sub(days, "DayOfWeek", DAYS[(iso - 1 + shift) % 7])
    sub(el, "FirstDayOfWeek", DAYS[(rec.first_day_of_week - 1) % 7])
    sub(el, "BySetPosition", str(_set_position(rec)))
    if rec.day_of_month is not None and rec.week_of_month is None and rec.day_of_month != local_start.day:
        sub(el, "ByMonthDay", str(rec.day_of_month))  # TMS 15 only; else BySetPosition 0 says it
    end_type, end_date, instances = _range(request, rec)
    sub(el, "PatternEndType", end_type)
    if end_date is not None:
        # The end of the last day, local time: an occurrence on that day is inside the range.
        last = datetime.combine(end_date, time(23, 59, 59), tzinfo=tz)
        sub(el, "PatternEndDateUTC", fmt_time(last))
    sub(el, "PatternInstances", str(instances))
    exceptions = sub(el, "Exceptions")
    for change in request.exceptions:
        _exception(exceptions, change, request)


def _set_position(rec: Recurrence) -> int:
    # §8.3: in a monthly pattern 2 = second, -1 = last, 0 = the meeting's day of month.
    if rec.frequency in (Frequency.MONTHLY, Frequency.YEARLY) and rec.week_of_month is not None:
        return rec.week_of_month
    return 0


def _range(request: ConferenceRequest, rec: Recurrence) -> tuple[str, date | None, int]:
    """``(PatternEndType, end date, PatternInstances)``; TMS declines ``EndNever`` (L3), as it should."""
    if request.occurrence_limit is not None:
        return "EndByInstances", None, request.occurrence_limit
    if rec.count is not None:
        return "EndByInstances", None, rec.count
    if rec.end_date is not None:
        return "EndByDate", rec.end_date, 0
    return "EndNever", None, 0


def _exception(parent: etree._Element, change: OccurrenceChange, request: ConferenceRequest) -> None:
    el = sub(parent, "RecurrenceException")
    sub(el, "ExceptionType", "DELETE" if change.cancelled else "MODIFY")
    sub(el, "RecurrenceIdUTC", fmt_time(change.recurrence_id))
    sub(el, "RecurrenceIdRange", "None")
    # spec: tms-booking-api.md §8.4: the ModifiedMask bits are [unconfirmed]; 0 claims no field in
    # particular, and ModifiedData carries only what changed (start and end).
    sub(el, "ModifiedMask", "0")
    if change.start is not None and change.end is not None:
        data = sub(el, "ModifiedData")
        sub(data, "ConferenceId", str(request.conference_id if request.conference_id is not None else -1))
        sub(data, "StartTimeUTC", fmt_time(change.start))
        sub(data, "EndTimeUTC", fmt_time(change.end))
        sub(data, "OwnerId", "-1")
        _required_settings(data)


def rules_element(parent: etree._Element, rules: tuple[TimeZoneRule, ...]) -> None:
    """Append ``ConferenceTimeZoneRules`` (§8.5 order).

    ``DisplayName`` is left out: it is text for people, a client may send only ``Id`` and the
    offsets ([third-party] PHP client), and we have no Windows display names to send.
    """
    wrapper = sub(parent, "ConferenceTimeZoneRules")
    for rule in rules:
        el = sub(wrapper, "TimeZoneRule")
        sub(el, "ValidFrom", rule.valid_from)
        sub(el, "Id", rule.zone_id)
        sub(el, "BaseOffsetInMinutes", str(rule.base_offset))
        if rule.daylight is not None and rule.standard is not None:
            _change(el, "Daylight", rule.daylight)
        sub(el, "DaylightOffsetInMinutes", str(rule.daylight_offset))
        if rule.daylight is not None and rule.standard is not None:
            _change(el, "Standard", rule.standard)


def _change(parent: etree._Element, name: str, change: Change) -> None:
    el = sub(parent, name)
    sub(el, "ChangeSecondAtDay", str(change.second))
    relative = sub(el, "RelativeRule")
    sub(relative, "Month", str(change.month))
    sub(relative, "DayOfTheWeek", str(change.weekday))
    sub(relative, "WeekOfTheMonthIndex", str(change.week))


def instance_for_save(read: etree._Element, start: datetime, end: datetime) -> etree._Element:
    """The ``Conference`` for ``SaveConferenceRecInstanceWithMode``: the occurrence as read, moved.

    Read, change, save back (§7.3, §8.1): every setting TMS sent stays as it was, the read-only
    elements are dropped, and the ``Version`` just read goes back with it.
    """
    el = etree.Element(q("Conference"), nsmap=default_ns())
    # xmlsafe drops comments and processing instructions, so every child here is an element.
    for child in read:
        name = etree.QName(child).localname
        if name in READ_ONLY:
            continue
        copy = etree.SubElement(el, q(name))
        copy.text, copy.tail = child.text, None
        copy.extend(_requalified(c) for c in child)
        if name == "StartTimeUTC":
            copy.text = fmt_time(start)
        elif name == "EndTimeUTC":
            copy.text = fmt_time(end)
    return el


def _requalified(element: etree._Element) -> etree._Element:
    """A copy of ``element`` with every tag in the booking namespace (as a save expects)."""
    out = etree.Element(q(etree.QName(element).localname))
    out.text = element.text
    out.extend(_requalified(c) for c in element)
    return out


# ---------------------------------------------------------------------------------- parsing


def child(parent: etree._Element, name: str) -> etree._Element | None:
    """The first child named ``name`` (local name, any namespace, as ASMX matches)."""
    for item in parent:
        if isinstance(item.tag, str) and etree.QName(item).localname == name:
            return item
    return None


def text(parent: etree._Element, name: str) -> str | None:
    """The stripped text of the first ``name`` child, ``None`` when absent."""
    found = child(parent, name)
    return None if found is None else (found.text or "").strip()


def conference_of(result: etree._Element) -> etree._Element:
    """The ``Conference`` in an ``…Result``: wrapped (``…WithModeResult``) or the result itself (§12.2)."""
    wrapped = child(result, "Conference")
    return wrapped if wrapped is not None else result


def _int(raw: str | None) -> int | None:
    return int(raw) if raw not in (None, "") else None


def parse_conference(element: etree._Element) -> SavedConference:
    """A :class:`SavedConference` from a ``Conference`` element.

    :raises ValueError: a required field is missing or does not parse.
    """
    conference_id = _int(text(element, "ConferenceId"))
    start, end = text(element, "StartTimeUTC"), text(element, "EndTimeUTC")
    if conference_id is None or not start or not end:
        raise ValueError("a Conference needs ConferenceId, StartTimeUTC and EndTimeUTC")
    systems: list[int] = []
    participants = child(element, "Participants")
    for part in participants if participants is not None else ():
        if not isinstance(part.tag, str) or etree.QName(part).localname != "Participant":
            continue
        if (text(part, "ParticipantCallType") or "TMS") == "TMS":
            found = _int(text(part, "ParticipantId"))
            if found is not None:
                systems.append(found)
    state = child(element, "ConferenceState")
    status = (text(state, "Status") if state is not None else None) or "Pending"
    return SavedConference(
        conference_id=conference_id,
        version=_int(text(element, "Version")) or 0,
        external_key=text(element, "ExternalPrimaryKey") or "",
        title=text(element, "Title") or "",
        start=parse_time(start),
        end=parse_time(end),
        owner_id=_int(text(element, "OwnerId")),
        owner_username=text(element, "OwnerUserName") or "",
        system_ids=tuple(systems),
        status=status,
        info_text=_raw_text(element, "ConferenceInfoText"),
        info_html=_html(_raw_text(element, "ConferenceInfoHtml")),
        transaction_id=_int(text(element, "TransactionId")),
    )


def _raw_text(parent: etree._Element, name: str) -> str:
    found = child(parent, name)
    return "" if found is None else found.text or ""


def _html(value: str) -> str:
    """``ConferenceInfoHtml`` as HTML markup.

    TMS sends the HTML escaped once for XML (§8.1: "escaped HTML"), which the parser undoes. Should
    a server escape it twice, what is left still starts with ``&lt;``; unescape that once more.
    """
    stripped = value.lstrip()
    if stripped.startswith("&lt;"):
        return html.unescape(value)
    return value


def recurrence_id_of(element: etree._Element) -> datetime | None:
    """``RecurrenceInstanceIdUTC`` of an occurrence, ``None`` for a single meeting or a series view."""
    raw = text(element, "RecurrenceInstanceIdUTC")
    return parse_time(raw) if raw else None


def is_deleted(element: etree._Element) -> bool:
    """Whether TMS shows the conference as deleted (negative id, §6.2, or ``Deleted`` status)."""
    conference_id = _int(text(element, "ConferenceId"))
    state = child(element, "ConferenceState")
    status = text(state, "Status") if state is not None else None
    return (conference_id is not None and conference_id < 0) or status == "Deleted"
