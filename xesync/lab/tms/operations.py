"""The operations of both TMS services: one function per vendor operation (tms-booking-api.md §6).

Each takes a :class:`Call` and returns the body element of the answer (``<Op>Response``). They run
under the store's lock and raise :class:`TmsFault` for the documented faults.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from xesync.lab.tms import booking as rules
from xesync.lab.tms.codec import (
    parse_conference,
    q,
    render_conference,
    render_default,
    render_transaction,
    sub,
)
from xesync.lab.tms.model import Booking, Occurrence, TmsUser, Transaction
from xesync.lab.tms.soap import (
    BOOKING_NS,
    Code,
    Envelope,
    TmsFault,
    children,
    default_ns,
    first,
    text,
)
from xesync.lab.tms.store import TmsStore
from xesync.lab.tms.timezones import server_rules
from xesync.lab.tms.values import BOOKING_MODES, CONFERENCE_STATUSES, parse_time, status_matches


@dataclass(slots=True)
class Call:
    """One SOAP call being answered."""

    store: TmsStore
    env: Envelope
    caller: TmsUser
    now: datetime
    client_version: int
    dial_domain: str

    def invalid(self, message: str) -> TmsFault:
        """A fault for a request the simulator cannot read ("Unspecified Exception", §10.1)."""
        return TmsFault(self.store.knobs.code("invalid_request"), message)

    def arg(self, name: str) -> str | None:
        """The text of a body child."""
        return text(self.env.body, name)

    def int_arg(self, name: str) -> int:
        """An integer body child (a missing ``int`` is 0, as ASMX deserialises it)."""
        raw = self.arg(name)
        try:
            return int(raw) if raw else 0
        except ValueError:
            raise self.invalid(f"{name} must be an integer") from None

    def conference(
        self, parent: etree._Element, tag: str, item: Booking, occ: Occurrence | None, **kw: bool
    ) -> None:
        """Render a conference for this caller."""
        render_conference(
            parent,
            tag,
            item,
            occ,
            now=self.now,
            owner=self.store.users.get(item.owner_id),
            dial_uri=f"{item.numeric_id}@{self.dial_domain}",
            systems=self.store.systems,
            client_version=self.client_version,
            server_rules=server_rules(self.store.knobs.server_time_zone),
            transaction_id_api=self.store.knobs.transaction_id_api,
            **kw,
        )


Handler = Callable[[Call], "etree._Element"]  # noqa: SLF001 - lxml names its element type so


def response_element(op: str, ns: str = BOOKING_NS) -> etree._Element:
    """An empty ``<Op>Response`` with ``ns`` as the default namespace."""
    return etree.Element(q(f"{op}Response", ns), nsmap=default_ns(ns))


def _mode(call: Call) -> str:
    mode = call.arg("BookingMode") or "Strict"
    if mode not in BOOKING_MODES:
        raise call.invalid(f"BookingMode must be one of {', '.join(BOOKING_MODES)}")
    return mode


def _conference_arg(call: Call) -> etree._Element:
    element = first(call.env.body, "Conference")
    if element is None:
        raise call.invalid("The request has no Conference.")
    return element


def _parse(call: Call) -> object:
    try:
        return parse_conference(_conference_arg(call))
    except ValueError as exc:
        raise call.invalid(str(exc)) from None


# ---------------------------------------------------------------------------------- booking service


def get_default_conference(call: Call) -> etree._Element:
    """``GetDefaultConference`` (§12.4)."""
    out = response_element("GetDefaultConference")
    render_default(
        out,
        "GetDefaultConferenceResult",
        now=call.now,
        owner=call.caller,
        password=call.store.new_password(),
        minutes=call.store.knobs.default_duration_min,
        client_version=call.client_version,
    )
    return out


def _save(call: Call, op: str, mode: str, *, wrapped: bool) -> etree._Element:
    from xesync.lab.tms.model import ConferenceInput  # noqa: PLC0415

    inp = _parse(call)
    if not isinstance(inp, ConferenceInput):  # pragma: no cover - _parse returns one
        raise TypeError(inp)
    saved = rules.save(call.store, inp, mode, call.caller, call.now, api=call.client_version)
    out = response_element(op)
    if wrapped:
        # spec: tms-booking-api.md §6.3/§12.2: the WithMode result wraps a Conference ([third-party]).
        call.conference(sub(out, f"{op}Result"), "Conference", saved, None)
    else:
        call.conference(out, f"{op}Result", saved, None)
    return out


def save_conference(call: Call) -> etree._Element:
    """``SaveConference``: the legacy form, always ``Strict`` (§6.3)."""
    return _save(call, "SaveConference", "Strict", wrapped=False)


def save_conference_with_mode(call: Call) -> etree._Element:
    """``SaveConferenceWithMode`` (§7.1, §7.2)."""
    return _save(call, "SaveConferenceWithMode", _mode(call), wrapped=True)


def _save_instance(call: Call, op: str, mode: str, *, wrapped: bool) -> etree._Element:
    from xesync.lab.tms.model import ConferenceInput  # noqa: PLC0415

    inp = _parse(call)
    if not isinstance(inp, ConferenceInput):  # pragma: no cover
        raise TypeError(inp)
    saved, occ = rules.save_instance(call.store, inp, mode, call.caller, call.now)
    out = response_element(op)
    target = sub(out, f"{op}Result") if wrapped else out
    call.conference(target, "Conference" if wrapped else f"{op}Result", saved, occ)
    return out


def save_conference_rec_instance(call: Call) -> etree._Element:
    """``SaveConferenceRecInstance`` (legacy, ``Strict``)."""
    return _save_instance(call, "SaveConferenceRecInstance", "Strict", wrapped=False)


def save_conference_rec_instance_with_mode(call: Call) -> etree._Element:
    """``SaveConferenceRecInstanceWithMode``."""
    return _save_instance(call, "SaveConferenceRecInstanceWithMode", _mode(call), wrapped=True)


def save_conferences(call: Call) -> etree._Element:
    """``SaveConferences``: all or nothing (only ``oneTransaction=true`` is supported, §6.3)."""
    from xesync.lab.tms.codec import parse_conference as parse_one  # noqa: PLC0415

    elements = children(call.env.body, "Conferences")
    try:
        inputs = [parse_one(e) for e in elements]
    except ValueError as exc:
        raise call.invalid(str(exc)) from None
    store = call.store
    # All or nothing: keep a copy of the bookings and put it back if any save fails.
    before = (copy.deepcopy(store.bookings), list(store.transactions))
    saved: list[Booking] = []
    try:
        saved.extend(rules.save(store, inp, "Strict", call.caller, call.now) for inp in inputs)
    except TmsFault:
        store.bookings, store.transactions = before
        store.index.clear()
        for item in store.bookings.values():
            store.register(item)
        raise
    out = response_element("SaveConferences")
    result = sub(out, "SaveConferencesResult")
    for item in saved:
        call.conference(result, "Conference", item, None)
    return out


def get_conference_by_id(call: Call) -> etree._Element:
    """``GetConferenceById``: fault if it does not exist (§6.2)."""
    item, occ = call.store.find(call.int_arg("ConferenceId"))
    out = response_element("GetConferenceById")
    call.conference(out, "GetConferenceByIdResult", item, occ)
    return out


def get_recurrent_conference_by_id(call: Call) -> etree._Element:
    """``GetRecurrentConferenceById``: the series with exceptions; a deleted one has a negative id."""
    item, _ = call.store.find(call.int_arg("ConferenceId"))
    out = response_element("GetRecurrentConferenceById")
    call.conference(out, "GetRecurrentConferenceByIdResult", item, None)
    return out


def _external(call: Call) -> tuple[Booking, Occurrence | None]:
    source, key = call.arg("ExternalSourceId"), call.arg("ExternalConferenceId")
    found = call.store.find_external(source, key)
    if found is None:
        raise TmsFault(Code.MEETINGNOTFOUND, f"No conference has the external id {key!r}.")
    raw = call.arg("RecurrenceIdUTC")
    if not raw:
        return found, None
    try:
        rid = parse_time(raw)
    except ValueError:
        raise call.invalid("RecurrenceIdUTC must be a UTC time") from None
    occ = next((o for o in found.occurrences if o.recurrence_id == rid), None)
    if occ is None:
        raise TmsFault(Code.INSTANCE_NOT_FOUND_WITHIN_PATTERN, "The occurrence is not in the series.")
    return found, occ


def get_conference_by_external_id(call: Call) -> etree._Element:
    """``GetConferenceByExternalId``: the series (with exceptions) or the single meeting."""
    item, _ = _external(call)
    out = response_element("GetConferenceByExternalId")
    call.conference(out, "GetConferenceByExternalIdResult", item, None)
    return out


def get_conference_instance_by_external_id(call: Call) -> etree._Element:
    """``GetConferenceInstanceByExternalId``: one occurrence."""
    item, occ = _external(call)
    out = response_element("GetConferenceInstanceByExternalId")
    call.conference(out, "GetConferenceInstanceByExternalIdResult", item, occ)
    return out


def get_conference_id_by_external_id(call: Call) -> etree._Element:
    """``GetConferenceIdByExternalId``: the series' id, or the occurrence's with ``RecurrenceIdUTC``."""
    item, occ = _external(call)
    out = response_element("GetConferenceIdByExternalId")
    sub(out, "GetConferenceIdByExternalIdResult", str(occ.conference_id if occ else item.booking_id))
    return out


def _window(call: Call) -> tuple[datetime, datetime, str]:
    try:
        start = parse_time(call.arg("StartTime") or "")
        end = parse_time(call.arg("EndTime") or "")
    except ValueError:
        raise call.invalid("StartTime and EndTime must be xs:dateTime values") from None
    return start, end, _window_status(call)


def _window_status(call: Call) -> str:
    wanted = call.arg("ConferenceStatus") or "All"
    if wanted not in CONFERENCE_STATUSES:
        raise call.invalid(f"ConferenceStatus must be one of {', '.join(CONFERENCE_STATUSES)}")
    return wanted


def _listing(call: Call, op: str, keep: Callable[[Booking], bool]) -> etree._Element:
    start, end, wanted = _window(call)
    out = response_element(op)
    result = sub(out, f"{op}Result")
    sittings = [
        (item, occ)
        for item in call.store.bookings.values()
        if keep(item)
        for occ in item.occurrences
        if occ.start < end
        and start < occ.effective_end
        and status_matches(wanted, item.status(occ, call.now))
    ]
    for item, occ in sorted(sittings, key=lambda pair: (pair[1].start, pair[1].conference_id)):
        call.conference(result, "Conference", item, occ if item.recurrent else None, summary=True)
    return out


def get_conferences_for_systems(call: Call) -> etree._Element:
    """``GetConferencesForSystems``: summaries of the sittings in the window on these systems.

    Without ``SystemIds`` or without ``StartTime``/``EndTime`` the ``for_systems_without_args`` knob
    decides: a fault, or ASMX's defaults (no systems; ``DateTime.MinValue``), i.e. an empty list.
    """
    op = "GetConferencesForSystems"
    wanted: set[int] = set()
    for element in children(call.env.body, "SystemIds"):
        try:
            wanted.add(int((element.text or "").strip()))
        except ValueError:
            raise call.invalid("SystemIds must be integers") from None
    missing = not wanted or not call.arg("StartTime") or not call.arg("EndTime")
    if missing and call.store.knobs.for_systems_without_args == "asmx_defaults":
        _window_status(call)
        out = response_element(op)
        sub(out, f"{op}Result")
        return out
    if missing:
        raise call.invalid("GetConferencesForSystems needs SystemIds, StartTime and EndTime")
    return _listing(call, op, lambda b: bool(wanted & set(b.systems())))


def get_conferences_for_user(call: Call) -> etree._Element:
    """``GetConferencesForUser``: created or owned by the user; an empty name means the caller."""
    name = call.arg("UserName")
    user = call.store.user_by_name(name) if name else call.caller
    if user is None:
        raise TmsFault(Code.ERR_USER_NOT_FOUND, f"User {name!r} does not exist.")
    uid = user.user_id
    return _listing(call, "GetConferencesForUser", lambda b: uid in (b.owner_id, b.created_by))


def _void(op: str) -> etree._Element:
    return response_element(op)


def delete_conference_by_id(call: Call) -> etree._Element:
    """``DeleteConferenceById``: the whole series when recurrent."""
    rules.delete(call.store, call.int_arg("ConferenceId"), call.caller, call.now)
    return _void("DeleteConferenceById")


def delete_conference_by_external_id(call: Call) -> etree._Element:
    """``DeleteConferenceByExternalId``."""
    item, _ = _external(call)
    rules.delete_booking(call.store, item, call.caller, call.now)
    return _void("DeleteConferenceByExternalId")


def delete_conference_instance_by_external_id(call: Call) -> etree._Element:
    """``DeleteConferenceInstanceByExterna(l)Id``: both spellings are served (§6.3)."""
    item, occ = _external(call)
    if occ is None:
        raise call.invalid("RecurrenceIdUTC is required.")
    rules.delete_occurrence(call.store, item, occ, call.caller, call.now)
    return _void(call.env.operation)


def delete_conference_rec_instance_by_id(call: Call) -> etree._Element:
    """``DeleteConferenceRecInstanceById``: one occurrence."""
    rules.delete_instance(call.store, call.int_arg("ConferenceId"), call.caller, call.now)
    return _void("DeleteConferenceRecInstanceById")


def end_conference_by_id(call: Call) -> etree._Element:
    """``EndConferenceById``: only while ongoing."""
    rules.end(call.store, call.int_arg("ConferenceId"), call.caller, call.now)
    return _void("EndConferenceById")


def end_conference_by_external_id(call: Call) -> etree._Element:
    """``EndConferenceByExternalId``."""
    item, occ = _external(call)
    rules.end(call.store, occ.conference_id if occ else item.booking_id, call.caller, call.now)
    return _void("EndConferenceByExternalId")


def _transactions(call: Call, op: str, *, with_external: bool) -> etree._Element:
    since = call.int_arg("CurrentTransactionId")
    page, incomplete = call.store.transactions_since(since)
    out = response_element(op)
    result = sub(out, f"{op}Result")
    for tx in page:
        render_transaction(result, tx, with_external=with_external)
    if incomplete:
        last = page[-1].transaction_id
        marker = Transaction(
            transaction_id=last, conference_id=0, kind="ListIncomplete", performed_by=0, participant_ids=""
        )
        render_transaction(result, marker, with_external=False)
    return out


def get_transactions_since(call: Call) -> etree._Element:
    """``GetTransactionsSince``: after the id (exclusive), paged with a trailing ``ListIncomplete``."""
    return _transactions(call, "GetTransactionsSince", with_external=False)


def get_transactions_since_with_external_id(call: Call) -> etree._Element:
    """``GetTransactionsSinceWithExternalId`` (shape [unconfirmed], see ``render_transaction``)."""
    return _transactions(call, "GetTransactionsSinceWithExternalId", with_external=True)


def get_recording_aliases(call: Call) -> etree._Element:  # noqa: ARG001 - uniform signature
    """``GetRecordingAliases``: the lab has no recording devices."""
    out = response_element("GetRecordingAliases")
    sub(out, "GetRecordingAliasesResult")
    return out


BOOKING: dict[str, Handler] = {
    "GetDefaultConference": get_default_conference,
    "SaveConference": save_conference,
    "SaveConferenceWithMode": save_conference_with_mode,
    "SaveConferences": save_conferences,
    "SaveConferenceRecInstance": save_conference_rec_instance,
    "SaveConferenceRecInstanceWithMode": save_conference_rec_instance_with_mode,
    "GetConferenceById": get_conference_by_id,
    "GetRecurrentConferenceById": get_recurrent_conference_by_id,
    "GetConferenceByExternalId": get_conference_by_external_id,
    "GetConferenceInstanceByExternalId": get_conference_instance_by_external_id,
    "GetConferenceIdByExternalId": get_conference_id_by_external_id,
    "GetConferencesForSystems": get_conferences_for_systems,
    "GetConferencesForUser": get_conferences_for_user,
    "DeleteConferenceById": delete_conference_by_id,
    "DeleteConferenceByExternalId": delete_conference_by_external_id,
    "DeleteConferenceInstanceByExternalId": delete_conference_instance_by_external_id,
    "DeleteConferenceInstanceByExternaId": delete_conference_instance_by_external_id,
    "DeleteConferenceRecInstanceById": delete_conference_rec_instance_by_id,
    "EndConferenceById": end_conference_by_id,
    "EndConferenceByExternalId": end_conference_by_external_id,
    "GetTransactionsSince": get_transactions_since,
    "GetTransactionsSinceWithExternalId": get_transactions_since_with_external_id,
    "GetRecordingAliases": get_recording_aliases,
}
