"""The PMP+/SMP+ licence engine and the licence counters (cms-api.md §2.9, §3).

When a call starts, CMS assigns it one licence (§3.1):

1. a member of the space who holds PMP+ and has joined → that member's personal licence;
2. else the space owner (``ownerJid``/``ownerAdGuid``) if the owner holds PMP+ → the owner's licence;
3. else a shared SMP+ licence.

"Holds PMP+" means the user's effective userProfile (§3.2) has ``hasLicense=true``. Whether CMS
re-evaluates later is [unconfirmed] (§6.3): the knobs ``reevaluate_on_owner_change`` and
``member_join_upgrades`` switch it; profile changes never re-evaluate a running call here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from xesync import events
from xesync.lab.cms.state import Call, CmsState, Grant, User
from xesync.lab.cms.wire import Fields, rfc3339

log = structlog.get_logger(__name__)

SNAPSHOT = timedelta(minutes=5)
# The lab's stand-in for CMS's undocumented capacity-unit weighting (Cisco's example: one participant
# in one call = 0.025 units).
UNITS_PER_PARTICIPANT = 0.025


def evaluate(state: CmsState, call: Call, now: datetime) -> Grant:
    """Apply the three-step rule to a call as it is now."""
    space = state.spaces.get(call.cospace) if call.cospace else None
    if space is not None:
        for participant_id in call.participants:
            participant = state.participants.get(participant_id)
            if participant is None or not participant.user_jid:
                continue
            member = state.user_by_jid(participant.user_jid)
            if member and state.is_member(space.id, member) and state.has_license(member):
                return _pmp(member, "member", now)
        owner = state.owner_of(space)
        if owner is not None and state.has_license(owner):
            return _pmp(owner, "owner", now)
    return Grant(kind="smp", reason="none", at=now)


def _pmp(user: User, reason: str, now: datetime) -> Grant:
    return Grant(kind="pmp", reason=reason, user_id=user.id, user_jid=user.jid, at=now)


def assign(state: CmsState, call: Call, now: datetime, trigger: str) -> None:
    """(Re-)evaluate a call's licence and record a change in its history."""
    grant = evaluate(state, call, now)
    if call.history and (grant.kind, grant.user_id) == (call.grant.kind, call.grant.user_id):
        return
    call.grant = grant
    call.history.append(grant)
    log.info(
        events.LAB_LICENCE_ASSIGNED,
        call_id=call.id,
        licence=grant.kind,
        reason=grant.reason,
        user_jid=grant.user_jid,
        trigger=trigger,
    )


def on_member_joined(state: CmsState, call: Call, now: datetime) -> None:
    """A participant joined: upgrade SMP → PMP only when ``member_join_upgrades`` is on."""
    if state.knobs.member_join_upgrades and call.grant.kind == "smp":
        assign(state, call, now, "member_joined")


def on_owner_changed(state: CmsState, space_id: str, now: datetime) -> None:
    """A space's owner changed: re-evaluate its live call only when ``reevaluate_on_owner_change`` is on."""
    call = state.call_of_space(space_id)
    if call is not None and state.knobs.reevaluate_on_owner_change:
        assign(state, call, now, "owner_changed")


# ---------------------------------------------------------------------------------- counters


@dataclass(frozen=True, slots=True)
class Counters:
    """The numbers ``/system/multipartyLicensing`` reports for this Call Bridge."""

    users: int
    personal_licenses: int
    participants: int
    calls: int
    calls_without_personal: int
    participants_without_personal: int


def counters(state: CmsState) -> Counters:
    """Count users, licences, calls and participants now."""
    active = list(state.calls.values())
    smp = [c for c in active if c.grant.kind != "pmp"]
    return Counters(
        users=len(state.users),
        personal_licenses=sum(1 for u in state.users.values() if state.has_license(u)),
        participants=sum(len(c.participants) for c in active),
        calls=len(active),
        calls_without_personal=len(smp),
        participants_without_personal=sum(len(c.participants) for c in smp),
    )


