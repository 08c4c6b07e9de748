"""The Resource Booking Attendant's verdict on a room copy (``ews.md`` §3.1, §3.5).

A single meeting that conflicts is declined. A series whose conflicting instances stay within both
``ConflictPercentageAllowed`` and ``MaximumConflictInstances`` is accepted with those instances declined
one by one; beyond either limit (both default to 0) the whole series is declined.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from xesync.lab.ews.calendar import item_span, live_occurrences
from xesync.lab.ews.settings import RoomPolicy
from xesync.lab.ews.store import Item, Store


@dataclass(frozen=True, slots=True)
class Verdict:
    """Decline the whole meeting (``refusal``), or accept it without the ``declined`` instances."""

    refusal: str | None = None
    declined: tuple[datetime, ...] = ()  # original starts of conflicting instances


def decide(store: Store, copy: Item, policy: RoomPolicy) -> Verdict:
    """What the RBA does with ``copy`` under ``policy``."""
    now = store.now()
    window_end = now + timedelta(days=policy.booking_window_days)
    reason = _policy_refusal(copy, policy, window_end)
    if reason is not None or policy.allow_conflicts or copy.start is None or copy.end is None:
        return Verdict(reason)
    # (original start, start, end) of each instance the booking window covers.
    if copy.recurrence is None:
        instances = [(copy.start, copy.start, copy.end)]
    else:
        instances = [
            (o.original_start, o.start, o.end) for o in live_occurrences(copy, window_end + timedelta(days=1))
        ]
    clashes = _clashes(store, copy, instances, window_end)
    if not clashes:
        return Verdict()
    who = clashes[0][1]
    refusal = Verdict(f"The room is already booked by {who}.")
    if copy.recurrence is None:
        return refusal
    count = len(clashes)
    if count > policy.maximum_conflict_instances:
        return refusal
    if count * 100 > policy.conflict_percentage_allowed * len(instances):
        return refusal
    return Verdict(declined=tuple(original for original, _ in clashes))


def _policy_refusal(copy: Item, policy: RoomPolicy, window_end: datetime) -> str | None:
    """Why the RBA declines ``copy`` whatever else the room holds, or ``None``."""
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
    return None


def _clashes(
    store: Store, copy: Item, instances: list[tuple[datetime, datetime, datetime]], window_end: datetime
) -> list[tuple[datetime, str]]:
    """``(original start, other organiser)`` of each instance that overlaps an accepted booking."""
    out: list[tuple[datetime, str]] = []
    for original, start, end in instances:
        for other in store.items_in(copy.mailbox, "calendar"):
            if other.id == copy.id or other.uid == copy.uid or other.is_cancelled:
                continue
            if other.free_busy == "Free" or other.my_response not in {"Accept", "Organizer"}:
                continue
            if any(s2 < end and start < e2 for s2, e2 in item_span(other, window_end)):
                out.append((original, other.organizer.name if other.organizer else "someone"))
                break
    return out


def instance_refusal(
    store: Store, copy: Item, span: tuple[datetime, datetime], policy: RoomPolicy
) -> str | None:
    """Why the RBA declines one changed instance of an accepted series, or ``None`` (``ews.md`` §3.4)."""
    if policy.allow_conflicts:
        return None
    start, end = span
    window_end = store.now() + timedelta(days=policy.booking_window_days)
    if start > window_end:
        return "The meeting is outside the room's booking window."
    clashes = _clashes(store, copy, [(start, start, end)], window_end)
    return f"The room is already booked by {clashes[0][1]}." if clashes else None
