"""What the engine writes to the store for a meeting and a room: short transactions, never a call inside.

The engine (:mod:`xesync.engine`) calls these once a meeting's network calls are done
(:func:`write_meeting`), before a TMS write (:func:`store_intent`), after reading back a booking in
doubt (:func:`store_settled`), and at the end of a room's pass (:func:`commit_room`: the
changekey-only refreshes and the sync state, last). The reasons are in
the engine's docstring ("No network call inside a transaction", "The sync state commits last").
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from xesync import events
from xesync.actions import MeetingFacts, TmsPlan
from xesync.engine_record import MeetingResult, audit_entries, emit, intent_rows, record_after
from xesync.model import Booking, RoomSyncState
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
    """Before a TMS write, store that it may land (see :func:`engine_record.intent_rows`); return the
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
