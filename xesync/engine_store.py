"""What the engine writes to the store for a meeting and a room: short transactions, never a call inside.

The engine (:mod:`xesync.engine`) calls these once a meeting's network calls are done
(:func:`write_meeting`), before a TMS write (:func:`store_intent`), after reading back a booking in
doubt (:func:`store_settled`), and at the end of a room's pass (:func:`commit_room`: the
changekey-only refreshes and the sync state, last). The reasons are in the engine's docstring ("No
network call inside a transaction", "The sync state commits last"); the rows written before a TMS
write are :func:`intent_rows`'s.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from xesync import events
from xesync.actions import MeetingFacts, SaveBooking, TmsPlan
from xesync.engine_record import MeetingResult, audit_entries, emit, record_after
from xesync.meetings import RoomItem
from xesync.model import IN_DOUBT, Booking, BookingStatus, RoomResponse, RoomSyncState, SyncRecord, TmsState
from xesync.store import Store

RETRY_AFTER = timedelta(minutes=2)  # a meeting that failed on a transient error is read again then


def write_meeting(
    store: Store,
    log: Any,
    result: MeetingResult,
    *,
    run_id: str,
    now: datetime,
    audit: bool,
    dry_run: bool,
    audit_only: bool = False,
) -> None:
    """Log the meeting's decisions, then store its booking, record, marked siblings and audit rows."""
    facts, plan = result.facts, result.plan
    emit(log, facts, plan, result)
    entries = audit_entries(run_id, facts, plan, result, now, dry_run=dry_run) if audit else []
    if audit_only and not entries:
        return
    with store.transaction() as tx:
        if not audit_only:
            if result.booking is not None:
                tx.upsert_booking(result.booking)
            record = record_after(facts, plan, result, now, retry_after=RETRY_AFTER)
            if record is not None:
                tx.upsert_record(record)
            for sibling in result.stale:
                tx.upsert_record(sibling)
        for entry in entries:
            tx.add_audit(entry)


def store_intent(
    store: Store, facts: MeetingFacts, plan: TmsPlan, organiser: str, now: datetime
) -> Booking | None:
    """Before a TMS write, store that it may land (see :func:`intent_rows`); return the
    booking row now stored, ``None`` when nothing was."""
    rows = intent_rows(facts, plan, organiser, now, retry_after=RETRY_AFTER)
    if rows is None:
        return None
    booking, record = rows
    with store.transaction() as tx:
        tx.upsert_booking(booking)
        if record is not None:
            tx.upsert_record(record)
    return booking


def fuse_kept(store: Store, uid: str, room: str, booking: Booking | None) -> frozenset[str]:
    """The booking's other rooms whose data-loss fuse holds this meeting's cancellation (a read)."""
    if booking is None or not booking.live:
        return frozenset()
    states = {r: store.room_state(r) for r in booking.rooms if r != room}
    return frozenset(r for r, s in states.items() if s is not None and uid in s.fuse_held)


def store_settled(store: Store, booking: Booking | None) -> None:
    """Store a booking in doubt as TMS was found to hold it (``None``: TMS has none; left pending)."""
    if booking is not None:
        with store.transaction() as tx:
            tx.upsert_booking(booking)


def commit_room(
    store: Store, log: Any, room: str, *, sync_state: str, refreshes: Sequence[MeetingResult], now: datetime
) -> None:
    """The room's last transaction: changekey-only refreshes (a savepoint each), then the sync state."""
    with store.transaction() as tx:
        for result in refreshes:
            record = record_after(result.facts, result.plan, result, now, retry_after=RETRY_AFTER)
            if record is None:
                continue
            try:
                with tx.savepoint(result.facts.uid):
                    tx.upsert_record(record)
            except Exception as exc:  # one bad row must not lose the room's state
                log.exception(events.MEETING_FAILED, room=room, uid=result.facts.uid, error=str(exc))
        tx.put_room_state(RoomSyncState(room=room, sync_state=sync_state, updated_at=now))


def intent_rows(
    facts: MeetingFacts, plan: TmsPlan, organiser: str, now: datetime, *, retry_after: timedelta
) -> tuple[Booking, SyncRecord | None] | None:
    """The rows that say "a TMS write may land" before it is sent; ``None`` when none is needed.

    A crash (or a timeout) between TMS's answer and our write must not leave TMS holding what the
    store does not say. Before a first save, a pending booking: a cancel arriving afterwards finds it
    and deletes by key, and the record's recheck replays the save even if Exchange reports no change.
    Before a write to a live booking, the booking in doubt (:data:`~xesync.model.IN_DOUBT`): a room
    that joined may have to leave again, a move may have to be undone, so the next pass saves what
    the copies then say instead of trusting the booking's rooms and hash. A room the save adds gets
    a pending record too, so that its pass knows the meeting if its copy then disappears.
    """
    save = next((a for a in plan.actions if isinstance(a, SaveBooking)), None)
    item = facts.item
    live = facts.booking if facts.booking is not None and facts.booking.live else None
    if live is not None:
        if not plan.actions:  # every TMS action writes
            return None
        joins = (
            save is not None
            and item is not None
            and facts.room in save.rooms
            and facts.room not in live.rooms
        )
        if live.content_hash == IN_DOUBT and not joins:
            return None
        doubt = dataclasses.replace(live, content_hash=IN_DOUBT, updated_at=now)
        return doubt, _pending_record(facts, item, now, retry_after) if joins and item else None
    if save is None or item is None:
        return None
    request = save.request
    booking = Booking(
        uid=facts.uid, external_key=request.external_key, organiser=organiser, rooms=save.rooms,
        subject=request.title, start=request.start, end=request.end, content_hash=plan.content_hash,
        request=request, state=TmsState.PENDING, updated_at=now,
        notified_hash=facts.booking.notified_hash if facts.booking else None,
    )  # fmt: skip
    return booking, _pending_record(facts, item, now, retry_after)


def _pending_record(facts: MeetingFacts, item: RoomItem, now: datetime, retry_after: timedelta) -> SyncRecord:
    """The room's record while a save that books it may land; due again after ``retry_after``."""
    previous = facts.records.get(facts.room)
    return SyncRecord(
        room=facts.room, uid=facts.uid, item_id=item.item_id, change_key=item.change_key, content_hash="",
        status=BookingStatus.PENDING, organiser=item.organiser, start=item.start, end=item.end,
        subject=item.subject, updated_at=now, recheck_at=now + retry_after,
        response=previous.response if previous is not None else RoomResponse.NONE,
    )  # fmt: skip
