"""The world the engine state machine (tests/unit/test_engine_machine.py) plays in, shared with the
pinned counterexamples it found (tests/unit/test_engine_counterexamples.py): the rooms' TMS systems, the
fuse policy, a fake TMS that knows what its own conference holds, and the organiser's view of a meeting.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from engine_kit import ROOMS, weekly
from fakes import FakeBookingSink

from xesync.actions import Policy
from xesync.meetings import ConferenceRequest, Occurrence, RoomItem, SavedConference

SYSTEM = {r.key: r.system_id for r in ROOMS}
# Small enough that two cancellations in one room's pass trip the fuse when the room has few bookings.
POLICY = Policy(mass_cancel_min=2, mass_cancel_max_share=0.5)


class CalendarSink(FakeBookingSink):
    """The fake TMS, where a busy system conflicts only where it is not already booked by this conference.

    A system another booking holds cannot also be held by our conference at the same time (strict
    mode refuses overlaps), so a save that keeps a system at the slot it already holds never conflicts.
    """

    def save(self, request: ConferenceRequest) -> SavedConference:
        existing = self.conferences.get(request.external_key)
        same_slot = existing is not None and (
            (existing.request.start, existing.request.end, existing.request.recurrence)
            == (request.start, request.end, request.recurrence)
        )
        held = set(existing.saved.system_ids) if existing is not None and same_slot else set()
        busy, self.busy = self.busy, self.busy - held
        try:
            return super().save(request)
        finally:
            self.busy = busy


@dataclasses.dataclass
class Meeting:
    """The organiser's view of one meeting: what every invited room's copy should show."""

    uid: str
    organiser: str
    base: RoomItem  # the copy's content, room-independent fields only
    rooms: set[str]  # the rooms invited (a room that declined is still invited; an update re-sends)
    cancelled: bool = False


def series_at(uid: str, organiser: str, hour: int, weeks: int) -> RoomItem:
    """A new weekly series of ``weeks`` occurrences at ``hour`` UTC."""
    item = weekly(uid, organiser=organiser, weeks=weeks)
    return shift_series(item, hour)


def shift_series(item: RoomItem, hour: int) -> RoomItem:
    """The series at ``hour`` UTC on the same days, its exceptions dropped (as Outlook does)."""
    first = item.occurrences[0].recurrence_id if item.occurrences else item.start
    first = min([first, *item.deleted_occurrences])
    by = first.replace(hour=hour) - first
    weeks = len(item.occurrences) + len(item.deleted_occurrences)
    start = first + by
    occurrences = tuple(
        Occurrence(
            recurrence_id=start + timedelta(weeks=i),
            start=start + timedelta(weeks=i),
            end=start + timedelta(weeks=i, hours=1),
        )
        for i in range(weeks)
    )
    return dataclasses.replace(
        item, start=start, end=start + timedelta(hours=1), occurrences=occurrences, deleted_occurrences=()
    )
