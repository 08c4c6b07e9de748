"""The booking service's operations that save, read and delete conferences (tms-booking-api.md §6).

One function per vendor operation; each takes a :class:`Call` and returns the body element of the
answer (``<Op>Response``). They run under the store's lock and raise :class:`TmsFault` for the
documented faults. :data:`BOOKING` maps every booking-service operation to its handler, including the
list reads of :mod:`xesync.lab.tms.listings`; the call context lives in :mod:`xesync.lab.tms.call`
(``Call``, ``Handler`` and ``response_element`` are re-exported here) and the Remote Setup service in
:mod:`xesync.lab.tms.remote_setup`.
"""

from __future__ import annotations

import copy

from lxml import etree

from xesync.lab.tms import booking as rules
from xesync.lab.tms.call import Call, Handler, response_element
from xesync.lab.tms.codec import parse_conference, render_default, sub
from xesync.lab.tms.listings import (
    get_conferences_for_systems,
    get_conferences_for_user,
    get_recording_aliases,
    get_transactions_since,
    get_transactions_since_with_external_id,
)
from xesync.lab.tms.model import Booking, Occurrence
from xesync.lab.tms.soap import Code, TmsFault, children, first
from xesync.lab.tms.values import BOOKING_MODES, parse_time

# The server and the Remote Setup service import the call context from here, as before the split.
__all__ = ["BOOKING", "Call", "Handler", "response_element"]


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
