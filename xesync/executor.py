"""The executor: applies one meeting's actions through the ports and works out what to store.

:mod:`xesync.engine` plans and calls :meth:`Executor.tms` then :meth:`Executor.room` for each
meeting; each returns what happened, and the engine writes it. The executor never opens a store
transaction: it runs while no transaction is open, so the state store never waits on the network.

Outcomes, by what the ports raise (STYLE.md §4, §5):

- a :class:`~xesync.errors.TransientError` stops the meeting where it is; the engine records it as
  ``failed`` with a recheck, so the next pass tries again without Exchange reporting a change;
- a TMS refusal (conflict, unknown owner, a limit) is a decision: the booking is ``rejected`` with
  the reason, and the room stage declines. A room that TMS refuses to *add* to a conference that
  books other rooms is declined alone, and the conference stays as it was;
- a stale ``Version`` is re-read once with ``find`` and saved again (tms-booking-api.md §7.3);
- a booking in doubt (a write whose answer was lost) is read back with ``find``
  (:meth:`Executor.settle`) where what TMS holds decides: a refusal, and the data-loss fuse holding
  its cancellation (the store then says what TMS holds while the cancellation waits for an admin).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from xesync import events
from xesync.actions import (
    Accept,
    Decline,
    DeleteBooking,
    DeleteOccurrence,
    MoveOccurrence,
    RoomAction,
    RoomInfo,
    SaveBooking,
    SendMail,
    SetBody,
    TmsAction,
    TmsPlan,
)
from xesync.errors import (
    PermanentError,
    TmsConflictError,
    TmsFaultError,
    TmsStaleVersionError,
    TransientError,
)
from xesync.meetings import ConferenceRequest, ItemRef, SavedConference
from xesync.model import IN_DOUBT, Booking, RoomResponse, TmsState
from xesync.ports import BookingSink, CalendarSource
from xesync.reconcile import request_hash

log = structlog.get_logger("xesync.engine")


@dataclass(slots=True)
class TmsOutcome:
    """What the TMS stage left behind.

    :ivar booking: the booking row to store (``None``: nothing to store).
    :ivar refused: TMS's reason for refusing this pass's save, if it did.
    :ivar failed: the transient error that stopped the meeting, if one did.
    :ivar applied: the actions carried out, with the conference id each touched.
    """

    booking: Booking | None
    refused: str | None = None
    failed: TransientError | None = None
    applied: list[tuple[TmsAction, int | None]] = field(default_factory=list)


@dataclass(slots=True)
class RoomOutcome:
    """What the room stage left behind."""

    ref: ItemRef | None
    response: RoomResponse | None = None
    dial_in_hash: str | None = None
    notice: str | None = None
    failed: XesyncErrorLike | None = None
    applied: list[RoomAction] = field(default_factory=list)


XesyncErrorLike = TransientError | PermanentError


def _owner_name(username: str) -> str:
    return username.rsplit("\\", 1)[-1].casefold()


class Executor:
    """Applies actions through the ports; one per engine, shared by its room threads."""

    def __init__(self, source: CalendarSource, sink: BookingSink, rooms: Mapping[str, RoomInfo]) -> None:
        self.source = source
        self.sink = sink
        self.rooms = rooms  # room key -> room, in configuration order

    # -- TMS ---------------------------------------------------------------------------------------

    def tms(self, plan: TmsPlan, before: Booking | None, *, organiser: str, now: datetime) -> TmsOutcome:
        """Carry out the TMS stage; return the booking as it now stands."""
        outcome = TmsOutcome(booking=before)
        for action in plan.actions:
            try:
                if isinstance(action, SaveBooking):
                    saved = self._save(action.request)
                    outcome.booking = self._after_save(
                        plan, action, saved, before=outcome.booking, organiser=organiser, now=now
                    )
                    outcome.applied.append((action, saved.conference_id))
                elif isinstance(action, DeleteBooking):
                    self.sink.delete(action.external_key)
                    outcome.booking = _replace(before, plan, state=TmsState.DELETED, now=now, last_error=None)
                    outcome.applied.append((action, before.conference_id if before else None))
                elif isinstance(action, DeleteOccurrence | MoveOccurrence):
                    self._occurrence(action)
                    outcome.booking = _replace(
                        before, plan, state=TmsState.SAVED, now=now, request=plan.request
                    )
                    outcome.applied.append((action, before.conference_id if before else None))
            except TransientError as exc:
                # The write may have landed (a timeout after TMS acted): the booking stays in doubt.
                outcome.failed = exc
                if outcome.booking is not None and outcome.booking.live:
                    outcome.booking = dataclasses.replace(outcome.booking, content_hash=IN_DOUBT)
                return outcome
            except TmsFaultError as exc:
                outcome.refused = _reason(exc)
                outcome.booking = self._refused(
                    plan, action=action, before=before, reason=outcome.refused, organiser=organiser, now=now
                )
                return outcome
        return outcome

    def settle(self, booking: Booking, now: datetime) -> Booking | None:
        """What TMS holds for a booking in doubt, read by key; ``None`` when TMS cannot say now.

        A booking TMS does not hold comes back deleted (a delete whose answer was lost had landed, or
        a first save had not). Otherwise only ids, state, rooms and dial-in come back: the content stays
        in doubt, so the next pass that may write saves the meeting as its copies then say.
        """
        try:
            found = self.sink.find(booking.external_key)
        except TransientError as exc:
            log.warning(events.TMS_REQUEST_FAILED, uid=booking.uid, operation="find", error=str(exc))
            return None
        if found is None:
            return dataclasses.replace(booking, state=TmsState.DELETED, updated_at=now)
        held = tuple(key for key, info in self.rooms.items() if info.system_id in found.system_ids)
        request = booking.request and dataclasses.replace(
            booking.request, conference_id=found.conference_id, version=found.version,
            system_ids=tuple(self.rooms[key].system_id for key in held),
        )  # fmt: skip
        if request is not None and request.recurrence is None:  # a lost move may have landed
            request = dataclasses.replace(request, start=found.start, end=found.end)
        return dataclasses.replace(
            booking, conference_id=found.conference_id, version=found.version, rooms=held, request=request,
            state=TmsState.DEFECTIVE if found.defective else TmsState.SAVED, content_hash=IN_DOUBT,
            info_text=found.info_text, info_html=found.info_html, updated_at=now,
        )  # fmt: skip

    def _save(self, request: ConferenceRequest) -> SavedConference:
        try:
            return self.sink.save(request)
        except TmsStaleVersionError:
            # Someone (TMS itself, on a live edit) saved since we read: read again, save once more.
            current = self.sink.find(request.external_key)
            fresh = dataclasses.replace(
                request,
                conference_id=None if current is None else current.conference_id,
                version=None if current is None else current.version,
            )
            return self.sink.save(fresh)

    def _occurrence(self, action: DeleteOccurrence | MoveOccurrence) -> None:
        if isinstance(action, DeleteOccurrence):
            self.sink.delete_occurrence(action.external_key, action.recurrence_id)
        else:
            self.sink.save_occurrence(action.external_key, action.recurrence_id, action.start, action.end)

    def _after_save(
        self,
        plan: TmsPlan,
        action: SaveBooking,
        saved: SavedConference,
        *,
        before: Booking | None,
        organiser: str,
        now: datetime,
    ) -> Booking:
        request = dataclasses.replace(
            action.request, conference_id=saved.conference_id, version=saved.version
        )
        wanted = action.request.owner.username if action.request.owner is not None else ""
        if wanted and saved.owner_username and _owner_name(saved.owner_username) != _owner_name(wanted):
            # product.md P2: a silent fall-back to the service user is exactly what admins complain of.
            log.warning(
                events.BOOKING_OWNER_MISMATCHED, uid=plan.uid, conference_id=saved.conference_id,
                wanted=wanted, got=saved.owner_username,
            )  # fmt: skip
        return Booking(
            uid=plan.uid, external_key=action.request.external_key, conference_id=saved.conference_id,
            version=saved.version, owner=wanted or None, organiser=organiser, rooms=action.rooms,
            subject=action.request.title, start=action.request.start, end=action.request.end,
            content_hash=plan.content_hash, request=request,
            state=TmsState.DEFECTIVE if saved.defective else TmsState.SAVED,
            info_text=saved.info_text, info_html=saved.info_html,
            notified_hash=before.notified_hash if before is not None else None,
            last_error=None, updated_at=now,
        )  # fmt: skip

    def _refused(
        self,
        plan: TmsPlan,
        *,
        action: TmsAction,
        before: Booking | None,
        reason: str,
        organiser: str,
        now: datetime,
    ) -> Booking | None:
        if before is not None and before.live and before.in_doubt:
            # What the refused save would have changed depends on what TMS holds: read it back.
            before = self.settle(before, now) or before
        if (
            isinstance(action, SaveBooking)
            and isinstance(before, Booking)
            and before.live
            and before.request is not None
            and request_hash(dataclasses.replace(action.request, system_ids=before.request.system_ids))
            == request_hash(before.request)
            and set(before.rooms) < set(action.rooms)
        ):
            # Only rooms were added and TMS refused them: the conference keeps its rooms; the new
            # room is declined alone (reconcile_rooms.refusal_reason sees it is not a participant).
            # A booking in doubt is settled: had the lost save adding the room landed, TMS would
            # not refuse a system the conference already holds.
            return _as_before(before, reason, now)
        if before is not None and before.live and plan.fallback is not None:
            return self._fall_back(plan, plan.fallback, before, reason=reason, organiser=organiser, now=now)
        maybe_held = before is not None and (before.live or before.state is TmsState.PENDING)
        if before is not None and maybe_held and isinstance(action, SaveBooking | MoveOccurrence):
            # The meeting as it now is cannot be booked: the old booking must not keep the rooms
            # busy at a time the meeting left. Remove it (a pending one too: the save whose answer
            # was lost may have landed); the rooms decline.
            try:
                self.sink.delete(before.external_key)
            except (TransientError, PermanentError) as exc:
                log.warning(events.TMS_REQUEST_FAILED, uid=plan.uid, operation="delete", error=str(exc))
        request = action.request if isinstance(action, SaveBooking) else plan.request
        return Booking(
            uid=plan.uid, external_key=request.external_key if request else "", conference_id=None,
            version=None, owner=None if request is None or request.owner is None else request.owner.username,
            organiser=organiser, rooms=plan.rooms, subject=request.title if request else "",
            start=request.start if request else now, end=request.end if request else now,
            content_hash=plan.content_hash, request=request, state=TmsState.REJECTED,
            notified_hash=before.notified_hash if before else None, last_error=reason, updated_at=now,
        )  # fmt: skip

    def _fall_back(
        self, plan: TmsPlan, keep: SaveBooking, before: Booking, *, reason: str, organiser: str, now: datetime
    ) -> Booking:
        """TMS refused the change, and a data-loss fuse holds some rooms in the conference: instead of
        deleting it, keep it as booked with those rooms only (:attr:`TmsPlan.fallback`)."""
        if keep.rooms == before.rooms and before.request is not None:
            # Nothing to save; TMS refused the change, so it holds the booking as it was.
            return _as_before(before, reason, now)
        try:
            saved = self._save(keep.request)
        except (TransientError, PermanentError) as exc:
            log.warning(events.TMS_REQUEST_FAILED, uid=plan.uid, operation="save", error=str(exc))
            return dataclasses.replace(before, last_error=reason, content_hash=IN_DOUBT, updated_at=now)
        log.info(
            events.BOOKING_UPDATED, uid=plan.uid, conference_id=saved.conference_id, rooms=list(keep.rooms),
            reason=keep.reason,
        )  # fmt: skip
        kept = dataclasses.replace(plan, content_hash=request_hash(keep.request))
        booking = self._after_save(kept, keep, saved, before=before, organiser=organiser, now=now)
        return dataclasses.replace(booking, last_error=reason)

    # -- rooms -------------------------------------------------------------------------------------

    def room(self, actions: tuple[RoomAction, ...], ref: ItemRef | None) -> RoomOutcome:
        """Carry out the room stage in order; the body write's new changekey is the one to store."""
        outcome = RoomOutcome(ref=ref)
        for action in actions:
            try:
                if isinstance(action, SetBody):
                    current = outcome.ref or action.ref
                    outcome.ref = self.source.set_body(current, action.body, html=action.html)
                    outcome.dial_in_hash = action.digest
                elif isinstance(action, Accept):
                    self.source.accept(outcome.ref or action.ref, action.message)
                    outcome.response = RoomResponse.ACCEPTED
                    outcome.notice = action.notice or outcome.notice
                elif isinstance(action, Decline):
                    self.source.decline(outcome.ref or action.ref, action.message)
                    outcome.response = RoomResponse.DECLINED
                    outcome.notice = action.notice or outcome.notice
                elif isinstance(action, SendMail):
                    self.source.send_mail(action.mail)
                    outcome.notice = action.notice
                outcome.applied.append(action)
            except (TransientError, PermanentError) as exc:
                outcome.failed = exc
                return outcome
        return outcome


def _reason(exc: TmsFaultError) -> str:
    if isinstance(exc, TmsConflictError):
        return f"the room is already booked in TMS at that time ({exc.text})"
    return f"TMS refused the booking: {exc.text} (code {exc.code})"


def _as_before(before: Booking, reason: str, now: datetime) -> Booking:
    """``before`` as TMS still holds it after refusing a change (no longer in doubt), with the reason."""
    request = before.request
    content_hash = request_hash(request) if request is not None else before.content_hash
    return dataclasses.replace(before, last_error=reason, updated_at=now, content_hash=content_hash)


def _replace(
    before: Booking | None, plan: TmsPlan, *, state: TmsState, now: datetime, **changes: object
) -> Booking | None:
    if before is None:
        return None
    fields: dict[str, object] = {"state": state, "updated_at": now, **changes}
    if "request" in changes and plan.request is not None:
        fields["content_hash"] = plan.content_hash
    return dataclasses.replace(before, **fields)  # type: ignore[arg-type]
