"""``Conference`` and friends between XML and the simulator's records (tms-booking-api.md §8).

Elements are emitted in the XmlSerializer order of §8.1, nulls omitted, times in the space form. A
client below API version 14 gets only the elements of the old WSDL: the API "filters outgoing values"
by version (§4). spec: the exact version at which each TMS 15 element appears is [unconfirmed].
"""

from __future__ import annotations

from datetime import datetime, timedelta
from html import escape

from lxml import etree

from xesync.lab.tms.model import (
    ENUM_DEFAULTS,
    TEXT_FIELDS,
    Booking,
    ConferenceInput,
    Occurrence,
    Participant,
    TmsSystem,
    TmsUser,
    Transaction,
)
from xesync.lab.tms.recurrence import parse_pattern, render_pattern
from xesync.lab.tms.soap import BOOKING_NS, children, first, text
from xesync.lab.tms.timezones import TimeZoneRule, parse_rules, render_rules
from xesync.lab.tms.values import as_bool, default_title, fmt_time, parse_time

NS = BOOKING_NS
MODERN_API = 14  # at and above this client version the TMS 15 elements are emitted
TZ_RULES_API = 11  # ConferenceTimeZoneRules (§4, §8.5)
BANDWIDTHS = ("ISDNBandwidth", "IPBandwidth")  # {Bandwidth} wrappers (§8.1 items 38-39)


def q(name: str, ns: str = NS) -> str:
    """A qualified tag in the service namespace."""
    return f"{{{ns}}}{name}"


def sub(parent: etree._Element, name: str, value: str | None = None, ns: str = NS) -> etree._Element:
    """Append ``<name>value</name>``."""
    child = etree.SubElement(parent, q(name, ns))
    if value:  # an empty string is written as an empty element, as XmlSerializer does
        child.text = value
    return child


# ---------------------------------------------------------------------------------- parsing


def _int(raw: str | None, field: str) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{field} must be an integer") from None


def _time(raw: str | None, field: str) -> datetime | None:
    if not raw:
        return None
    try:
        return parse_time(raw)
    except ValueError:
        raise ValueError(f"{field} must be a UTC time like 2025-03-04 09:00:00Z") from None


def parse_conference(element: etree._Element) -> ConferenceInput:
    """Read a request's ``Conference``; unknown or wrongly cased elements are ignored, as ASMX does.

    :raises ValueError: naming a field that does not parse (the caller answers a fault).
    """
    inp = ConferenceInput(conference_id=_int(text(element, "ConferenceId"), "ConferenceId") or 0)
    inp.title = text(element, "Title")
    inp.start = _time(text(element, "StartTimeUTC"), "StartTimeUTC")
    inp.end = _time(text(element, "EndTimeUTC"), "EndTimeUTC")
    inp.recurrence_instance_id = _time(text(element, "RecurrenceInstanceIdUTC"), "RecurrenceInstanceIdUTC")
    pattern = first(element, "RecurrencePattern")
    if pattern is not None and len(pattern):
        inp.pattern = parse_pattern(pattern)
    inp.owner_id = _int(text(element, "OwnerId"), "OwnerId")
    inp.owner_username = text(element, "OwnerUserName") or None
    inp.owner_first_name = text(element, "OwnerFirstName")
    inp.owner_last_name = text(element, "OwnerLastName")
    inp.owner_email = text(element, "OwnerEmailAddress") or None
    for name in ENUM_DEFAULTS:
        value = text(element, name)
        if value and value != "Default":  # saving Default changes nothing (§4)
            inp.enums[name] = value
    for name in TEXT_FIELDS:
        value = text(element, name)
        if value is not None:
            inp.texts[name] = value
    inp.password = text(element, "Password") or None
    isdn = text(element, "ISDNRestrict")
    inp.isdn_restrict = None if isdn is None else as_bool(isdn)
    inp.external_source_id = text(element, "ExternalSourceId") or None
    inp.external_primary_key = text(element, "ExternalPrimaryKey") or None
    parts = first(element, "Participants")
    if parts is not None:
        inp.participants = [_participant(p) for p in children(parts, "Participant")]
    inp.version = _int(text(element, "Version"), "Version")
    for name in BANDWIDTHS:
        wrapper = first(element, name)
        value = None if wrapper is None else text(wrapper, "Bandwidth")
        if value and value != "Default":
            inp.texts[name] = value
    rules = first(element, "ConferenceTimeZoneRules")
    inp.time_zone_rules = None if rules is None else parse_rules(rules)
    if inp.title is not None and len(inp.title) > 255:  # noqa: PLR2004 - §5
        raise ValueError("Title is longer than 255 characters")
    return inp


