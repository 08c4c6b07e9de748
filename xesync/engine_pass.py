"""One pass over several rooms: who has handled which meeting, and the room stages held to its end.

Terminology as in :mod:`xesync.model` and :mod:`xesync.meetings`; in addition:

held stage
    A meeting's room stage (dial-in body, accept, the organiser's confirmation) that a room's pass
    does not run at once but leaves to the end of the pass (:class:`HeldStage`).
sibling
    Another room's copy of the same meeting (same UID).

Decisions and their reasons:

- **A multi-room meeting's copies are written once, with the final dial-in.** TMS's dial-in text
  (``ConferenceInfoText``, tms-booking-api.md §8.1) names the conference's rooms, so it changes when
  the second room joins. A copy written before then carried a stale block, was rewritten when its
  own write echoed back on the next pass, and the organiser got one confirmation per room (issue
  15: 168 ``UpdateItem`` on the pass after a 1,000-meeting import, 1,168 mails for 1,000 bookings).
  So a room's pass that books such a meeting while another room it invites (and the same pass
  covers) has not handled it yet holds its room stage; the stage runs once every room of the pass
  is done, with the booking as it then stands: one body write per copy, one confirmation per
  booking naming every room.
- **A held stage is owed in the store.** Its record carries a due recheck until the stage ran, so a
  crash before the end of the pass replays the stage on the next one (the sync state has moved on,
  and Exchange will not report the copy again).
- **A sibling outside the pass is marked, not written.** When a save changes the dial-in and a
  sibling's copy already shows the old one (its room is not in this pass, or handled it earlier),
  the sibling's record gets a due recheck: its room's next pass reads the copy and writes the block.
  Writing another room's copy from here would need its body (a ``GetItem``) and race its own pass.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from xesync import dialin
from xesync.actions import MeetingFacts, TmsPlan
from xesync.engine_record import MeetingResult
from xesync.meetings import RoomItem
from xesync.model import Booking, BookingStatus, SyncRecord


@dataclass(slots=True)
class HeldStage:
    """A room stage left to the end of the pass, with what it needs to run then.

    :ivar result: the meeting's result in its room's report; completed when the stage runs.
    :ivar note: the licence pre-flight's line for the confirmation.
    """

    run_id: str
    facts: MeetingFacts
    plan: TmsPlan
    result: MeetingResult
    note: str
    now: datetime


class PassRooms:
    """The rooms of one pass and the meetings each has handled; thread-safe (rooms run in parallel)."""

    def __init__(self, rooms: Iterable[str]) -> None:
        self.rooms = frozenset(r.lower() for r in rooms)
        self._handled: dict[str, set[str]] = {}
        self._held: list[HeldStage] = []
        self._lock = threading.Lock()

    def handled(self, uid: str, room: str) -> None:
        """``room``'s pass is done with the meeting ``uid`` (whatever the outcome)."""
        with self._lock:
            self._handled.setdefault(uid, set()).add(room)

    def waiting_for(self, item: RoomItem, booking: Booking) -> frozenset[str]:
        """The rooms of this pass that ``item`` invites, that are not in ``booking`` and have not
        handled the meeting yet: each may still join and change the dial-in text."""
        invited = ({a.lower() for a in item.attendees} & self.rooms) - {item.room} - set(booking.rooms)
        with self._lock:
            return frozenset(invited - self._handled.get(item.uid, set()))

    def should_hold(self, item: RoomItem | None, booking: Booking | None) -> bool:
        """Whether a room stage for ``item`` waits for the end of the pass (see the module docstring)."""
        return (
            item is not None
            and booking is not None
            and booking.live
            and bool(self.waiting_for(item, booking))
        )

    def hold(self, stage: HeldStage) -> None:
        """Leave ``stage`` to the end of the pass."""
        with self._lock:
            self._held.append(stage)

    def is_held(self, uid: str, room: str) -> bool:
        """Whether ``room``'s stage for ``uid`` waits for the end of the pass."""
        with self._lock:
            return any(s.facts.uid == uid and s.facts.room == room for s in self._held)

    def take_held(self) -> list[HeldStage]:
        """The held stages, once (the pass runs them)."""
        with self._lock:
            held, self._held = self._held, []
        return held


def stale_siblings(
    facts: MeetingFacts, booking: Booking, now: datetime, *, passing: PassRooms | None
) -> tuple[SyncRecord, ...]:
    """The siblings' records to mark due: booked copies whose dial-in block is not ``booking``'s."""
    if not (booking.live and (booking.info_text.strip() or booking.info_html.strip())):
        return ()
    current = {dialin.digest(booking.info_text, booking.info_html, is_html=html) for html in (False, True)}
    out = []
    for room in booking.rooms:
        record = facts.records.get(room)
        if (
            room == facts.room
            or record is None
            or record.status not in (BookingStatus.BOOKED, BookingStatus.DEFECTIVE)
            or record.dial_in_hash in current
            or (record.recheck_at is not None and record.recheck_at <= now)
            or (passing is not None and passing.is_held(facts.uid, room))
        ):
            continue
        out.append(dataclasses.replace(record, recheck_at=now))
    return tuple(out)


def handled(record: SyncRecord) -> bool:
    """Whether ``record``'s changekey names a version of the copy that was fully handled.

    Only those may hide an update from the next read (``CalendarSource.changes(known=)``). A pending
    record (written before a first TMS save), a failed one or one with an error keeps the changekey
    it read: after a crash the old sync state reports the copy again, and it must be read again.
    """
    return bool(
        record.occurrence is None
        and record.item_id
        and record.change_key
        and record.content_hash
        and not record.last_error
        and record.status in (BookingStatus.BOOKED, BookingStatus.DEFECTIVE)
    )
