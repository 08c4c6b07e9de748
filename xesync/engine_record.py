"""What the engine remembers and says about one meeting: the result, the room's record, audit and events.

:class:`MeetingResult` gathers what the executor reported for one meeting in one room's pass;
:func:`record_after` turns it into the room's :class:`~xesync.model.SyncRecord` (the TMS state stays
on the booking, the room's answer on the record); :func:`audit_entries` and :func:`emit` say the
same in the audit trail and the log, with room, UID, occurrence, subject, organiser and conference id
on every line (STYLE.md §6).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from xesync import dialin, events
from xesync.actions import (
    Accept,
    Decline,
    DeleteBooking,
    DeleteOccurrence,
    MeetingFacts,
    MoveOccurrence,
    Refuse,
    RoomAction,
    SaveBooking,
    SendMail,
    SetBody,
    TmsAction,
    TmsPlan,
    Warn,
)
from xesync.errors import TransientError, XesyncError
from xesync.executor import RoomOutcome, TmsOutcome
from xesync.meetings import Response
from xesync.model import (
    AuditEntry,
    AuditOutcome,
    Booking,
    BookingStatus,
    RoomResponse,
    SyncRecord,
)


@dataclass(slots=True)
class MeetingResult:
    """How one meeting ended in one room's pass.

    :ivar outcome: one word for the canonical line: ``booked``, ``declined``, ``cancelled``,
        ``skipped``, ``unchanged``, ``failed``, ``planned`` or ``refused`` (by the fuse).
    :ivar decision: what the meeting's state is after the pass (the outcome before ``unchanged``
        replaced it on the canonical line); the record's status follows it.
    :ivar booking: the booking row to store, if it changed.
    :ivar deferred: nothing happened but a changekey bump; the record is refreshed with the room.
    :ivar owed: the room stage was held to the end of the pass (:mod:`xesync.engine_pass`); until it
        runs, the record carries a due recheck.
    :ivar stale: other rooms' records to mark due, their copies showing an old dial-in block.
    """

    facts: MeetingFacts
    plan: TmsPlan
    outcome: str
    tms: TmsOutcome | None = None
    rooms: RoomOutcome | None = None
    booking: Booking | None = None
    error: str | None = None
    transient: bool = False
    deferred: bool = False
    planned_rooms: tuple[RoomAction, ...] = ()
    applied: list[Any] = field(default_factory=list)
    decision: str = ""
    owed: bool = False
    stale: tuple[SyncRecord, ...] = ()

    @classmethod
    def of(
        cls, facts: MeetingFacts, plan: TmsPlan, tms: TmsOutcome, rooms: RoomOutcome, booking: Booking | None
    ) -> MeetingResult:
        """The result of an applied plan."""
        failure: XesyncError | None = tms.failed or rooms.failed
        result = cls(
            facts=facts, plan=plan, outcome="", tms=tms, rooms=rooms,
            booking=booking if booking != facts.booking else None,
            error=str(failure) if failure else tms.refused,
            transient=isinstance(failure, TransientError),
            applied=[a for a, _ in tms.applied] + list(rooms.applied),
        )  # fmt: skip
        result.outcome = result.decision = _outcome(result, booking)
        previous = facts.records.get(facts.room)
        if not result.applied and failure is None and result.booking is None and previous is not None:
            fresh = record_after(facts, plan, result, previous.updated_at, retry_after=timedelta(0))
            result.deferred = fresh is not None and _same(previous, fresh)
            if result.deferred:
                result.outcome = "unchanged"
        return result

    @classmethod
    def stopped(cls, facts: MeetingFacts, plan: TmsPlan, exc: Exception) -> MeetingResult:
        """A meeting stopped before anything was applied (a transient failure, or a surprise)."""
        return cls(facts=facts, plan=plan, outcome="failed", error=str(exc), transient=True)

    @classmethod
    def planned(cls, facts: MeetingFacts, plan: TmsPlan, rooms: tuple[RoomAction, ...]) -> MeetingResult:
        """A dry run's result: what would be done."""
        return cls(facts=facts, plan=plan, outcome="planned", planned_rooms=rooms)

    @classmethod
    def fused(cls, facts: MeetingFacts, plan: TmsPlan, reason: str) -> MeetingResult:
        """A cancellation the data-loss fuse refused."""
        return cls(facts=facts, plan=plan, outcome="refused", error=reason)


@dataclass(slots=True)
class RoomReport:
    """How one room's pass ended."""

    room: str
    ok: bool = True
    error: str | None = None
    meetings: list[MeetingResult] = field(default_factory=list)
    held: bool = False  # the sync state was kept (fuse tripped, or a failure)


@dataclass(slots=True)
class SyncReport:
    """How a pass over the rooms ended."""

    run_id: str
    rooms: list[RoomReport] = field(default_factory=list)

    @property
    def failed_rooms(self) -> list[str]:
        """The rooms whose pass did not complete."""
        return [r.room for r in self.rooms if not r.ok]


