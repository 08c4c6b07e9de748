"""The booking service's list reads: sittings in a time window, the transaction log, recording aliases.

``GetConferencesForSystems`` and ``GetConferencesForUser`` list conference summaries in a window
(tms-booking-api.md §6.2); ``GetTransactionsSince(WithExternalId)`` pages the transaction log with a
trailing ``ListIncomplete`` marker. The booking service's table of operations is in
:mod:`xesync.lab.tms.operations`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from lxml import etree

from xesync.lab.tms.call import Call, response_element
from xesync.lab.tms.codec import render_transaction, sub
from xesync.lab.tms.model import Booking, Transaction
from xesync.lab.tms.soap import Code, TmsFault, children
from xesync.lab.tms.values import CONFERENCE_STATUSES, parse_time, status_matches


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