def _participant(element: etree._Element) -> Participant:
    return Participant(
        participant_id=_int(text(element, "ParticipantId"), "ParticipantId") or 0,
        call_type=text(element, "ParticipantCallType") or "TMS",
        name_or_number=text(element, "NameOrNumber") or None,
        email=text(element, "EmailAddress") or None,
    )


# ---------------------------------------------------------------------------------- rendering


def info_text(booking: Booking, occ: Occurrence, dial_uri: str, systems: dict[int, TmsSystem]) -> str:
    """``ConferenceInfoText``: dial-in URI, PIN and conference id (the only place they appear, §8.1)."""
    rooms = ", ".join(systems[s].name for s in booking.systems() if s in systems)
    lines = [
        f"Title: {occ.title or booking.title}",
        f"Start: {fmt_time(occ.start)}",
        f"End: {fmt_time(occ.end)}",
        f"Conference ID: {occ.conference_id}",
        f"Rooms: {rooms}" if rooms else "",
        "",
        "To join the video meeting:",
        f"Dial in: {dial_uri}",
        f"PIN: {booking.password}#",
        f"Numeric ID: {booking.numeric_id}",
    ]
    return "\n".join(line for line in lines if line is not None)


def info_html(plain: str) -> str:
    """``ConferenceInfoHtml``: the same content as escaped HTML (lxml escapes it once more on the wire)."""
    body = "".join(f"<p>{escape(line)}</p>" if line else "<br/>" for line in plain.split("\n"))
    return f'<body style="font-family:Arial">{body}</body>'


