"""The planner's room stage and the data-loss fuse: pure, like :mod:`xesync.reconcile`.

- :func:`plan_room` decides what the room's copy and the organiser are told once TMS has answered:
  accept or decline, the dial-in block (written after the accept, so that the changekey the body
  write returns is the copy's last), and the organiser's notice. The first notice rides on the
  room's response (the acceptance or the decline goes to the organiser anyway), so a new meeting
  costs no separate mail; a later change of the details is mailed.
- :func:`mass_cancel_refusal` is the fuse of STYLE.md §3: a room that suddenly returns no meetings
  on a full sync, or a pass that would cancel more than a share of a room's future bookings, is not
  applied (vdirsyncer ``StorageEmpty``; product.md idea 10).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

from xesync import dialin
from xesync.actions import (
    Accept,
    Decline,
    MeetingFacts,
    Policy,
    RoomAction,
    RoomInfo,
    SaveBooking,
    SendMail,
    SetBody,
    TmsPlan,
)
from xesync.meetings import ItemRef, Response
from xesync.model import Booking, BookingStatus, SyncRecord, TmsState
from xesync.notify import Templates, notice_hash, when_text


def refusal_reason(plan: TmsPlan, booking: Booking | None, room: str, tms_error: str | None) -> str | None:
    """Why this room's copy must be declined, or ``None`` when it is booked (or nothing is said)."""
    if plan.refusal is not None:
        return plan.refusal.reason if plan.refusal.decline else None
    if tms_error is not None and not (booking is not None and booking.live and room in booking.rooms):
        # A refusal that left this room in the conference was about another room's joining (one
        # whose pending record says it may have joined): this room stays booked.
        return tms_error
    if booking is not None and booking.state is TmsState.REJECTED:
        return booking.last_error or "TMS refused the booking"
    if booking is not None and booking.live and room not in booking.rooms:
        return booking.last_error or "TMS could not add this room to the meeting's conference"
    return None


def _room_names(booking: Booking | None, rooms: Mapping[str, RoomInfo], fallback: str) -> str:
    keys = booking.rooms if booking is not None and booking.rooms else (fallback,)
    return ", ".join(rooms[k].name if k in rooms else k for k in keys)


def plan_room(
    facts: MeetingFacts,
    plan: TmsPlan,
    booking: Booking | None,
    *,
    tms_error: str | None,
    policy: Policy,
    templates: Templates,
    rooms: Mapping[str, RoomInfo],
    licence_note: str = "",
) -> tuple[RoomAction, ...]:
    """What to write to the room's copy and to the organiser, given the booking after the TMS stage.

    :param tms_error: the reason TMS refused this pass's save, if it did.
    :param licence_note: a line for the confirmation (e.g. the SMP+ pre-flight's advice).
    """
    item = facts.item
    if item is None or item.cancelled or plan.cancelled:
        return ()  # nothing to answer: Exchange removes or marks the room's copy itself
    ref = ItemRef(item.room, item.item_id, item.change_key)
    when = when_text(item.start, item.end, item.time_zone)
    names = _room_names(booking, rooms, item.room)
    reason = refusal_reason(plan, booking, item.room, tms_error)
    if reason is not None:
        if item.response is Response.DECLINE:
            return ()
        mail = templates.declined(
            room=item.room, to=item.organiser, subject=item.subject, when=when, rooms=names, reason=reason,
            uid=item.uid,
        )  # fmt: skip
        if booking is not None and booking.live:
            # TMS refused this room alone; the conference books the others. The booking's notice
            # stays the confirmation the organiser has: this decline tells them once, as the room's
            # copy leaves the calendar with it (ews.md §1.10).
            message = mail.text if policy.notify_organiser else reason
            return (Decline(ref=ref, message=message, reason=reason),)
        notice = notice_hash("declined", reason)
        told = booking is not None and booking.notified_hash == notice
        tell = policy.notify_organiser and not told
        return (
            Decline(
                ref=ref, message=mail.text if tell else reason, reason=reason, notice=notice if tell else None
            ),
        )
    if plan.refusal is not None or booking is None or not booking.live:
        return ()  # skipped (past, not yet in the window): the copy stays as it is
    body: list[RoomAction] = []
    if booking.info_text.strip() or booking.info_html.strip():
        want = dialin.digest(booking.info_text, booking.info_html, is_html=item.body_is_html)
        if dialin.current_digest(item.body, is_html=item.body_is_html) != want:
            text = dialin.replace(item.body, booking.info_text, booking.info_html, is_html=item.body_is_html)
            body.append(SetBody(ref=ref, body=text, html=item.body_is_html, digest=want))
    notice = notice_hash("booked", booking.info_text, booking.info_html, str(booking.conference_id))
    tell = policy.notify_organiser and booking.notified_hash != notice
    mail = templates.confirmation(
        room=item.room, to=item.organiser, subject=item.subject, when=when, rooms=names,
        info_text=booking.info_text, info_html=booking.info_html, conference_id=booking.conference_id,
        owner=booking.owner or "the TMS service user", licence_note=licence_note,
    )  # fmt: skip
    if item.response is not Response.ACCEPT:
        # The accept goes first, with the changekey just read (ews.md §1.10 needs a current one);
        # the body write after it sends that now stale changekey with AutoResolve, which "normally
        # succeeds" (ews.md §1.11, [documented] by MS, not exercised live), and returns the copy's
        # final changekey: stored, the next pass knows the update as our own and does not read it.
        # Body first would leave the accept's changekey unknown, and the copy read again.
        accept = Accept(ref=ref, message=mail.text if tell else "", notice=notice if tell else None)
        body.insert(0, accept)
    elif tell:
        body.append(SendMail(mail=mail, notice=notice))
    return tuple(body)