def _outcome(result: MeetingResult, booking: Booking | None) -> str:
    plan, room = result.plan, result.facts.room
    if result.transient:
        return "failed"
    if plan.cancelled:
        return "cancelled"
    if plan.refusal is not None:
        return "declined" if plan.refusal.decline else "skipped"
    kept = booking is not None and booking.live and room in booking.rooms
    if result.tms is not None and result.tms.refused and not kept:  # a refusal about another room
        return "declined"
    if kept:
        return "booked" if result.applied else "unchanged"
    return "declined" if booking is not None else "skipped"


def _same(a: SyncRecord, b: SyncRecord) -> bool:
    ignore = {"change_key": None, "updated_at": None, "item_id": None}
    return dataclasses.replace(a, **ignore) == dataclasses.replace(b, **ignore)  # type: ignore[arg-type]


def _status(result: MeetingResult, booking: Booking | None) -> BookingStatus:
    decision = result.decision or result.outcome
    return {
        "failed": BookingStatus.FAILED,
        "cancelled": BookingStatus.CANCELLED,
        "declined": BookingStatus.DECLINED,
        "skipped": BookingStatus.PENDING,
    }.get(
        decision,
        BookingStatus.DEFECTIVE
        if booking is not None and booking.state.value == "defective"
        else BookingStatus.BOOKED,
    )


def record_after(
    facts: MeetingFacts, plan: TmsPlan, result: MeetingResult, now: datetime, *, retry_after: timedelta
) -> SyncRecord | None:
    """The room's record after the meeting's pass; ``None`` when there is nothing to remember."""
    item, previous = facts.item, facts.records.get(facts.room)
    booking = result.booking or facts.booking
    if item is None:
        if previous is None:
            return None
        status = BookingStatus.FAILED if result.transient else BookingStatus.CANCELLED
        recheck = now + retry_after if result.transient else None
        return dataclasses.replace(
            previous, status=status, recheck_at=recheck, last_error=result.error, updated_at=now
        )
    rooms = result.rooms
    response = {Response.ACCEPT: RoomResponse.ACCEPTED, Response.DECLINE: RoomResponse.DECLINED}.get(
        item.response, RoomResponse.NONE
    )
    if rooms is not None and rooms.response is not None:
        response = rooms.response
    recheck = plan.recheck_at
    if result.transient or (rooms is not None and rooms.failed is not None):
        recheck = now + retry_after
    if result.owed:
        recheck = now  # the held room stage is owed: a crash before it runs replays it next pass
    status = _status(result, booking)
    return SyncRecord(
        room=facts.room, uid=facts.uid, occurrence=None,
        conference_id=booking.conference_id if booking else None,
        version=booking.version if booking else None,
        item_id=item.item_id,
        change_key=rooms.ref.change_key if rooms is not None and rooms.ref is not None else item.change_key,
        content_hash="" if result.transient else plan.item_hash, status=status, organiser=item.organiser,
        owner=booking.owner if booking else None, start=item.start, end=item.end, subject=item.subject,
        last_error=result.error, updated_at=now, response=response,
        dial_in_hash=(rooms.dial_in_hash if rooms is not None and rooms.dial_in_hash else None)
        or dialin.current_digest(item.body, is_html=item.body_is_html),
        recheck_at=recheck,
    )  # fmt: skip


def _kind(action: TmsAction | RoomAction | Refuse) -> str:
    return str(action.kind.value)


def _context(facts: MeetingFacts, booking: Booking | None) -> dict[str, Any]:
    item = facts.item
    return {
        "room": facts.room,
        "uid": facts.uid,
        "occurrence": None,
        "subject": item.subject if item else (booking.subject if booking else None),
        "organiser": item.organiser if item else (booking.organiser if booking else None),
        "conference_id": booking.conference_id if booking else None,
    }


def _emit_applied(log: Any, action: Any, booking: Booking | None, ctx: dict[str, Any]) -> None:
    # Each branch names its event constant (tests/unit/test_architecture.py checks every log call).
    reason = getattr(action, "reason", None)
    if isinstance(action, SaveBooking):
        owner = booking.owner if booking else None
        if action.request.conference_id is None:
            log.info(events.BOOKING_CREATED, reason=reason, rooms=list(action.rooms), owner=owner, **ctx)
        else:
            log.info(events.BOOKING_UPDATED, reason=reason, rooms=list(action.rooms), owner=owner, **ctx)
    elif isinstance(action, DeleteBooking):
        log.info(events.BOOKING_CANCELLED, reason=reason, **ctx)
    elif isinstance(action, DeleteOccurrence):
        log.info(
            events.OCCURRENCE_CANCELLED, reason=reason, recurrence_id=action.recurrence_id.isoformat(), **ctx
        )
    elif isinstance(action, MoveOccurrence):
        log.info(
            events.OCCURRENCE_MOVED, reason=reason, recurrence_id=action.recurrence_id.isoformat(), **ctx
        )
    elif isinstance(action, SetBody):
        log.info(events.MEETING_BODY_UPDATED, **ctx)
    elif isinstance(action, Accept):
        log.info(events.MEETING_ACCEPTED, notified=action.notice is not None, **ctx)
    elif isinstance(action, Decline):
        log.info(events.MEETING_DECLINED, reason=action.reason, notified=action.notice is not None, **ctx)
    elif isinstance(action, SendMail):
        log.info(events.ORGANISER_NOTIFIED, **ctx)