def render_conference(
    parent: etree._Element,
    tag: str,
    booking: Booking,
    occ: Occurrence | None,
    *,
    now: datetime,
    owner: TmsUser | None,
    dial_uri: str,
    systems: dict[int, TmsSystem],
    client_version: int,
    summary: bool = False,
    server_rules: list[TimeZoneRule] | None = None,
    transaction_id_api: int = MODERN_API,
) -> etree._Element:
    """Append a ``Conference`` (named ``tag``) for a booking: the series view when ``occ`` is ``None``.

    A booking saved without ``ConferenceTimeZoneRules`` shows ``server_rules`` (the TMS server's zone);
    ``TransactionId`` appears from ``transaction_id_api`` on.
    """
    modern = client_version >= MODERN_API
    first_occ = booking.occurrences[0] if booking.occurrences else None
    view = occ or (first_occ if not booking.recurrent else None)
    series_view = occ is None and booking.recurrent
    el = etree.SubElement(parent, q(tag))
    if series_view:
        base = next((o for o in booking.occurrences if not o.deleted), first_occ)
        conference_id = booking.booking_id if not booking.deleted else -booking.booking_id
        start = (base.recurrence_id or base.start) if base else now
        end = start + (base.end - base.start if base else booking_duration(booking))
        status_occ = base
    else:
        if view is None:  # pragma: no cover - a booking always has an occurrence
            raise ValueError("booking without occurrences")
        conference_id, start, end, status_occ = view.conference_id, view.start, view.end, view
    sub(el, "ConferenceId", str(conference_id))
    sub(el, "Title", (view.title if view and view.title else None) or booking.title)
    sub(el, "StartTimeUTC", fmt_time(start))
    sub(el, "EndTimeUTC", fmt_time(end))
    first_rid = first_occ.recurrence_id if first_occ else None
    if occ is not None and occ.recurrence_id is not None:
        sub(el, "RecurrenceInstanceIdUTC", fmt_time(occ.recurrence_id))
        if occ.modified or occ.deleted:
            sub(el, "RecurrenceInstanceType", "deleted" if occ.deleted else "modify")
        if first_rid is not None:
            sub(el, "FirstOccurrenceRecInstanceIdUTC", fmt_time(first_rid))
    if booking.pattern is not None and not summary:
        render_pattern(el, NS, booking.pattern, first_rid)
    sub(el, "OwnerId", str(booking.owner_id))
    if owner is not None:
        sub(el, "OwnerUserName", owner.username)
        sub(el, "OwnerFirstName", owner.first_name)
        sub(el, "OwnerLastName", owner.last_name)
        sub(el, "OwnerEmailAddress", owner.email)
    for name in ENUM_DEFAULTS:
        sub(el, name, booking.enums.get(name, ENUM_DEFAULTS[name]))
    sub(el, "Password", booking.password)
    if "BillingCode" in booking.texts:
        sub(el, "BillingCode", booking.texts["BillingCode"])
    sub(el, "ISDNRestrict", "true" if booking.isdn_restrict else "false")
    if modern:
        for name in ("EmailTo", "ConfBundleId", "ConfOwnerId"):
            if name in booking.texts:
                sub(el, name, booking.texts[name])
    if not summary and status_occ is not None:
        plain = info_text(booking, status_occ, dial_uri, systems)
        sub(el, "ConferenceInfoText", plain)
        sub(el, "ConferenceInfoHtml", info_html(plain))
    if "UserMessageText" in booking.texts:
        sub(el, "UserMessageText", booking.texts["UserMessageText"])
    if booking.external_source_id is not None:
        sub(el, "ExternalSourceId", booking.external_source_id)
    if booking.external_primary_key is not None:
        sub(el, "ExternalPrimaryKey", booking.external_primary_key)
    if modern:
        for name in ("DetachedFromExternalSourceId", "DetachedFromExternalPrimaryKey"):
            if name in booking.texts:
                sub(el, name, booking.texts[name])
    if not summary:
        render_participants(el, booking.participants, modern=modern)
    if modern:
        for name in BANDWIDTHS:
            sub(sub(el, name), "Bandwidth", booking.texts.get(name, "Default"))
        sub(el, "ConferenceLanguage", booking.texts.get("ConferenceLanguage", "en-US"))
    rules = booking.time_zone_rules or server_rules
    if client_version >= TZ_RULES_API and rules:
        render_rules(el, NS, rules)  # as sent (§8.1 item 41), else the server's whole rule
    if modern:
        state = sub(el, "ConferenceState")
        sub(state, "Status", booking.status(status_occ, now) if status_occ else "Deleted")
        sub(el, "Version", str(booking.version))
        for name in (
            "Location",
            "Invitees",
            "SecretCode",
            "MeetingSource",
            "PrivacyFlag",
            "JoinUri",
            "JoinUrl",
        ):
            if name in booking.texts:
                sub(el, name, booking.texts[name])
        if client_version >= transaction_id_api:
            sub(el, "TransactionId", str(booking.transaction_id))
    return el


def booking_duration(booking: Booking) -> timedelta:
    """The duration of the first occurrence."""
    occ = booking.occurrences[0]
    return occ.end - occ.start


def render_participants(parent: etree._Element, participants: list[Participant], *, modern: bool) -> None:
    """Append ``Participants`` (§8.2 order; ``EmailAddress`` is TMS 15 only)."""
    wrapper = sub(parent, "Participants")
    for part in participants:
        item = sub(wrapper, "Participant")
        sub(item, "ParticipantId", str(part.participant_id))
        if part.name_or_number is not None:
            sub(item, "NameOrNumber", part.name_or_number)
        if modern and part.email is not None:
            sub(item, "EmailAddress", part.email)
        sub(item, "ParticipantCallType", part.call_type)


