"""The planner: frozen facts in, frozen actions out. No I/O, no clock read, no logging.

Decisions and their reasons
---------------------------

- **Desired state, not events.** For each meeting the planner works out the conference TMS should
  hold (a :class:`~xesync.meetings.ConferenceRequest`) and compares it with the booking last saved,
  so replaying a change after a crash plans the same save, and TMS's upsert by external key turns
  it into the same conference (tms-booking-api.md §7.1; product.md P4).
- **Change = content, not changekey.** Exchange bumps the changekey on every save, our own accept
  and body write included; the request hash (and the room copy's item hash) decide. A changekey-only
  bump plans nothing (vdirsyncer ``test_bogus_etag_change``).
- **One conference, many rooms.** The participants are the configured rooms whose copy is live:
  this room's copy now, the others from their records. A room whose copy arrives later joins the
  conference; a room whose copy is cancelled leaves it; the last one leaving deletes it.
- **Limits before TMS** (product.md §2): past (L1, skipped and never edited), outside the booking
  window (L2, left alone until it enters), all-day, no duration, longer than ``sync.max_duration``,
  yearly (L5), no end or more than 100 occurrences (L3, L4: a rolling window, or a decline).
- **Series** are one recurrent conference anchored at the first occurrence inside the lookahead;
  moved and cancelled occurrences are exceptions. When only exceptions change, occurrence-level
  calls do the work (a whole-series save while an occurrence is live would renumber the pending
  ones, L12); when anything else changes, the series is saved whole with every exception.
- **Rooms hear what TMS said.** The room stage runs after the TMS stage's outcome is known: accept
  with the dial-in block, or decline with the reason; the organiser is told once per booking and
  again only when the details change.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from xesync import events
from xesync.actions import (
    DeleteBooking,
    MeetingFacts,
    Policy,
    Refuse,
    RoomInfo,
    SaveBooking,
    TmsAction,
    TmsPlan,
    Warn,
)
from xesync.config.model import PrivateMeetings, UnknownOrganiser
from xesync.directory import NotInDirectory, Person
from xesync.meetings import (
    ConferenceRequest,
    Frequency,
    Owner,
    RoomItem,
    external_key,
)
from xesync.model import IN_DOUBT, Booking, BookingStatus, TmsState
from xesync.reconcile_series import exceptions_after, occurrence_actions, series_request

TITLE_LIMIT = 255  # TMS Title (L7)
_KEPT = "TMS refused the change; the rooms a data-loss fuse holds keep it"
# Rooms whose record says they take part in the conference (FAILED: the last try failed, retry).
_TAKING_PART = (BookingStatus.BOOKED, BookingStatus.DEFECTIVE, BookingStatus.PENDING, BookingStatus.FAILED)


def _digest(data: object) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:20]


def item_hash(item: RoomItem) -> str:
    """A hash of everything the planner reads from a room copy but its body, response and changekey."""
    rec = item.recurrence
    return _digest(
        [
            item.uid, item.subject, item.organiser, item.organiser_name, item.start, item.end,
            item.time_zone, item.all_day, item.private, item.cancelled, sorted(item.attendees),
            None if rec is None else repr(rec),
            [(o.recurrence_id, o.start, o.end) for o in item.occurrences], item.deleted_occurrences,
        ]
    )  # fmt: skip


def request_hash(request: ConferenceRequest) -> str:
    """A hash of a request but its ids, version and exceptions; for a series also but its anchor
    and window, which move as time passes without the meeting changing."""
    owner = request.owner
    series = request.recurrence is not None
    return _digest(
        [
            request.external_key, request.title, request.time_zone,
            None if owner is None else [owner.username, owner.first_name, owner.last_name, owner.email],
            list(request.system_ids), None if request.recurrence is None else repr(request.recurrence),
            _local_slot(request) if series else [request.start, request.end],
        ]
    )  # fmt: skip


def _local_slot(request: ConferenceRequest) -> list[str]:
    zone = _zone(request.time_zone)
    return [request.start.astimezone(zone).strftime("%H:%M"), str(request.end - request.start)]


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def title_for(item: RoomItem, policy: Policy) -> str:
    """The TMS title: the subject, or the neutral title for a private meeting; cut to 255 with a mark."""
    title = item.subject.strip() or "(no subject)"
    if item.private and policy.private_meetings is PrivateMeetings.NEUTRAL:
        title = policy.private_title
    return title if len(title) <= TITLE_LIMIT else title[: TITLE_LIMIT - 1] + "\u2026"


def participants(
    facts: MeetingFacts, rooms: Mapping[str, RoomInfo], *, this_room_live: bool
) -> tuple[str, ...]:
    """The rooms the conference should book, in configuration order."""
    taking_part = {
        room
        for room, record in facts.records.items()
        if room != facts.room and record.status in _TAKING_PART and record.occurrence is None
    }
    if this_room_live:
        taking_part.add(facts.room)
    return tuple(r for r in rooms if r in taking_part)


# -- the TMS stage ----------------------------------------------------------------------------------


def plan_tms(facts: MeetingFacts, policy: Policy, rooms: Mapping[str, RoomInfo], now: datetime) -> TmsPlan:
    """Decide what TMS should do for one meeting in one room's pass."""
    item, booking = facts.item, facts.booking
    if item is None or item.cancelled or facts.room not in rooms:
        # The room's copy is gone or cancelled: this room leaves the conference.
        return _room_leaves(facts, rooms, now, item)
    ihash = item_hash(item)
    refusal = _preflight(item, policy, now)
    warnings = _warnings(item)
    if refusal is not None:
        # Refused before TMS: the rooms decline (or, for a skip, stay as they are). A booking made
        # before the meeting became unbookable is removed, unless it is in the past (L1).
        actions: tuple[TmsAction, ...] = ()
        keep = _fallback(facts, rooms, refusal.reason)
        if booking is not None and booking.live and refusal.decline and booking.end > now:
            if keep is None:
                delete = DeleteBooking(uid=item.uid, external_key=booking.external_key, reason=refusal.reason)
                actions = (delete,)
            elif keep.rooms != booking.rooms:
                actions = (keep,)
        return TmsPlan(
            uid=item.uid, actions=actions, refusal=refusal, warnings=warnings, item_hash=ihash,
            recheck_at=refusal.recheck_at, rooms=keep.rooms if actions and keep else (),
            request=keep.request if actions and keep else None,
            content_hash=request_hash(keep.request) if actions and keep else "",
        )  # fmt: skip
    owner, owner_refusal, owner_warning = _owner(item, facts.organiser, policy)
    if owner_warning is not None:
        warnings += (owner_warning,)
    if owner_refusal is not None:
        return TmsPlan(uid=item.uid, refusal=owner_refusal, warnings=warnings, item_hash=ihash)
    members = participants(facts, rooms, this_room_live=True)
    request, recheck_at, limit_refusal = _request(
        item, owner, members=members, rooms=rooms, booking=booking, policy=policy, now=now
    )
    if limit_refusal is not None or request is None:
        return TmsPlan(uid=item.uid, refusal=limit_refusal, warnings=warnings, item_hash=ihash)
    chash = request_hash(request)
    tms = _tms_actions(
        item.uid, request, chash=chash, booking=booking, members=members, recheck_due=facts.recheck_due,
        recheck_at=recheck_at,
    )  # fmt: skip
    return TmsPlan(
        uid=item.uid, actions=tms, rooms=members, request=request, content_hash=chash,
        warnings=warnings, item_hash=ihash, recheck_at=recheck_at,
        fallback=_fallback(facts, rooms, _KEPT),
    )  # fmt: skip


