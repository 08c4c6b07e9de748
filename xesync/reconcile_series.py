"""The planner's series rules: a series' request and the occurrence-level calls for its exceptions.

Pure, like :mod:`xesync.reconcile`, which calls it. A series is one TMS recurrent conference
anchored at the first occurrence still to come (an anchor in the past would make TMS refuse the
save, L1). When the series has no end, more occurrences than TMS books (L3, L4) or reaches past the
lookahead, it is a rolling window of the occurrences inside it, rechecked daily; or, by policy,
declined. Exceptions only in occurrences — moved or cancelled ones — become occurrence calls, so a
whole-series save (which renumbers pending occurrences while one is live, L12) is avoided.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from xesync.actions import DeleteOccurrence, MoveOccurrence, Policy, Refuse, SaveBooking, TmsAction
from xesync.config.model import SeriesBeyondLimits
from xesync.meetings import ConferenceRequest, OccurrenceChange, RoomItem

Slots = dict[datetime, tuple[datetime, datetime] | None]


def series_request(
    item: RoomItem, common: Mapping[str, object], policy: Policy, now: datetime
) -> tuple[ConferenceRequest | None, datetime | None, Refuse | None]:
    """The request for a series: anchored at the first occurrence still to come, with its exceptions.

    :returns: the request, when to recheck (a rolling window), or the refusal.
    """
    rec = item.recurrence
    if rec is None:  # pragma: no cover - the caller sends series only
        msg = "a series request needs a recurrence"
        raise ValueError(msg)
    window_end = now + min(policy.lookahead, policy.booking_window)
    moved = {o.recurrence_id: o for o in item.occurrences if o.moved}
    ids = sorted(
        {o.recurrence_id for o in item.occurrences if o.end > now}
        | {d for d in item.deleted_occurrences if d > now}
    )
    if not ids:
        return (
            None,
            None,
            Refuse(uid=item.uid, code="past", reason="every occurrence has ended", decline=False),
        )
    if ids[0] > now + policy.booking_window:
        return None, None, Refuse(
            uid=item.uid, code="beyond_window", decline=False, recheck_at=ids[0] - policy.booking_window,
            reason="the series starts beyond TMS's booking window; booked when it enters",
        )  # fmt: skip
    inside = [i for i in ids if i <= window_end]
    last = max((o.recurrence_id for o in item.occurrences), default=ids[-1])
    complete = rec.has_end and last <= window_end and len(inside) == len(ids)
    recheck_at: datetime | None = None
    if not complete or len(inside) > policy.max_occurrences:
        if policy.series_beyond_limits is SeriesBeyondLimits.DECLINE:
            why = (
                "the series has no end date"
                if not rec.has_end
                else "the series has more occurrences than TMS allows"
            )
            return None, None, Refuse(
                uid=item.uid, code="series_limit",
                reason=f"{why} (TMS books at most {policy.max_occurrences}); give it an end date",
            )  # fmt: skip
        inside = inside[: policy.max_occurrences]
        recheck_at = now + policy.rolling_recheck
    duration = item.end - item.start
    anchor = inside[0]
    exceptions = tuple(
        OccurrenceChange(recurrence_id=i, start=moved[i].start, end=moved[i].end)
        if i in moved
        else OccurrenceChange(recurrence_id=i)
        for i in inside
        if i in moved or i in item.deleted_occurrences
    )
    request = ConferenceRequest(
        start=anchor, end=anchor + duration, recurrence=rec, occurrence_limit=len(inside),
        exceptions=exceptions, **common,  # type: ignore[arg-type]
    )  # fmt: skip
    return request, recheck_at, None


def exceptions_after(
    request: ConferenceRequest | None, now: datetime
) -> dict[datetime, tuple[datetime, datetime] | None]:
    """A request's exceptions after ``now``: recurrence id → ``(start, end)``, or ``None`` if cancelled."""
    if request is None:
        return {}
    return {
        e.recurrence_id: None if e.start is None or e.end is None else (e.start, e.end)
        for e in request.exceptions
        if e.recurrence_id > now
    }


def occurrence_actions(
    uid: str, request: ConferenceRequest, *, members: tuple[str, ...], want: Slots, have: Slots
) -> tuple[TmsAction, ...]:
    """The calls that take TMS's exceptions from ``have`` to ``want``; a whole save when only that can."""
    undone = any(rid not in want for rid in have)
    uncancelled = any(have.get(rid) is None and want[rid] is not None for rid in want if rid in have)
    recancelled = any(have.get(rid) is not None and want[rid] is None for rid in want if rid in have)
    if undone or uncancelled or recancelled:
        # An exception was undone, or a moved occurrence cancelled: only a whole save says that.
        return (SaveBooking(uid=uid, request=request, rooms=members, reason="series exceptions changed"),)
    out: list[TmsAction] = []
    key = request.external_key
    for rid, slot in sorted(want.items()):
        if rid in have and have[rid] == slot:
            continue
        if slot is None:
            out.append(
                DeleteOccurrence(uid=uid, external_key=key, recurrence_id=rid, reason="occurrence cancelled")
            )
        else:
            out.append(
                MoveOccurrence(
                    uid=uid,
                    external_key=key,
                    recurrence_id=rid,
                    start=slot[0],
                    end=slot[1],
                    reason="occurrence moved",
                )
            )
    return tuple(out)