def multiparty_fields(state: CmsState) -> Fields:
    """``<multipartyLicensing>`` children, in Cisco's order (``*Limit`` gone in 3.0)."""
    c = counters(state)
    limits = not state.knobs.at_least("3.0")
    return [
        ("timestamp", rfc3339(state.now())),
        ("personalLicenseLimit", state.knobs.personal_license_limit if limits else None),
        ("sharedLicenseLimit", state.knobs.shared_license_limit if limits else None),
        ("capacityUnitLimit", 0 if limits else None),
        ("users", c.users),
        ("personalLicenses", c.personal_licenses),
        ("participantsActive", c.participants),
        ("callsActive", c.calls),
        ("weightedCallsActive", float(c.calls)),
        ("callsWithoutPersonalLicense", c.calls_without_personal),
        ("weightedCallsWithoutPersonalLicense", float(c.calls_without_personal)),
        ("capacityUnitUsage", c.participants * UNITS_PER_PARTICIPANT),
        ("capacityUnitUsageWithoutPersonalLicense", c.participants_without_personal * UNITS_PER_PARTICIPANT),
    ]


def active_personal_licenses(state: CmsState) -> list[tuple[str, int]]:
    """``(user key, callsActive)`` per user whose PMP licence is in use, in first-use order.

    The key is the user's id or JID per ``active_licenses_user_attr`` (cms-api.md §6.1 [unconfirmed]).
    """
    by_user: dict[str, int] = {}
    for call in state.calls.values():
        if call.grant.kind != "pmp" or call.grant.user_id is None:
            continue
        key = call.grant.user_id if state.knobs.active_licenses_user_attr == "id" else call.grant.user_jid
        by_user[key or ""] = by_user.get(key or "", 0) + 1
    return list(by_user.items())


# ---------------------------------------------------------------------------------- usage snapshots


def usage_window(state: CmsState, start: datetime | None, end: datetime | None) -> tuple[int, int]:
    """Snapshot indexes ``(first, last)`` inside ``[start, end]``; snapshot k is at started + k·5 min.

    Snapshots exist from 5 minutes after the simulator started up to the lab's now, so that jumping the
    clock forward produces the snapshots a real Call Bridge would have taken meanwhile.
    """
    now = state.now()
    hi_time = min(now, end) if end else now
    last = math.floor((hi_time - state.started) / SNAPSHOT)
    first = 1
    if start is not None:
        first = max(1, math.ceil((start - state.started) / SNAPSHOT))
    return first, last


def usage_entry(state: CmsState, k: int) -> tuple[str, Fields]:
    """Snapshot k: licences used by calls active at any time in the 5 minutes before it."""
    at = state.started + k * SNAPSHOT
    since = at - SNAPSHOT
    pmp = smp = rec = stream = 0
    for call in state.all_calls():
        if call.started > at or (call.ended is not None and call.ended <= since):
            continue
        grant = _grant_at(call, at)
        if grant.kind == "pmp":
            pmp += 1
        else:
            smp += 1
        rec += call.recording
        stream += call.streaming
    # The lab does not model audio-only or point-to-point calls: every shared licence is smpFull.
    values: Fields = [
        ("pmp", f"{pmp:.2f}" if pmp else None),
        ("pmpAssigned", _assigned(state) if state.knobs.at_least("3.0") else None),
        ("smpFull", f"{smp:.2f}" if smp else None),
        ("rec", f"{rec:.2f}" if rec else None),
        ("str", f"{stream:.2f}" if stream else None),
    ]
    return rfc3339(at), values


def _assigned(state: CmsState) -> str | None:
    n = counters(state).personal_licenses
    return f"{n:.2f}" if n else None


def _grant_at(call: Call, at: datetime) -> Grant:
    current = call.history[0] if call.history else call.grant
    for grant in call.history:
        if grant.at <= at:
            current = grant
    return current