def _room_leaves(
    facts: MeetingFacts, rooms: Mapping[str, RoomInfo], now: datetime, item: RoomItem | None
) -> TmsPlan:
    booking = facts.booking
    ihash = item_hash(item) if item is not None else ""
    maybe_booked = booking is not None and (booking.live or booking.state is TmsState.PENDING)
    if booking is None or not maybe_booked or booking.request is None:
        # Never booked (or deleted, or refused). A PENDING booking is a save whose answer we never
        # stored (a crash): TMS may hold it, so it is cancelled by key like a live one.
        return TmsPlan(uid=facts.uid, cancelled=True, item_hash=ihash)
    if booking.end <= now and booking.request.recurrence is None:
        # L1: a meeting that has ended stays in TMS as it ran.
        skip = Refuse(uid=facts.uid, code="past", reason="the meeting has ended; TMS keeps it", decline=False)
        return TmsPlan(uid=facts.uid, cancelled=True, refusal=skip, item_hash=ihash)
    members = participants(facts, rooms, this_room_live=False)
    if members == booking.rooms and booking.live and booking.content_hash != IN_DOUBT:
        # The room was never a participant (TMS refused it, and its declined copy left the room's
        # calendar), or it left already: the conference has exactly these rooms. A booking in doubt
        # may hold the room (a save adding it landed, its answer was lost): saved without it.
        return TmsPlan(uid=facts.uid, cancelled=True, item_hash=ihash)
    if not members:
        why = "the meeting was cancelled" if item is not None else "the meeting left the room's calendar"
        delete = DeleteBooking(uid=facts.uid, external_key=booking.external_key, reason=why)
        return TmsPlan(uid=facts.uid, actions=(delete,), cancelled=True, item_hash=ihash)
    request = _with_systems(booking.request, members, rooms, booking)
    save = SaveBooking(
        uid=facts.uid, request=request, rooms=members, reason=f"room {facts.room} left the meeting"
    )
    return TmsPlan(
        uid=facts.uid, actions=(save,), rooms=members, request=request,
        content_hash=request_hash(request), cancelled=True, item_hash=ihash,
        fallback=_fallback(facts, rooms, _KEPT),
    )  # fmt: skip


