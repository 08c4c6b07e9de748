"""The sync engine: one pass over the rooms — gather through the ports, plan, apply, record.

Terminology as in :mod:`xesync.model` and :mod:`xesync.meetings`. A *pass* over a room reads what
changed since its stored sync state, plus the records whose recheck is due, and handles each
meeting (UID) it touched in turn:

1. **gather**: the room's copy, the meeting's records in every room, its booking, the organiser as
   the directory knows them;
2. **plan** the TMS stage (:func:`xesync.reconcile.plan_tms`);
3. **apply** it (:class:`xesync.executor.Executor`), then plan and apply the room stage
   (:func:`xesync.reconcile_rooms.plan_room`) with TMS's answer at hand;
4. **record** the outcome: booking, this room's record and the audit rows, in one short transaction.

Decisions and their reasons:

- **No network call inside a transaction.** A unit of work is written after the meeting's calls are
  done, so the store's lock is never held while TMS or EWS think (reads from ``xesync status`` never
  wait on a slow TMS). Each meeting commits alone as soon as it is done, which keeps the crash
  window to the meeting in hand; replaying it is safe, because TMS saves are upserts by external key
  and the room stage reads the room copy's current state (response, body) before writing.
- **The sync state commits last,** in the room's final transaction, and only when every change of
  the pass is accounted for: applied, decided, or left with a due recheck (a transient failure).
  Meetings whose only change was a changekey bump get their records refreshed in that same final
  transaction, each under its own savepoint. A tripped data-loss fuse keeps the old state, so the
  refused cancellations come again until an admin forces them or the calendar is repaired.
- **One meeting at a time across rooms.** Rooms run in parallel (``exchange.max_connections``), and
  a meeting that books two rooms is handled under a per-UID lock, so the second room's pass sees the
  first room's booking and joins it instead of racing it.
- **Our own writes are not read back.** The records keep the changekey each copy has after our
  last write (the body write returns it), and the source leaves out an update still carrying it, so
  the pass after an import is one ``SyncFolderItems`` a room.
- **A multi-room meeting's room stages wait for its last room in the pass** (:mod:`xesync.engine_pass`):
  each copy is written once with the final dial-in, and the organiser is told once per booking.
- **A TMS write whose answer is lost leaves the booking in doubt** (``model.IN_DOUBT``); a room the
  fuse holds keeps its conference (``TmsPlan.fallback``): no other room's pass deletes it.
- **Dry run** plans and audits ``planned``; it writes nothing to TMS, Exchange or the records.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime

import structlog

from xesync import events
from xesync.actions import MeetingFacts, Policy, RoomInfo, SaveBooking, TmsPlan
from xesync.directory import Directory, NotInDirectory, Person
from xesync.engine_pass import HeldStage, PassRooms, handled, stale_siblings
from xesync.engine_record import MeetingResult, RoomReport, SyncReport, emit_warning
from xesync.engine_store import (
    RETRY_AFTER,
    commit_room,
    fuse_kept,
    store_intent,
    store_settled,
    write_meeting,
)
from xesync.errors import SyncSafetyError, TransientError, XesyncError
from xesync.executor import Executor, TmsOutcome
from xesync.licence_preflight import predict_licence
from xesync.meetings import ItemRef, RoomItem
from xesync.model import RoomSyncState, SyncRecord
from xesync.notify import Templates
from xesync.ports import BookingSink, CalendarSource, LicencePreflight
from xesync.reconcile import plan_tms
from xesync.reconcile_rooms import mass_cancel_refusal, plan_room, preview_room
from xesync.store import Store

__all__ = ["RETRY_AFTER", "Engine", "RoomReport", "SyncReport"]

log = structlog.get_logger("xesync.engine")


class Engine:
    """Runs passes over rooms. Thread-safe: rooms run in parallel, meetings under a per-UID lock."""

    def __init__(
        self,
        *,
        source: CalendarSource,
        sink: BookingSink,
        store: Store,
        rooms: Sequence[RoomInfo],
        policy: Policy,
        templates: Templates,
        clock: Callable[[], datetime],
        directory: Directory | None = None,
        dry_run: bool = False,
        max_workers: int = 4,
        audit: bool = True,
        preflight: LicencePreflight | None = None,
    ) -> None:
        self.source, self.sink, self.store, self.directory = source, sink, store, directory
        self.rooms = {r.key.lower(): r for r in rooms}
        self.policy, self.templates, self.clock = policy, templates, clock
        self.dry_run = dry_run
        self.audit = audit
        self.preflight = preflight
        self.max_workers = max(1, max_workers)
        self.executor = Executor(source, sink, self.rooms)
        self._uid_locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # -- passes ------------------------------------------------------------------------------------

    def sync(self, rooms: Sequence[str] | None = None, *, full: bool = False) -> SyncReport:
        """One pass over ``rooms`` (default: every configured room), rooms in parallel.

        :param full: read every room's whole calendar, not the changes since its sync state (the
            nightly reconcile: anything missed by an incremental pass is found again).
        """
        keys = [r.lower() for r in rooms] if rooms else list(self.rooms)
        report = SyncReport(run_id=uuid.uuid4().hex[:12])
        structlog.contextvars.bind_contextvars(run_id=report.run_id)
        log.info(events.SYNC_STARTED, rooms=len(keys), dry_run=self.dry_run)
        passing = PassRooms(keys)
        with ThreadPoolExecutor(max_workers=min(self.max_workers, max(1, len(keys)))) as pool:
            report.rooms = list(pool.map(lambda k: self._room_safely(k, report.run_id, full, passing), keys))
            list(pool.map(self._held_stage, passing.take_held()))
        counts: dict[str, int] = {}
        for room in report.rooms:
            for meeting in room.meetings:
                counts[meeting.outcome] = counts.get(meeting.outcome, 0) + 1
        log.info(
            events.SYNC_FINISHED,
            rooms=len(keys),
            failed_rooms=report.failed_rooms,
            dry_run=self.dry_run,
            **counts,
        )
        return report

    def _room_safely(self, room: str, run_id: str, full: bool, passing: PassRooms) -> RoomReport:
        structlog.contextvars.bind_contextvars(run_id=run_id)
        try:
            return self.sync_room(room, run_id=run_id, full=full, passing=passing)
        except XesyncError as exc:
            # The room failed as a whole (mailbox refused, Exchange down): its state stays, others go on.
            # An expected failure, already explained by its message: no traceback in the journal.
            log.error(events.ROOM_FAILED, room=room, error=str(exc), error_type=type(exc).__name__)  # noqa: TRY400
            return RoomReport(room=room, ok=False, error=str(exc), held=True)

    def sync_room(
        self, room: str, *, run_id: str = "manual", full: bool = False, passing: PassRooms | None = None
    ) -> RoomReport:
        """One pass over one room (``full``: its whole calendar; ``passing``: the other rooms of the pass)."""
        room = room.lower()
        if room not in self.rooms:
            names = ", ".join(self.rooms) or "none"
            raise SyncSafetyError(f"room {room!r} is not configured; configured rooms: {names}")
        now = self.clock()
        window = (now, now + self.policy.lookahead)
        state = self.store.room_state(room)
        stored = None if full or state is None else state.sync_state
        records = self.store.records(room)
        known = {str(r.item_id): str(r.change_key) for r in records if handled(r)}
        changes = self.source.changes(room, stored, window=window, known=known)
        if changes.full and stored:
            log.warning(events.EWS_SYNC_STATE_RESET, room=room)
        units = self._units(room, changes.items, changes.deleted, full=changes.full, now=now, window=window)
        report = RoomReport(room=room)
        plans = {uid: self._plan(room, uid, item, due, now) for uid, (item, due) in units.items()}
        refusal = mass_cancel_refusal(
            room, [p for p, _, _ in plans.values()], records, full_sync=changes.full,
            items_seen=len(changes.items), policy=self.policy, now=now,
            held=state.fuse_held if state is not None else (),
        )  # fmt: skip
        if refusal is not None:
            log.error(events.GUARD_MASS_CANCEL_REFUSED, room=room, reason=refusal)
            report.held, report.ok, report.error = True, False, refusal
        refreshes: list[MeetingResult] = []
        for plan, facts, error in plans.values():
            if error is not None:
                report.meetings.append(self._failed(run_id, facts, plan, error, now))
                continue
            if refusal is not None and plan.cancelled and plan.actions:
                report.meetings.append(self._refused_by_fuse(run_id, facts, plan, refusal, now))
                continue
            try:
                result = self._apply(run_id, facts, plan, now, passing)
            except Exception as exc:  # one meeting's surprise must not stop its room
                log.exception(
                    events.ERROR_UNEXPECTED, room=room, uid=facts.uid, error_type=type(exc).__name__
                )
                result = self._failed(run_id, facts, plan, exc, now)
            report.meetings.append(result)
            (refreshes if result.deferred else []).append(result)
        if not self.dry_run and not report.held:
            commit_room(self.store, log, room, sync_state=changes.sync_state, refreshes=refreshes, now=now)
        elif not self.dry_run:
            # Held: the sync state stays (the refused changes come again), the refusal is remembered.
            held = RoomSyncState(
                room=room, sync_state=state.sync_state if state else None, updated_at=now,
                fuse_held=tuple(sorted({m.facts.uid for m in report.meetings if m.outcome == "refused"})),
            )  # fmt: skip
            with self.store.transaction() as tx:
                tx.put_room_state(held)
        log.info(
            events.ROOM_SYNCED, room=room, meetings=len(report.meetings), held=report.held, full=changes.full
        )
        return report

    def _units(
        self,
        room: str,
        items: Sequence[RoomItem],
        deleted: Sequence[str],
        *,
        full: bool,
        now: datetime,
        window: tuple[datetime, datetime],
    ) -> dict[str, tuple[RoomItem | None, bool]]:
        """Each meeting the pass touched: its room copy now (``None``: gone), and whether it was due."""
        units: dict[str, tuple[RoomItem | None, bool]] = {i.uid: (i, False) for i in items}
        for item_id in deleted:
            record = self.store.record_by_item(room, item_id)
            if record is not None and record.uid not in units:
                units[record.uid] = (None, False)
        if full:
            # A full sync lists every item: a record whose meeting is missing has left the calendar.
            for record in self.store.records(room):
                if record.uid not in units and record.occurrence is None:
                    units[record.uid] = (None, False)
        for record in self.store.due(room, now):
            if record.uid in units:
                units[record.uid] = (units[record.uid][0], True)
            elif record.item_id:
                units[record.uid] = (self.source.item(room, record.item_id, window=window), True)
        return units

    # -- one meeting -------------------------------------------------------------------------------

    @contextmanager
    def _meeting_lock(self, uid: str) -> Iterator[None]:
        with self._locks_guard:
            lock = self._uid_locks.setdefault(uid, threading.Lock())
        with lock:
            yield

    def _plan(
        self, room: str, uid: str, item: RoomItem | None, due: bool, now: datetime
    ) -> tuple[TmsPlan, MeetingFacts, Exception | None]:
        with self._meeting_lock(uid):
            try:
                facts = self._gather(room, uid, item, due)
                return plan_tms(facts, self.policy, self.rooms, now), facts, None
            except Exception as exc:  # this meeting waits, the room goes on
                # The directory could not answer (transient), or the item surprised the planner (a
                # bug: logged with its traceback, retried at the recheck in case a fix is deployed).
                if not isinstance(exc, TransientError):
                    log.exception(events.ERROR_UNEXPECTED, room=room, uid=uid, error_type=type(exc).__name__)
                bare = MeetingFacts(uid=uid, room=room, item=item, records=self._records(uid))
                return TmsPlan(uid=uid), bare, exc

    def _records(self, uid: str) -> dict[str, SyncRecord]:
        return {r.room: r for r in self.store.records_for_uid(uid) if r.occurrence is None}

    def _gather(self, room: str, uid: str, item: RoomItem | None, due: bool) -> MeetingFacts:
        organiser: Person | NotInDirectory | None = None
        if item is not None and item.organiser and self.directory is not None:
            organiser = self.directory.resolve(item.organiser)
        booking = self.store.booking(uid)
        return MeetingFacts(
            uid=uid, room=room, item=item, records=self._records(uid), booking=booking,
            organiser=organiser, recheck_due=due, fuse_kept=fuse_kept(self.store, uid, room, booking),
        )  # fmt: skip

    def _apply(
        self, run_id: str, facts: MeetingFacts, plan: TmsPlan, now: datetime, passing: PassRooms | None
    ) -> MeetingResult:
        with self._meeting_lock(facts.uid):
            try:
                # Re-gather under the lock: another room's pass may have booked this meeting since.
                fresh = self._gather(facts.room, facts.uid, facts.item, facts.recheck_due)
            except TransientError as exc:
                return self._failed(run_id, facts, plan, exc, now)
            finally:
                if passing is not None:
                    passing.handled(facts.uid, facts.room)
            if fresh.booking != facts.booking or fresh.records != facts.records:
                facts, plan = fresh, plan_tms(fresh, self.policy, self.rooms, now)
            return self._execute(run_id, facts, plan, now, passing)

    def _execute(
        self, run_id: str, facts: MeetingFacts, plan: TmsPlan, now: datetime, passing: PassRooms | None = None
    ) -> MeetingResult:
        item = facts.item
        organiser = item.organiser if item else (facts.booking.organiser if facts.booking else "")
        for warning in plan.warnings:
            emit_warning(log, warning, facts.room)
        if self.dry_run:
            preview = preview_room(
                facts, plan, now=now, policy=self.policy, templates=self.templates, rooms=self.rooms
            )
            result = MeetingResult.planned(facts, plan, preview)
            self._write(run_id, facts, plan, result, now, audit_only=True)
            return result
        intent = store_intent(self.store, facts, plan, organiser, now)
        if intent is not None and intent.live:  # in doubt until TMS answers: what the store holds now
            facts = dataclasses.replace(facts, booking=intent)
        tms = self.executor.tms(plan, facts.booking, organiser=organiser, now=now)
        saved = any(isinstance(a, SaveBooking) for a, _ in tms.applied)
        booking, note = predict_licence(self.preflight, facts, tms.booking, saved=saved)
        stale = stale_siblings(facts, booking, now, passing=passing) if saved and booking else ()
        room_actions = () if tms.failed else plan_room(
            facts, plan, booking, tms_error=tms.refused, policy=self.policy, templates=self.templates,
            rooms=self.rooms, licence_note=note,
        )  # fmt: skip
        ref = ItemRef(item.room, item.item_id, item.change_key) if item else None
        if passing is not None and room_actions and passing.should_hold(item, booking):
            held = MeetingResult.of(facts, plan, tms, self.executor.room((), ref), booking)
            held.owed, held.stale = True, stale
            self._write(run_id, facts, plan, held, now)
            passing.hold(HeldStage(run_id=run_id, facts=facts, plan=plan, result=held, note=note, now=now))
            return held
        rooms = self.executor.room(room_actions, ref)
        if booking is not None and rooms.notice is not None:
            booking = dataclasses.replace(booking, notified_hash=rooms.notice)
        result = MeetingResult.of(facts, plan, tms, rooms, booking)
        result.stale = stale
        if result.deferred:
            return result  # nothing happened but a changekey bump: refreshed with the room's commit
        self._write(run_id, facts, plan, result, now)
        return result

    def _held_stage(self, stage: HeldStage) -> None:
        """Run a room stage held to the end of the pass, with the booking as it now stands."""
        facts, now = stage.facts, stage.now
        structlog.contextvars.bind_contextvars(run_id=stage.run_id)
        with self._meeting_lock(facts.uid):
            try:
                fresh = self._gather(facts.room, facts.uid, facts.item, facts.recheck_due)
                booking = fresh.booking
                actions = () if booking is None or fresh.item is None else plan_room(
                    fresh, stage.plan, booking, tms_error=None, policy=self.policy, templates=self.templates,
                    rooms=self.rooms, licence_note=stage.note,
                )  # fmt: skip
                rooms = self.executor.room(actions, stage.result.rooms.ref if stage.result.rooms else None)
                if booking is not None and rooms.notice is not None:
                    booking = dataclasses.replace(booking, notified_hash=rooms.notice)
                # Only the room stage's actions are reported now; the TMS stage's were at the time.
                quiet = dataclasses.replace(stage.plan, actions=(), warnings=())
                done = MeetingResult.of(fresh, quiet, TmsOutcome(booking=fresh.booking), rooms, booking)
                self._write(stage.run_id, fresh, quiet, done, now)
            except Exception as exc:  # the record stays due: the next pass runs the stage again
                log.exception(
                    events.ERROR_UNEXPECTED, room=facts.room, uid=facts.uid, error_type=type(exc).__name__
                )
                return
        result = stage.result
        result.rooms, result.owed = rooms, False
        result.applied += rooms.applied
        result.booking = done.booking or result.booking
        result.error = result.error or done.error

    def _failed(
        self, run_id: str, facts: MeetingFacts, plan: TmsPlan, exc: Exception, now: datetime
    ) -> MeetingResult:
        result = MeetingResult.stopped(facts, plan, exc)
        self._write(run_id, facts, plan, result, now)
        return result

    def _refused_by_fuse(
        self, run_id: str, facts: MeetingFacts, plan: TmsPlan, reason: str, now: datetime
    ) -> MeetingResult:
        # A booking in doubt is read back: held as TMS holds it, or, when TMS no longer books the room
        # (the cancellation landed before a crash), applied as the pass now plans it: nothing to hold.
        booking = facts.booking if facts.booking is not None and facts.booking.in_doubt else None
        settled = self.executor.settle(booking, now) if booking and not self.dry_run else None
        store_settled(self.store, settled)
        if settled is not None and (not settled.live or facts.room not in settled.rooms):
            return self._apply(run_id, facts, plan, now, None)
        result = MeetingResult.fused(facts, plan, reason)
        self._write(run_id, facts, plan, result, now, audit_only=True)
        return result

    # -- the store (xesync.engine_store) ---------------------------------------------------------------

    def _write(
        self,
        run_id: str,
        facts: MeetingFacts,
        plan: TmsPlan,
        result: MeetingResult,
        now: datetime,
        *,
        audit_only: bool = False,
    ) -> None:
        # ``facts`` and ``plan`` are the result's own; the signature stays for tests that patch it.
        del facts, plan
        write_meeting(
            self.store, log, result, run_id=run_id, now=now, audit=self.audit, dry_run=self.dry_run,
            audit_only=audit_only,
        )  # fmt: skip