def emit_warning(log: Any, warning: Warn, room: str) -> None:
    """A planner warning as its event."""
    if warning.event == events.BOOKING_OWNER_DEFAULTED:
        log.warning(events.BOOKING_OWNER_DEFAULTED, room=room, uid=warning.uid, reason=warning.reason)
    else:
        log.warning(events.MEETING_SUBJECT_REPLACED, room=room, uid=warning.uid, reason=warning.reason)


def emit(log: Any, facts: MeetingFacts, plan: TmsPlan, result: MeetingResult) -> None:
    """One event per decision, every one naming the meeting and the room."""
    booking = result.booking or facts.booking
    ctx = _context(facts, booking)
    if result.outcome == "planned":
        for action in (*plan.actions, *result.planned_rooms):
            log.info(
                events.BOOKING_PLANNED, action=_kind(action), reason=getattr(action, "reason", None), **ctx
            )
        if plan.refusal is not None:
            log.info(events.BOOKING_PLANNED, action=_kind(plan.refusal), reason=plan.refusal.reason, **ctx)
        return
    if result.outcome == "refused":
        log.error(events.GUARD_MASS_CANCEL_REFUSED, reason=result.error, **ctx)
        return
    for action in result.applied:
        _emit_applied(log, action, booking, ctx)
    if plan.refusal is not None and plan.refusal.decline:
        log.info(events.MEETING_REFUSED, code=plan.refusal.code, reason=plan.refusal.reason, **ctx)
    elif plan.refusal is not None:
        log.info(events.MEETING_SKIPPED, code=plan.refusal.code, reason=plan.refusal.reason, **ctx)
    if result.tms is not None and result.tms.refused:
        log.warning(events.BOOKING_REJECTED, reason=result.tms.refused, **ctx)
    if result.error and (result.transient or (result.rooms is not None and result.rooms.failed)):
        log.error(events.MEETING_FAILED, error=result.error, transient=result.transient, **ctx)


def audit_entries(
    run_id: str, facts: MeetingFacts, plan: TmsPlan, result: MeetingResult, now: datetime, *, dry_run: bool
) -> list[AuditEntry]:
    """The audit rows for the meeting's decisions (``planned`` in a dry run)."""
    booking = result.booking or facts.booking
    details = {"conference_id": booking.conference_id if booking else None}

    def entry(action: str, outcome: AuditOutcome, reason: str, **more: Any) -> AuditEntry:
        return AuditEntry(
            at=now, run_id=run_id, room=facts.room, uid=facts.uid, action=action, outcome=outcome,
            reason=reason, details={**details, **more},
        )  # fmt: skip

    out: list[AuditEntry] = []
    if dry_run or result.outcome == "planned":
        out += [entry(_kind(a), AuditOutcome.PLANNED, getattr(a, "reason", "") or "") for a in plan.actions]
        out += [
            entry(_kind(a), AuditOutcome.PLANNED, getattr(a, "reason", "") or "")
            for a in result.planned_rooms
        ]
    elif result.outcome == "refused":
        out += [entry(_kind(a), AuditOutcome.REFUSED, result.error or "") for a in plan.actions]
    else:
        out += [entry(_kind(a), AuditOutcome.APPLIED, getattr(a, "reason", "") or "") for a in result.applied]
        if result.tms is not None and result.tms.refused:
            out.append(entry("save_booking", AuditOutcome.FAILED, result.tms.refused))
        if result.error and result.outcome == "failed":
            out.append(entry("sync_meeting", AuditOutcome.FAILED, result.error, transient=result.transient))
    if plan.refusal is not None and result.outcome != "refused":
        outcome = (
            AuditOutcome.PLANNED
            if dry_run
            else (AuditOutcome.APPLIED if plan.refusal.decline else AuditOutcome.SKIPPED)
        )
        out.append(entry(_kind(plan.refusal), outcome, plan.refusal.reason, code=plan.refusal.code))
    for warning in plan.warnings:
        out.append(
            entry(
                "warn",
                AuditOutcome.APPLIED if not dry_run else AuditOutcome.PLANNED,
                warning.reason,
                event=warning.event,
            )
        )
    return out