def mass_cancel_refusal(
    room: str,
    plans: Sequence[TmsPlan],
    records: Sequence[SyncRecord],
    *,
    full_sync: bool,
    items_seen: int,
    policy: Policy,
    now: datetime,
    held: Collection[str] = (),
) -> str | None:
    """Why this room's cancellations must not be applied, or ``None`` when they may.

    :param records: the room's records before the pass.
    :param full_sync: the pass read the whole calendar (no or an invalid sync state).
    :param held: the UIDs whose cancellation the fuse refused on an earlier pass: refused again while
        asked for, however many meetings the room booked meanwhile (they would dilute the share).
    :param items_seen: how many items the pass returned, cancelled ones included (a cancelled copy is
        evidence that the calendar is there; "suddenly nothing" means no item at all).
    """
    if not policy.mass_cancel_guard or policy.force_cancel:
        return None
    future = [
        r
        for r in records
        if r.end > now and r.status in (BookingStatus.BOOKED, BookingStatus.DEFECTIVE, BookingStatus.PENDING)
    ]
    # Count only what this room's future bookings lose; a cancellation of something already past,
    # declined or never booked here takes nothing away.
    future_uids = {r.uid for r in future}
    cancelling = sum(1 for p in plans if p.cancelled and p.actions and p.uid in future_uids)
    waiting = set(held) & {p.uid for p in plans if p.cancelled and p.actions}
    if waiting:
        return (
            f"{len(waiting)} cancellation(s) in room {room} were refused by the data-loss fuse and are still "
            f"pending; check the room's calendar, then run `xesync sync --room {room} --force-cancel`"
        )
    if full_sync and items_seen == 0 and future:
        return (
            f"Exchange returned no meetings for room {room}, which has {len(future)} future booking(s); "
            "check the room's calendar, then run `xesync sync --room "
            f"{room} --force-cancel` to cancel them"
        )
    if (
        future
        and cancelling >= policy.mass_cancel_min
        and cancelling > policy.mass_cancel_max_share * len(future)
    ):
        return (
            f"one pass would cancel {cancelling} of room {room}'s {len(future)} future booking(s), more "
            f"than {policy.mass_cancel_max_share:.0%}; check the room's calendar, then run "
            f"`xesync sync --room {room} --force-cancel` to apply it"
        )
    return None


def preview_room(
    facts: MeetingFacts,
    plan: TmsPlan,
    *,
    now: datetime,
    policy: Policy,
    templates: Templates,
    rooms: Mapping[str, RoomInfo],
) -> tuple[RoomAction, ...]:
    """What the room would be told if TMS accepted the plan as it stands (``xesync plan``, dry runs)."""
    booking = facts.booking
    if plan.request is not None and any(isinstance(a, SaveBooking) for a in plan.actions):
        request = plan.request
        base = booking or Booking(
            uid=facts.uid, external_key=request.external_key,
            organiser=facts.item.organiser if facts.item else "",
            subject=request.title, start=request.start, end=request.end, content_hash=plan.content_hash,
            state=TmsState.SAVED, updated_at=now,
        )  # fmt: skip
        booking = dataclasses.replace(base, state=TmsState.SAVED, rooms=plan.rooms, request=request)
    return plan_room(facts, plan, booking, tms_error=None, policy=policy, templates=templates, rooms=rooms)