def _fallback(facts: MeetingFacts, rooms: Mapping[str, RoomInfo], reason: str) -> SaveBooking | None:
    """The conference as booked, with only the rooms whose data-loss fuse holds its cancellation.

    A meeting that can no longer be booked as it now is (TMS refuses the change, or a limit refuses
    the meeting) is deleted from TMS, so that it does not keep rooms busy at a time it left. A room
    whose fuse refused the meeting's cancellation must not lose it that way: the conference falls
    back to those rooms, as they were booked, and every other room declines.
    """
    booking = facts.booking
    if not facts.fuse_kept or booking is None or not booking.live or booking.request is None:
        return None
    kept = tuple(r for r in rooms if r in facts.fuse_kept)
    request = _with_systems(booking.request, kept, rooms, booking)
    return SaveBooking(uid=facts.uid, request=request, rooms=kept, reason=reason)


def _with_systems(
    request: ConferenceRequest, members: tuple[str, ...], rooms: Mapping[str, RoomInfo], booking: Booking
) -> ConferenceRequest:
    return ConferenceRequest(
        external_key=request.external_key, title=request.title, start=request.start, end=request.end,
        time_zone=request.time_zone, owner=request.owner,
        system_ids=tuple(rooms[r].system_id for r in members), recurrence=request.recurrence,
        occurrence_limit=request.occurrence_limit, exceptions=request.exceptions,
        conference_id=booking.conference_id, version=booking.version,
    )  # fmt: skip


def _preflight(item: RoomItem, policy: Policy, now: datetime) -> Refuse | None:  # noqa: PLR0911 - one return per rule
    """The limits that need nothing but the item (product.md §2), in the order an admin reads them."""
    uid = item.uid
    duration = item.end - item.start
    if item.recurrence is None and item.end <= now:
        return Refuse(uid=uid, code="past", reason="the meeting has already ended", decline=False)
    if item.all_day:
        return Refuse(
            uid=uid, code="all_day", reason="all-day events cannot be booked for video; give it a time"
        )
    if duration <= timedelta(0):
        return Refuse(uid=uid, code="no_duration", reason="the meeting ends before or when it starts")
    if duration > policy.max_duration:
        hours = policy.max_duration.total_seconds() / 3600
        return Refuse(uid=uid, code="too_long", reason=f"meetings longer than {hours:g} hours are not booked")
    if item.recurrence is not None and item.recurrence.frequency is Frequency.YEARLY:
        return Refuse(
            uid=uid, code="yearly", reason="TMS cannot book yearly series; book the dates one by one"
        )
    if item.recurrence is None and item.start > now + policy.booking_window:
        days = policy.booking_window.days
        return Refuse(
            uid=uid, code="beyond_window", decline=False, recheck_at=item.start - policy.booking_window,
            reason=f"starts more than {days} days ahead (TMS's booking window); booked when it enters",
        )  # fmt: skip
    if not item.organiser:
        return Refuse(uid=uid, code="no_organiser", reason="the meeting names no organiser")
    return None


def _warnings(item: RoomItem) -> tuple[Warn, ...]:
    name = item.organiser_name.strip().casefold()
    subject = item.subject.strip().casefold()
    if name and (subject == name or subject.startswith(name + " ")) and not item.private:
        return (
            Warn(
                uid=item.uid, event=events.MEETING_SUBJECT_REPLACED,
                reason=(
                    f"room {item.room} shows the organiser's name as the subject; run "
                    f"Set-CalendarProcessing {item.room} -AddOrganizerToSubject $false -DeleteSubject $false"
                ),
            ),
        )  # fmt: skip
    return ()