def render_default(
    parent: etree._Element,
    tag: str,
    *,
    now: datetime,
    owner: TmsUser,
    password: str,
    minutes: int,
    client_version: int,
) -> etree._Element:
    """``GetDefaultConference``'s result (§12.4): id -1, now → now + N minutes, owner = caller."""
    start = now.replace(microsecond=0)
    el = etree.SubElement(parent, q(tag))
    sub(el, "ConferenceId", "-1")
    sub(el, "Title", default_title(start))
    sub(el, "StartTimeUTC", fmt_time(start))
    sub(el, "EndTimeUTC", fmt_time(start + timedelta(minutes=minutes)))
    sub(el, "OwnerId", str(owner.user_id))
    sub(el, "OwnerUserName", owner.username)
    sub(el, "OwnerFirstName", owner.first_name)
    sub(el, "OwnerLastName", owner.last_name)
    sub(el, "OwnerEmailAddress", owner.email)
    for name, value in ENUM_DEFAULTS.items():
        sub(el, name, "Default" if name == "ConferenceType" else value)
    sub(el, "Password", password)
    sub(el, "ISDNRestrict", "false")
    if client_version >= MODERN_API:
        # Observed on TMS 15: the default conference carries an empty EmailTo (§8.1 item 24).
        sub(el, "EmailTo")
    sub(el, "Participants")
    if client_version >= MODERN_API:
        for name in ("ISDNBandwidth", "IPBandwidth"):
            sub(sub(el, name), "Bandwidth", "Default")
        sub(el, "ConferenceLanguage", "en-US")
        # spec: tms-booking-api.md §12.4 shows a ConferenceState on the default conference; its value
        # is [unconfirmed]; NotSaved is the TMS 15 value that fits an unsaved conference.
        sub(sub(el, "ConferenceState"), "Status", "NotSaved")
        sub(el, "Version", "0")
    return el


def render_transaction(parent: etree._Element, tx: Transaction, *, with_external: bool) -> None:
    """Append one ``Transaction`` (§8.7).

    spec: tms-booking-api.md §6.3: ``GetTransactionsSinceWithExternalId``'s shape is [unconfirmed];
    the simulator appends ``ExternalSourceId``/``ExternalPrimaryKey`` after ``ParticipantIds``.
    """
    el = sub(parent, "Transaction")
    sub(el, "TransactionId", str(tx.transaction_id))
    sub(el, "ConferenceId", str(tx.conference_id))
    sub(el, "TransType", tx.kind)
    sub(el, "PerformedByUserId", str(tx.performed_by))
    if tx.kind != "ListIncomplete":
        sub(el, "ParticipantIds", tx.participant_ids)
    if with_external and tx.external_primary_key is not None:
        sub(el, "ExternalSourceId", tx.external_source_id or "")
        sub(el, "ExternalPrimaryKey", tx.external_primary_key)


def render_system(parent: etree._Element, tag: str, system: TmsSystem, ns: str) -> None:
    """Append a ``TMSSystem`` (§8.8 order)."""
    el = sub(parent, tag, ns=ns)
    sub(el, "SystemId", str(system.system_id), ns)
    sub(el, "SystemName", system.name, ns)
    sub(el, "Contact", system.contact, ns)
    sub(el, "Manufacturer", "Cisco", ns)
    sub(el, "Description", system.description, ns)
    sub(el, "SystemType", system.system_type, ns)
    sub(el, "NetworkAddress", system.network_address, ns)  # a host name or IP address, never the URI
    sub(el, "Location", system.name, ns)
    sub(el, "ISDNNumber", system.isdn_number, ns)
    sub(el, "WebInterfaceURL", system.web_interface_url, ns)
    sub(el, "SIPUri", system.sip_uri, ns)
    sub(el, "H323Id", system.h323_id, ns)
    sub(el, "E164Alias", system.e164_alias, ns)
    tz = sub(el, "TimeZone", ns=ns)
    sub(tz, "TimezoneName", "UTC", ns)
    sub(tz, "GMTOffset", "0", ns)
    sub(sub(el, "SystemCategory", ns=ns), "systemCategory", "Room", ns)
    sub(sub(el, "SystemStatus", ns=ns), "systemStatus", "Alive" if system.allow_bookings else "Idle", ns)


def render_user(parent: etree._Element, user: TmsUser, ns: str) -> None:
    """Append a remote-setup ``User`` (§8.8 order)."""
    el = sub(parent, "User", ns=ns)
    sub(el, "DisplayName", user.display_name, ns)
    sub(el, "EmailAddress", user.email, ns)
    sub(el, "FirstName", user.first_name, ns)
    sub(el, "LastName", user.last_name, ns)
    sub(el, "UserName", user.username, ns)
    sub(el, "IsHiddenUser", "true" if user.hidden else "false", ns)