def _owner(
    item: RoomItem, who: Person | NotInDirectory | None, policy: Policy
) -> tuple[Owner | None, Refuse | None, Warn | None]:
    if isinstance(who, Person):
        first, last = who.first_name or "", who.last_name or ""
        return Owner(username=who.tms_username, first_name=first, last_name=last, email=who.email), None, None
    if who is None:
        # No directory configured: TMS resolves the owner by e-mail address (tms-booking-api.md §7.4).
        return Owner(username="", email=item.organiser), None, None
    if policy.unknown_organiser is UnknownOrganiser.BOOK_AS_SERVICE:
        warn = Warn(
            uid=item.uid, event=events.BOOKING_OWNER_DEFAULTED,
            reason=f"organiser {who.address} is not in the directory; booked as the TMS service user",
        )  # fmt: skip
        return None, None, warn
    refuse = Refuse(
        uid=item.uid, code="unknown_organiser",
        reason=(
            f"the organiser {who.address} is not in the directory, so the meeting cannot be booked in "
            "their name; book it from your company account, or ask IT to add you"
        ),
    )  # fmt: skip
    return None, refuse, None


def _request(
    item: RoomItem,
    owner: Owner | None,
    *,
    members: tuple[str, ...],
    rooms: Mapping[str, RoomInfo],
    booking: Booking | None,
    policy: Policy,
    now: datetime,
) -> tuple[ConferenceRequest | None, datetime | None, Refuse | None]:
    common = {
        "external_key": external_key(item.uid),
        "title": title_for(item, policy),
        "time_zone": item.time_zone,
        "owner": owner,
        "system_ids": tuple(rooms[r].system_id for r in members),
        "conference_id": booking.conference_id if booking is not None and booking.live else None,
        "version": booking.version if booking is not None and booking.live else None,
    }
    if item.recurrence is None:
        return ConferenceRequest(start=item.start, end=item.end, **common), None, None  # type: ignore[arg-type]
    return series_request(item, common, policy, now)


def _tms_actions(  # noqa: PLR0911 - the decision table reads best as early returns
    uid: str,
    request: ConferenceRequest,
    *,
    chash: str,
    booking: Booking | None,
    members: tuple[str, ...],
    recheck_due: bool,
    recheck_at: datetime | None,
) -> tuple[TmsAction, ...]:
    if booking is None or booking.state in (TmsState.DELETED, TmsState.PENDING):
        # Never booked, deleted, or a save whose outcome we never learnt: save (an upsert by key).
        return (SaveBooking(uid=uid, request=request, rooms=members, reason="new meeting"),)
    if booking.state is TmsState.REJECTED:
        if booking.content_hash == chash and booking.rooms == members:
            return ()  # refused as it is; nothing changed since
        return (SaveBooking(uid=uid, request=request, rooms=members, reason="changed after a refusal"),)
    if booking.request is not None and booking.request.recurrence is not None and request.recurrence is None:
        # A series became a single meeting: TMS keeps a series saved without a pattern (the lab
        # does so too), so the series goes and the single meeting is booked anew under the same key.
        fresh = dataclasses.replace(request, conference_id=None, version=None)
        return (
            DeleteBooking(uid=uid, external_key=booking.external_key, reason="the series became one meeting"),
            SaveBooking(uid=uid, request=fresh, rooms=members, reason="the series became one meeting"),
        )
    now_ref = request.start - timedelta(microseconds=1)
    want, have = exceptions_after(request, now_ref), exceptions_after(booking.request, now_ref)
    rolling_due = recheck_at is not None and recheck_due
    if booking.content_hash != chash or booking.rooms != members or rolling_due or booking.request is None:
        why = "rooms changed" if booking.rooms != members else "meeting changed"
        if booking.content_hash == IN_DOUBT:
            why = "the answer to the last save was lost; saved again as the meeting now is"
        return (
            SaveBooking(
                uid=uid,
                request=request,
                rooms=members,
                reason="extend the rolling window" if rolling_due and booking.content_hash == chash else why,
            ),
        )
    if want == have:
        return ()
    return occurrence_actions(uid, request, members=members, want=want, have=have)
